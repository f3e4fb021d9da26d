"""Model passes that score text: evaluation of a (fine-tuned) causal LM on the eval tasks,
per-example answer losses (perplexity, IFD), reward-model scores, and selection-quality measures.

- Task scores: lm-evaluation-harness runs every checkpoint on the eval tasks (core/harness.py:
  greedy generation after the chat prompt, exact match or GSM8K's number matching) and on any
  harness task the user names; kept per item with the prediction and the gold answer.
- Answer loss: mean cross-entropy of the gold answer tokens given the prompt (a smooth signal where
  exact match is coarse, and the quantity InstructMining's rule predicts).
- Selection precision: share of selected examples that are clean and of a targeted skill; the
  composition of a selection (targeted, clean, per source, per noise kind) says where it is lost.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from selection_assets.core.embed import length_buckets
from selection_assets.core.progress import Progress
from selection_assets.core import harness
from selection_assets.core.tokenize import (Encoded, encode_conversations, has_chat_template,
                                            pad_batch, truncate)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def scored_token_nll(model, ids: torch.Tensor, mask: torch.Tensor, scored: torch.Tensor, *,
                     logit_rows: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative log-likelihood (nats) of each scored token given the tokens before it.

    `scored[b, t]` marks token t of row b as one to score (t >= 1). Vocabulary logits are computed
    only at the positions that predict a scored token, `logit_rows` at a time, so memory grows with
    the hidden size and the chunk, not with batch tokens x vocabulary. Returns the batch row of each
    scored token and its NLL (float32), in row-major order."""
    hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    return _nll_from_hidden(model, hidden, ids, scored, logit_rows)


def _nll_from_hidden(model, hidden: torch.Tensor, ids: torch.Tensor, scored: torch.Tensor,
                     logit_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`scored_token_nll` from the last hidden states of a pass already run."""
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    rows, positions = scored[:, 1:].nonzero(as_tuple=True)  # position t predicts token t + 1
    states, targets = hidden[rows, positions], ids[rows, positions + 1]
    nll = torch.empty(len(rows), dtype=torch.float32, device=ids.device)
    for begin in range(0, len(rows), logit_rows):
        logits = head(states[begin : begin + logit_rows]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        nll[begin : begin + logit_rows] = F.cross_entropy(logits, targets[begin : begin + logit_rows],
                                                          reduction="none")
    return rows, nll


@torch.inference_mode()
def instruction_statistics(model, tokenizer, conversations: Sequence[Sequence[dict]], *, max_length: int,
                           batch_tokens: int = 16384, device: str = "cpu",
                           logit_rows: int = 1024) -> tuple[np.ndarray, np.ndarray, int]:
    """Cherry LLM's pre-experience pass (cherry_seletion/data_analysis.py, `--mod pre`): each
    conversation's instruction (every token before its last answer, the assistant header included,
    at most `max_length`) read alone by a causal LM: its perplexity, exp of the mean CE of each token
    given the ones before it (NaN for a one-token instruction), and the mean of the last hidden states
    over its tokens (not normalised); and the number of tokens read (for the cost model)."""
    encoded = encode_conversations(tokenizer, conversations)
    prefixes = [e.input_ids[: max(1, min(e.last_answer_start, max_length))] for e in encoded]
    perplexity = np.full(len(prefixes), np.nan, dtype=np.float64)
    embeddings = np.empty((len(prefixes), model.config.hidden_size), dtype=np.float32)
    for batch_rows in length_buckets([len(p) for p in prefixes], batch_tokens):
        ids, mask = pad_batch([prefixes[i] for i in batch_rows], _pad_id(tokenizer))
        ids, mask = ids.to(device), mask.to(device)
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.float() / mask.float().sum(1, keepdim=True)
        embeddings[batch_rows] = torch.einsum("bt,btd->bd", weights, hidden.float()).cpu().numpy()
        rows, nll = _nll_from_hidden(model, hidden, ids, mask.bool(), logit_rows)
        perplexity[batch_rows] = np.exp(_row_means(rows, nll, len(batch_rows)))
    return perplexity, embeddings, sum(map(len, prefixes))


def answer_cross_entropy(model, tokenizer, conversations: Sequence[Sequence[dict]], *, max_length: int,
                         batch_tokens: int = 16384, device: str = "cpu", logit_rows: int = 1024,
                         log: Callable[[str], None] | None = None, label: str = "answer losses") -> np.ndarray:
    """Per conversation: mean CE (nats/token) of its last assistant turn given everything before it.

    NaN where truncation to `max_length` left no answer token. Batches are length-bucketed; logits
    are computed only for answer tokens, `logit_rows` at a time (see `scored_token_nll`). With `log`,
    progress lines (done/total, rate, time left) go to it under `label`.
    """
    return encoded_cross_entropies(model, tokenizer, encode_conversations(tokenizer, conversations, max_length),
                                   whole_sequence=False, batch_tokens=batch_tokens, device=device,
                                   logit_rows=logit_rows, log=log, label=label)[0]


@torch.inference_mode()
def encoded_cross_entropies(model, tokenizer, encoded: Sequence[Encoded], *, whole_sequence: bool,
                            batch_tokens: int = 16384, device: str = "cpu", logit_rows: int = 1024,
                            log: Callable[[str], None] | None = None,
                            label: str = "answer losses") -> tuple[np.ndarray, np.ndarray | None]:
    """Over conversations already encoded (and truncated): the mean CE of the last answer given
    everything before it, and with `whole_sequence` also, from the same pass, the mean CE of every
    token given the ones before it (the whole-sequence loss, `labels=input_ids`, of Ivison et al.'s
    perplexity baselines; else None)."""
    progress = Progress(label, len(encoded), log, unit="conversations") if log else None
    answer_losses = np.full(len(encoded), np.nan, dtype=np.float64)
    sequence_losses = np.full(len(encoded), np.nan, dtype=np.float64) if whole_sequence else None
    for batch_rows in length_buckets([len(e.input_ids) for e in encoded], batch_tokens):
        batch = [encoded[i] for i in batch_rows]
        ids, mask = pad_batch([e.input_ids for e in batch], _pad_id(tokenizer))
        answer_target = torch.zeros_like(ids, dtype=torch.bool)
        for row, enc in enumerate(batch):
            answer = torch.as_tensor(enc.answer_mask, dtype=torch.bool)
            answer[: enc.last_answer_start] = False
            answer_target[row, : len(enc.input_ids)] = answer
        scored = mask.bool() if whole_sequence else answer_target
        rows, nll = scored_token_nll(model, ids.to(device), mask.to(device), scored.to(device), logit_rows=logit_rows)
        is_answer = answer_target[:, 1:][scored[:, 1:]].to(nll.device)  # same row-major order as `nll`
        answer_losses[batch_rows] = _row_means(rows[is_answer], nll[is_answer], len(batch))
        if whole_sequence:
            sequence_losses[batch_rows] = _row_means(rows, nll, len(batch))
        if progress:
            progress.advance(len(batch_rows))
    return answer_losses, sequence_losses


def _row_means(rows: torch.Tensor, values: torch.Tensor, n_rows: int) -> np.ndarray:
    """Mean of `values` per batch row (NaN for a row with none)."""
    counts = torch.bincount(rows, minlength=n_rows)
    sums = torch.zeros(n_rows, dtype=torch.float32, device=values.device).index_add_(0, rows, values)
    return torch.where(counts > 0, sums / counts.clamp_min(1), torch.nan).cpu().numpy()


def answer_losses(model, tokenizer, conversations: Sequence[Sequence[dict]], *, max_length: int,
                  batch_tokens: int = 16384, device: str = "cpu",
                  log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """CE(A | Q) and CE(A) (the last answer alone, after only the assistant header) per conversation:
    the inputs of the perplexity methods and of IFD; CE of the whole sequence (Ivison et al.'s
    perplexity), from the same pass as CE(A | Q); `truncated` marks a conversation longer than
    `max_length`, whose CE(A | Q) covers only the answer tokens that fit. With `log`, each pass
    reports its progress."""
    alone = [[{"role": "assistant", "content": c[-1]["content"]}] for c in conversations]
    kwargs = {"batch_tokens": batch_tokens, "device": device, "log": log}
    whole = encode_conversations(tokenizer, conversations)  # encoded once: lengths, then the CE pass
    truncated = np.fromiter((len(e.input_ids) > max_length for e in whole), dtype=bool, count=len(whole))
    ce_answer, ce_sequence = encoded_cross_entropies(model, tokenizer, truncate(whole, max_length), whole_sequence=True,
                                                     label="CE(answer | question), CE(sequence)", **kwargs)
    return pd.DataFrame({
        "ce_answer": ce_answer,
        "ce_sequence": ce_sequence,
        "ce_answer_alone": answer_cross_entropy(model, tokenizer, alone, max_length=max_length,
                                                label="CE(answer alone)", **kwargs),
        "truncated": truncated})


@torch.inference_mode()
def reward_scores(model, tokenizer, conversations: Sequence[Sequence[dict]], *, max_length: int,
                  batch_size: int = 16, device: str = "cpu") -> tuple[np.ndarray, int]:
    """A sequence-classification reward model's score (first logit) of each conversation read as
    InstructMining's reward model reads an example: an (instruction, response) pair, the turns before
    the last answer joined by newlines as the instruction and the last answer as the response; and
    the number of real tokens the model read (for the cost model)."""
    instructions = ["\n".join(m["content"] for m in c[:-1]) for c in conversations]
    responses = [c[-1]["content"] for c in conversations]
    scores, tokens = np.empty(len(conversations), dtype=np.float64), 0
    for begin in range(0, len(conversations), batch_size):
        end = begin + batch_size
        batch = tokenizer(instructions[begin:end], responses[begin:end], return_tensors="pt", padding=True,
                          truncation=True, max_length=max_length).to(device)
        scores[begin:end] = model(**batch).logits[:, 0].float().cpu().numpy()
        tokens += int(batch["attention_mask"].sum())
    return scores, tokens


def evaluate_items(model, tokenizer, tasks: Sequence[dict], *, split: str = "test", max_length: int,
                   device: str = "cpu", batch_size: int = 32, harness_include: str = "",
                   log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per scored item, every score from lm-evaluation-harness (core/harness.py).

    The project's tasks (`split` of each): task, item, prediction, gold, `correct` (the task's primary
    metric: exact match, or GSM8K's flexible-extract match), every other metric/filter of the task as
    a `metric,filter` column, and `answer_loss` (mean CE of the gold answer tokens given the prompt,
    the smooth extra signal). Tasks named for the harness itself (entries with `harness_task`) are
    scored on their own test split when `split` is "test", with the model's chat template if it has
    one; they have no answer loss. `suite` says which kind a row is. Keeping every item lets any
    interval or paired comparison be recomputed from the files."""
    model.eval()
    project = [t for t in tasks if "harness_task" not in t]
    named = [t["harness_task"] for t in tasks if "harness_task" in t]
    frames = []
    if project:
        items = harness.evaluate_project_tasks(model, tokenizer, project, split=split, batch_size=batch_size, log=log)
        losses = []
        for task in project:
            full = [list(ex["messages"]) + [{"role": "assistant", "content": ex["answer"]}] for ex in task[split]]
            loss = answer_cross_entropy(model, tokenizer, full, max_length=max_length, device=device, log=log,
                                        label=f"answer loss ({task['name']})")
            losses.append(pd.DataFrame({"task": task["name"], "item": np.arange(len(full), dtype=np.int64),
                                        "answer_loss": loss}))
        frames.append(items.merge(pd.concat(losses), on=["task", "item"], how="left").assign(suite="project"))
    if named and split == "test":
        items = harness.run_harness(model, tokenizer, named, include_path=harness_include or None,
                                    chat_template=has_chat_template(tokenizer), batch_size=batch_size, log=log)
        frames.append(items.assign(answer_loss=np.nan, suite="harness"))
    return pd.concat(frames, ignore_index=True)


def dev_answer_loss(model, tokenizer, tasks: Sequence[dict], *, max_length: int, device: str = "cpu") -> float | None:
    """Mean CE of the gold answer given the prompt over every dev item with an answer (the split the
    fine-tuning recipe was chosen on); None when no task has such items."""
    dev = [list(q["messages"]) + [{"role": "assistant", "content": q["answer"]}]
           for task in tasks if "harness_task" not in task for q in task.get("dev", []) if "answer" in q]
    if not dev:
        return None
    losses = answer_cross_entropy(model, tokenizer, dev, max_length=max_length, device=device)
    return float(np.nanmean(losses))


def task_summary(items: pd.DataFrame) -> pd.DataFrame:
    """Per task: the primary score (`exact_match`, with its binomial standard error), answer loss,
    item count, how many items' contexts the harness cut to fit the model (`contexts_cut`), and the
    mean of every other harness metric/filter column."""
    items = items if "context_cut" in items else items.assign(context_cut=False)
    grouped = items.groupby("task", sort=False)
    summary = grouped.agg(exact_match=("correct", "mean"), answer_loss=("answer_loss", "mean"),
                          n_test=("correct", "size"), contexts_cut=("context_cut", "sum")).reset_index()
    summary["exact_match_stderr"] = np.sqrt(summary["exact_match"] * (1 - summary["exact_match"]) / summary["n_test"])
    metric_columns = [c for c in items.columns if "," in c]
    extra = grouped[metric_columns].mean().reset_index() if metric_columns else summary[["task"]]
    summary = summary.merge(extra, on="task", how="left")
    return summary[["task", "exact_match", "exact_match_stderr", "answer_loss", "n_test", "contexts_cut",
                    *metric_columns]]


def selection_precision(selected: pd.DataFrame, targeted_sources: Sequence[str]) -> float | None:
    """Share of selected rows that are clean and from a targeted source; None without labels."""
    if "clean" not in selected or selected["clean"].isna().all() or len(selected) == 0:
        return None
    good = selected["clean"].fillna(False).astype(bool) & selected["source"].isin(list(targeted_sources))
    return float(good.mean())


def selection_composition(selected: pd.DataFrame, targeted_sources: Sequence[str],
                          final_answers: Sequence[str] | None = None,
                          dev_answers: dict[str, Iterable[str]] | None = None) -> dict | None:
    """What a labelled selection is made of, as shares of the selected rows: targeted sources (any
    quality), clean rows, each targeted source, and each noise kind; None without labels. Shows
    whether a method loses precision to off-target or to noisy examples.

    With `final_answers` (the last assistant turn of each selected row, in row order) it also
    measures how varied the targeted picks are: distinct final answers over the targeted sources,
    and the mean entropy (bits) of each targeted source's answer distribution. A method that
    copies its queries' answers covers fewer of them. With `dev_answers` (per targeted source, the
    answers of its task's dev queries) it adds the share of targeted picks whose final answer is one
    of those: how much a selection leans on the queries' own answers."""
    if "clean" not in selected or selected["clean"].isna().all() or len(selected) == 0:
        return None
    shares = {"targeted": float(selected["source"].isin(list(targeted_sources)).mean()),
              "clean": float(selected["clean"].fillna(False).astype(bool).mean())}
    for source in targeted_sources:
        shares[f"source_{source}"] = float((selected["source"] == source).mean())
    noise = selected["noise"].dropna() if "noise" in selected else pd.Series(dtype=object)
    for kind, count in noise.value_counts().sort_index().items():
        shares[f"noise_{kind}"] = float(count / len(selected))
    if final_answers is not None:
        answers = pd.Series(list(final_answers), index=selected.index)
        targeted = selected["source"].isin(list(targeted_sources))
        shares["distinct_answers"] = float(answers[targeted].nunique())
        entropies = []
        for source in targeted_sources:
            counts = answers[selected["source"] == source].value_counts().to_numpy(dtype=np.float64)
            if counts.sum() > 0:
                probabilities = counts / counts.sum()
                entropies.append(float(-(probabilities * np.log2(probabilities)).sum()))
        shares["answer_entropy_bits"] = float(np.mean(entropies)) if entropies else 0.0
        if dev_answers is not None:
            known = {source: {a.strip() for a in dev_answers.get(source, ())} for source in targeted_sources}
            matches = [answer.strip() in known[source]
                       for source, answer in zip(selected["source"][targeted], answers[targeted])]
            shares["dev_answer_share"] = float(np.mean(matches)) if matches else 0.0
    return shares


DIGIT_SCORES = ("1", "2", "3", "4", "5", "6")


@torch.inference_mode()
def expected_digit_scores(model, tokenizer, prompts: Sequence[str], *, batch_size: int = 16,
                          device: str = "cpu") -> tuple[np.ndarray, int]:
    """DEITA's scorer readout (deita/selection/scorer/base.py, infer_score): the next-token logits
    after each prompt, softmax over the tokens "1".."6", and the expected score sum_d d p(d), in [1, 6];
    and the number of prompt tokens the model read (for the cost model)."""
    digit_ids = tokenizer.convert_tokens_to_ids(list(DIGIT_SCORES))
    if any(i is None or i == tokenizer.unk_token_id for i in digit_ids):
        raise ValueError("the scorer's tokenizer has no single token for each of the digits 1-6")
    values = torch.arange(1, 7, dtype=torch.float32, device=device)
    scores, tokens = np.empty(len(prompts), dtype=np.float64), 0
    for begin in range(0, len(prompts), batch_size):
        encoded = [tokenizer(p)["input_ids"] for p in prompts[begin : begin + batch_size]]
        tokens += sum(map(len, encoded))
        ids, mask = pad_batch(encoded, _pad_id(tokenizer), left=True)  # every row ends at its last token
        positions = (mask.cumsum(1) - 1).clamp_min(0)  # as if unpadded, as generate() does
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device)).logits[:, -1, :].float()
        probabilities = torch.softmax(logits[:, digit_ids], dim=-1)
        scores[begin : begin + len(encoded)] = (probabilities @ values).cpu().numpy()
    return scores, tokens
