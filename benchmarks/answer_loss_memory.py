"""Peak memory of the answer-loss pass (the input of perplexity, IFD and the eval loss) with a real
model: SmolLM2-135M-Instruct (vocabulary 49,152) on real ShareGPT conversations.

Goal (issue 9): peak RSS at most the model's size plus 2 GB. `--mode full` runs, for comparison, a
plain restatement of the earlier pass (batches capped by tokens only, float32 log-softmax over the
whole vocabulary of a batch).

    python -m benchmarks.answer_loss_memory            # both modes, each in a fresh process
    python -m benchmarks.answer_loss_memory --mode chunked --conversations 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MODEL_DIR = Path("/tmp/selection_assets_bench/smollm2_float")


def _full_vocabulary_losses(model, tokenizer, conversations, max_length: int, batch_tokens: int) -> list[float]:
    """The earlier pass, restated: batches capped by tokens only, whole-batch logits, float32
    log-softmax, gather."""
    import torch

    from selection_assets.core.embed import length_buckets
    from selection_assets.core.tokenize import encode_conversations, pad_batch

    encoded = encode_conversations(tokenizer, conversations, max_length)
    losses = [float("nan")] * len(encoded)
    with torch.inference_mode():
        for rows in length_buckets([len(e.input_ids) for e in encoded], batch_tokens, attention_cells=None):
            ids, mask = pad_batch([encoded[i].input_ids for i in rows], tokenizer.pad_token_id)
            target = torch.zeros_like(ids, dtype=torch.bool)
            for row, i in enumerate(rows):
                answer = torch.as_tensor(encoded[i].answer_mask, dtype=torch.bool)
                answer[: encoded[i].last_answer_start] = False
                target[row, : len(answer)] = answer
            logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float()[:, :-1], dim=-1)
            nll = -logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            scored = target[:, 1:]
            for row, i in enumerate(rows):
                if scored[row].any():
                    losses[i] = float(nll[row][scored[row]].mean())
    return losses


def measure(mode: str, conversations: int, max_length: int, batch_tokens: int) -> dict:
    """One mode in this process: RSS after loading, peak RSS of the pass, seconds."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks._common import peak_rss_mb
    from selection_assets.core import evaluate, readers, records
    from selection_assets.core.real_material import SHAREGPT_JSON

    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    raw = []
    for record in readers.iter_raw_records(str(SHAREGPT_JSON.path())):
        raw.append(record)
        if len(raw) >= conversations * 3:
            break
    kept = records.validate_raw(raw, range(len(raw)), records.first_occurrence(records.declared_ids(raw))).kept
    chats = [json.loads(m) for m in kept["messages"].iloc[:conversations]]
    loaded_mb = peak_rss_mb()
    began = time.perf_counter()
    if mode == "chunked":
        losses = evaluate.answer_cross_entropy(model, tokenizer, chats, max_length=max_length,
                                               batch_tokens=batch_tokens)
    else:
        losses = np.array(_full_vocabulary_losses(model, tokenizer, chats, max_length, batch_tokens))
    return {"mode": mode, "conversations": len(chats), "max_length": max_length, "batch_tokens": batch_tokens,
            "model_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20,
            "rss_after_load_mb": loaded_mb, "peak_rss_mb": peak_rss_mb(),
            "seconds": time.perf_counter() - began, "scored": int(np.isfinite(losses).sum()),
            "mean_loss": float(np.nanmean(losses))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["chunked", "full"])
    parser.add_argument("--conversations", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.conversations, args.max_length, args.batch_tokens)))
        return
    from benchmarks._common import run_isolated, save
    from selection_assets.core.real_material import SMOLLM2_GGUF, dequantise_gguf

    if not (MODEL_DIR / "config.json").exists():
        dequantise_gguf(SMOLLM2_GGUF.path(), MODEL_DIR)
    settings = ["--conversations", str(args.conversations), "--max-length", str(args.max_length),
                "--batch-tokens", str(args.batch_tokens)]
    runs = [run_isolated("answer_loss_memory", "--mode", mode, *settings) for mode in ("chunked", "full")]
    for run in runs:
        run["peak_minus_model_mb"] = run["peak_rss_mb"] - run["model_mb"]
        print(f"{run['mode']:>8}: peak RSS {run['peak_rss_mb']:,.0f} MiB (model {run['model_mb']:,.0f} MiB, "
              f"after load {run['rss_after_load_mb']:,.0f}), {run['seconds']:.1f} s, mean loss {run['mean_loss']:.4f}")
    print(f"saved {save('answer_loss_memory', {'runs': runs})}")


if __name__ == "__main__":
    main()
