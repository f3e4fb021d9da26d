"""Embedding throughput: the length-bucketed, padding-aware batched path against a batch-size-1
loop of the same model on the same data, in one run (tokens/s of real tokens).

    python -m benchmarks.embedding_throughput                  # world-size tiny Llama, 2000 world conversations
    python -m benchmarks.embedding_throughput --mfu --model-size 1b   # on a GPU: ~1B Llama in bf16, model FLOPs utilisation
    python -m benchmarks.embedding_throughput [--mfu ...] --compile    # the batched path's model torch.compiled

Random weights are fine for throughput. MFU = achieved model FLOPs (2 x non-embedding parameters x
real tokens per second; attention scores and padding are not counted, so it is a lower bound) / the
device's dense bf16 peak (--peak-tflops, default 989 for an H100 or H200 SXM); the result also holds
the causal attention's FLOPs, for MFU counting them too.

Without --mfu the run also measures the ceiling of the batched path: the rate of this device's
matrix products at the model's own weight shapes (a full batch of tokens as rows against each
projection, in the run's dtype), and the speedup over the batch-1 loop that rate would allow were
the batched path nothing but those products.

--compile compiles the batched path's model as `ComputeResource.embed_compile` does (the batch-1
loop stays the plain eager loop it stands for); the warm-up pass, which compiles, is timed apart.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import numpy as np
import torch
from transformers import LlamaConfig, LlamaModel

from selection_assets.core import embed, tokenize
from selection_assets.world import generate
from selection_assets.world.models import train_tokenizer

SIZES = {  # hidden, intermediate, layers, heads
    "tiny": (192, 512, 4, 4),
    "1b": (2048, 8192, 16, 32),
}


def mfu_lengths(examples: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The lengths of the --mfu run's synthetic sequences (512 to 2,047 tokens, drawn first from seed 0)."""
    return (rng or np.random.default_rng(0)).integers(512, 2048, examples)


def causal_attention_flops(lengths: np.ndarray, size: str) -> float:
    """FLOPs of the attention scores and their weighted sum under a causal mask, which MFU's 2 x
    parameters per token leaves out: per layer, 2 x hidden x L(L+1)/2 for QK^T and as many for AV."""
    hidden, _, layers, _ = SIZES[size]
    lengths = np.asarray(lengths, dtype=np.float64)
    return float(4 * hidden * layers * (lengths * (lengths + 1) / 2).sum())


def world_sequences(n: int, tokenizer) -> list[list[int]]:
    lines = generate.generate_pool(n, seed=3)
    conversations = [json.loads(line)["messages"] for line in lines if line.startswith("{\"id\": \"ex")]
    return [e.input_ids for e in tokenize.encode_conversations(tokenizer, conversations, 256)]


def model_of(size: str, vocab: int, device: str, dtype) -> LlamaModel:
    hidden, intermediate, layers, heads = SIZES[size]
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=4096)
    with torch.device(device):  # initialised where it runs: a 1B model's random init on the CPU takes a minute
        model = LlamaModel(config)
    return model.to(dtype=dtype).eval()


def projection_tflops(model: LlamaModel, rows: int, device: str, dtype, sync, repeats: int = 5) -> float:
    """TFLOP/s of `rows` x in @ in x out products over the shapes of one decoder layer's
    projections (q, k, v, o, gate, up, down), the median of `repeats` timings of the whole set."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    shapes = [tuple(m.weight.shape) for m in model.layers[0].modules() if isinstance(m, torch.nn.Linear)]
    weights = [torch.randn(shape, generator=generator).to(device=device, dtype=dtype) for shape in shapes]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], generator=generator).to(device=device, dtype=dtype)
              for w in weights}
    flops = sum(2 * rows * w.shape[0] * w.shape[1] for w in weights)

    def products() -> None:
        for weight in weights:
            torch.nn.functional.linear(inputs[weight.shape[1]], weight)

    products()  # warm-up
    return flops / float(np.median([timed(products, sync) for _ in range(repeats)])) / 1e12


def timed(fn, sync) -> float:
    began = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - began


def main() -> None:
    from benchmarks._common import save

    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--model-size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mfu", action="store_true", help="GPU only: long synthetic sequences, report MFU")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--compile", action="store_true", help="torch.compile the batched path's model (dynamic shapes)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="auto: bfloat16 on a GPU, float32 on the CPU")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype) if args.dtype != "auto" else (
        torch.bfloat16 if device == "cuda" else torch.float32)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if args.mfu:
        rng = np.random.default_rng(0)
        sequences = [rng.integers(10, 32000, size=int(n)).tolist() for n in mfu_lengths(args.examples, rng)]
        vocab = 32000
    else:
        texts = [tokenize.format_conversation(json.loads(l)["messages"], "<|endoftext|>")
                 for l in generate.generate_pool(3000, seed=1) if l.startswith("{\"id\": \"ex")]
        tokenizer = train_tokenizer(texts, 1024, "/tmp/selection_assets_bench_tok")
        sequences = world_sequences(args.examples, tokenizer)
        vocab = len(tokenizer)
    model = model_of(args.model_size, vocab, device, dtype)
    parameters = sum(p.numel() for p in model.parameters())
    matmul_parameters = parameters - model.embed_tokens.weight.numel()  # a lookup, not a product
    real_tokens = sum(len(s) for s in sequences)
    batched_model = torch.compile(model, dynamic=True) if args.compile else model

    def run(batch_tokens: int, chosen: torch.nn.Module = batched_model) -> Callable[[], np.ndarray]:
        return lambda: embed.embed_token_ids(chosen, sequences, pad_id=0, batch_tokens=batch_tokens, device=device)

    result = {"device": device, "dtype": str(dtype), "model_size": args.model_size, "parameters": parameters,
              "examples": len(sequences), "real_tokens": real_tokens, "repeats": args.repeats,
              "compiled": args.compile}
    result["batched_warm_up_s"] = timed(run(args.batch_tokens), sync)  # CUDA's start-up, and the compile
    if args.compile:  # how far compiling moves the vectors
        result["compiled_max_abs_difference"] = float(np.abs(run(args.batch_tokens)() - run(args.batch_tokens, model)()).max())
    if args.mfu:
        batched = [timed(run(args.batch_tokens), sync) for _ in range(args.repeats)]
        result["batched_tokens_per_s"] = real_tokens / float(np.median(batched))
        if not args.compile:  # the padding mask's cost, measured on the eager model
            sample = sequences[:64]  # the same vectors with and without the (redundant) padding mask
            masked, unmasked = (embed.embed_token_ids(model, sample, pad_id=0, batch_tokens=args.batch_tokens,
                                                      device=device, padding_mask=flag) for flag in (True, False))
            result["unmasked_max_abs_difference"] = float(np.abs(masked - unmasked).max())
            result["unmasked_min_cosine"] = float((masked * unmasked).sum(1).min())
            result["masked_tokens_per_s"] = real_tokens / float(np.median([timed(
                lambda: embed.embed_token_ids(model, sequences, pad_id=0, batch_tokens=args.batch_tokens,
                                              device=device, padding_mask=True), sync) for _ in range(args.repeats)]))
        result["matmul_parameters"] = matmul_parameters
        result["batch_tokens"] = args.batch_tokens
        result["achieved_tflops"] = 2 * matmul_parameters * result["batched_tokens_per_s"] / 1e12
        result["mfu"] = result["achieved_tflops"] / args.peak_tflops
        result["peak_tflops"] = args.peak_tflops
        result["causal_attention_flops"] = causal_attention_flops([len(s) for s in sequences], args.model_size)
    else:
        # batched and batch-1 passes alternate after a warm-up of each, so a drift in this VM's speed
        # reaches both; the speedup is the median of the pairs' ratios, with their range
        run(1, model)()
        pairs = [(timed(run(args.batch_tokens), sync), timed(run(1, model), sync)) for _ in range(args.repeats)]
        ratios = sorted(single / batched for batched, single in pairs)
        result["batched_tokens_per_s"] = real_tokens / float(np.median([batched for batched, _ in pairs]))
        result["batch1_tokens_per_s"] = real_tokens / float(np.median([single for _, single in pairs]))
        result["speedup"] = float(np.median(ratios))
        result["speedup_range"] = [ratios[0], ratios[-1]]
        for path in ("batched", "batch1"):  # attention and pooling not counted: lower bounds
            result[f"{path}_projection_tflops"] = 2 * matmul_parameters * result[f"{path}_tokens_per_s"] / 1e12
        result["projection_ceiling_tflops"] = projection_tflops(model, args.batch_tokens, device, dtype, sync)
        result["projection_ceiling_rows"] = args.batch_tokens  # a full batch, flattened to rows
        result["speedup_ceiling"] = result["projection_ceiling_tflops"] / result["batch1_projection_tflops"]
    print(json.dumps(result))
    suffix = (f"_{args.batch_tokens}" if args.mfu else "") + ("_compiled" if args.compile else "")
    save(f"embedding_throughput_{args.model_size}_{device}_{str(dtype).removeprefix('torch.')}{suffix}", result)


if __name__ == "__main__":
    main()
