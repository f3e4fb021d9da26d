"""Where each method comes from: the public code file it follows, its known departures from that
code, and its selection cost (docs/science.md's model). `method_table` renders the README's method
table from these and the registry, so the table cannot drift from the code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provenance:
    """A method's public reference code, known departures and selection cost."""

    code: str
    departures: str
    cost: str


RDS_CODE = ("hamishivi/automated-instruction-selection: minimal_multitask/compute_influence_cosinesim.py "
            "(embeddings, cosine), minimal_multitask/get_top_influences.py (round-robin)")
XIA = "xiatingyu/SFT-DataSelection-at-scale"
XIA_CE = (f"{XIA}: cross_entropy/entropy_response.py (CE of the last turn); ordering as "
          "automated-instruction-selection scripts/ppl_selections.py")
XIA_CE_DEPARTURE = ("the reference scores unshifted logits (token t against its own logit); here CE is the "
                    "usual next-token loss")
IVISON_PPL = ("hamishivi/automated-instruction-selection: minimal_multitask/compute_influence_perplexity.py "
              "(loss with labels = input_ids), scripts/ppl_selections.py")
LESS_CODE = ("princeton-nlp/LESS: less/data_selection/collect_grad_reps.py (gradients, Adam, projection), "
             "less/data_selection/matching.py")
LESS_DEPARTURE = ("float32 gradients and this project's seeded Rademacher matrix (LESS: float16 into trak's "
                  "projector), so features follow the procedure, not its bits; defaults rank 8 and 1,024 "
                  "dimensions for the world's LM (LESS: 128 and 8,192), warm-up drawn from the smallest pool")

PROVENANCE = {
    "random": Provenance("-", "-", "0"),
    "random_balanced": Provenance("-", "-", "0"),
    "rds_plus": Provenance(RDS_CODE, "none known (pooling within 1.2e-7; round-robin restated in tests)",
                           "2 N_p L (y + q)"),
    "rds_plus_mean": Provenance(RDS_CODE, "ablation: plain mean pooling", "2 N_p L (y + q)"),
    "rds_plus_last_token": Provenance(RDS_CODE, "ablation: last-token pooling", "2 N_p L (y + q)"),
    "embed_encoder": Provenance("hamishivi/automated-instruction-selection: "
                                "minimal_multitask/compute_influence_sentence_embedding.py",
                                "default encoder all-MiniLM-L6-v2 (shipped offline), not GTR / NV-Embed",
                                "2 N_enc L (y + q)"),
    "less": Provenance(LESS_CODE, "max over a task's queries (the RDS+ paper's use; matching.py takes the mean: "
                       "`less_mean`); " + LESS_DEPARTURE, "6 N_p (warm-up tokens + L (y + q) checkpoints)"),
    "less_mean": Provenance(LESS_CODE, "each project task is one subtask; " + LESS_DEPARTURE,
                            "6 N_p (warm-up tokens + L (y + q) checkpoints)"),
    "top_ppl": Provenance(XIA_CE, XIA_CE_DEPARTURE, "2 N_p L y"),
    "mid_ppl": Provenance(XIA_CE, XIA_CE_DEPARTURE + "; past the list's end, wraps to its top third",
                          "2 N_p L y"),
    "bottom_ppl": Provenance(XIA_CE, XIA_CE_DEPARTURE, "2 N_p L y"),
    "top_ppl_sequence": Provenance(IVISON_PPL, "none known", "2 N_p L y"),
    "mid_ppl_sequence": Provenance(IVISON_PPL, "past the list's end, wraps to its top third (the reference "
                                   "returns fewer)", "2 N_p L y"),
    "ifd": Provenance("tianyi-lab/Cherry_LLM: cherry_seletion/data_analysis.py, cherry_seletion/data_by_IFD.py",
                      "CE(A) after only the assistant header (the reference: after '### Response:'); examples "
                      "that do not fit whole are skipped, as there", "2 x 2 N_p L y"),
    "token_length": Provenance(f"{XIA}: token_length/compute_token_num.py (total_token)",
                               "the repository has no selection script; longest first, earlier row on ties",
                               "0 (tokenisation)"),
    "token_length_response": Provenance(f"{XIA}: token_length/compute_token_num.py (response_token, the last "
                                        "turn)", "as token_length", "0 (tokenisation)"),
    "kcenter": Provenance("Sener & Savarese 2018 (greedy k-center)", "one pass on the base model's RDS+ "
                          "embeddings; Xia et al.'s k-center is DiverseEvol's iterative one: `kcenter_diverseevol`",
                          "2 N_p L y + O(N k d)"),
    "kcenter_diverseevol": Provenance("OFA-Sys/DiverseEvol: train.py, evol_schedules/kcenter_sampling.py; "
                                      f"{XIA}: diverse/train.py (1,000 random, then 3 rounds of 3,000)",
                                      "greedy additions within a round (Xia's code takes a round's n farthest at "
                                      "once); every round fine-tunes from the base model (Xia's keeps training "
                                      "one); mean pooling over real tokens, L2-normalised; the project's "
                                      "fine-tuning recipe", "per budget, 3 rounds of 6 N_p L x_r epochs + "
                                      "2 N_p L y"),
    "kmeans_round_robin": Provenance("this project", "a prefix-consistent order: sqrt(N) clusters, round-robin, "
                                     "nearest to centroid first", "2 N_p L y + O(N C d)"),
    "kmeans_xia": Provenance(f"{XIA}: token_length/kmeans_sample.py, token_length/embedding.py",
                             "faiss Lloyd from k-means++ seeding (reference: scikit-learn KMeans); mean pooling over "
                             "real tokens, L2-normalised (reference averages padding in, unnormalised); a shared "
                             "nearest example passes to the next nearest", "2 N_p L y + O(N k d) per budget"),
    "deita": Provenance("hkust-nlp/deita: selection/scorer/base.py, selection/filter/combined_filter.py, "
                        "selection/filter/base.py, selection/embedder/clm_embedder.py",
                        "embeddings from the base LM (DEITA: Mistral-7B); ranking ties: earlier row first; a "
                        "filter that runs dry is filled with flagged rejects", "2 N_s L T + 2 N_p L y + O(N k d)"),
    "deita_length_filter": Provenance("hkust-nlp/deita: selection/filter/base.py (the filter only)",
                                      "length instead of the scorers' evol score; RDS+ embeddings",
                                      "2 N_p L y + O(N k d)"),
    "instructmining": Provenance("Cao et al. 2023 (arXiv 2307.06290; no public code)",
                                 "without a reward model the Rew term is left out and the scores' metadata say "
                                 "so; SentenceBERT space: all-MiniLM-L6-v2", "2 N_p L y + 2 N_enc L y"),
}


def method_table(registry: dict) -> str:
    """The README's method table: name, what it does, paper, public code followed, known departures,
    selection cost. Raises KeyError naming a method without provenance."""
    missing = [name for name in registry if name not in PROVENANCE]
    if missing:
        raise KeyError(f"no provenance for {', '.join(missing)}")
    lines = ["| method | one line | paper | public code followed | known departures | selection cost |",
             "|---|---|---|---|---|---|"]
    for name, spec in registry.items():
        origin = PROVENANCE[name]
        lines.append(f"| `{name}` | {spec.summary} | {spec.reference} | {origin.code} | {origin.departures} | "
                     f"{origin.cost} |")
    return "\n".join(lines)
