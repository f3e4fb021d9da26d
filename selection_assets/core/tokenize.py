"""Chat formatting and batched tokenisation of conversations.

All models see conversations in the Tulu chat format used by Ivison et al. (2025):

    <|user|>\\n{content}\\n<|assistant|>\\n{content}<EOS>\\n ...

Each conversation is cut into segments (role headers, contents, EOS) and all segments of a batch are
tokenised in one call of the fast tokenizer, then stitched back. Assistant contents and their EOS
are the "answer" tokens: the loss mask for fine-tuning and the A in perplexity/IFD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

ROLE_HEADERS = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"}
CHAT_SPECIAL_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]


@dataclass
class Encoded:
    """Token ids of one conversation and which of them are answer (assistant) tokens."""

    input_ids: list[int]
    answer_mask: list[bool]  # True on assistant-content tokens and their EOS
    last_answer_start: int  # index of the first token of the last assistant turn


def format_conversation(messages: Sequence[dict[str, str]], eos_token: str) -> str:
    """The conversation as one string in the Tulu chat format (for tokenizer training, display)."""
    parts = []
    for msg in messages:
        parts.append(ROLE_HEADERS[msg["role"]])
        parts.append(msg["content"])
        parts.append(eos_token + "\n" if msg["role"] == "assistant" else "\n")
    return "".join(parts)


def encode_conversations(tokenizer, conversations: Sequence[Sequence[dict[str, str]]],
                         max_length: int | None = None) -> list[Encoded]:
    """Tokenise conversations in one batched tokenizer call; truncate each to `max_length`."""
    segments: list[str] = []
    kinds: list[tuple[int, str]] = []  # (conversation index, "prompt" | "answer" | "sep")
    for conv_index, messages in enumerate(conversations):
        for msg in messages:
            segments.append(ROLE_HEADERS[msg["role"]])
            kinds.append((conv_index, "prompt"))
            if msg["role"] == "assistant":
                segments.append(msg["content"])
                kinds.append((conv_index, "answer"))
                kinds.append((conv_index, "eos"))
                segments.append("")
                segments.append("\n")
                kinds.append((conv_index, "prompt"))
            else:
                segments.append(msg["content"] + "\n")
                kinds.append((conv_index, "prompt"))
    # drop the EOS placeholders from the tokenizer call; they become the eos id below
    texts = [s for s, (_, kind) in zip(segments, kinds) if kind != "eos"]
    pieces = iter(tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
    eos_id = tokenizer.eos_token_id
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    out = [Encoded(list(bos), [False] * len(bos), 0) for _ in conversations]
    for conv_index, kind in kinds:
        enc = out[conv_index]
        if kind == "eos":
            ids = [eos_id]
        else:
            ids = next(pieces)
        if kind == "answer":
            enc.last_answer_start = len(enc.input_ids)
        enc.input_ids.extend(ids)
        enc.answer_mask.extend([kind in ("answer", "eos")] * len(ids))
    if max_length is not None:
        for enc in out:
            del enc.input_ids[max_length:]
            del enc.answer_mask[max_length:]
    return out


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, left: bool = False):
    """Token id lists as (ids, attention mask) long tensors padded to the longest (at least 1);
    right padding by default, left padding (every row ends at its last token) for generation."""
    import torch

    width = max([len(s) for s in sequences] + [1])
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, span] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def token_counts(encoded: Sequence[Encoded]) -> tuple[np.ndarray, np.ndarray]:
    """Total tokens and answer tokens per encoded conversation."""
    total = np.fromiter((len(e.input_ids) for e in encoded), dtype=np.int64, count=len(encoded))
    answer = np.fromiter((sum(e.answer_mask) for e in encoded), dtype=np.int64, count=len(encoded))
    return total, answer
