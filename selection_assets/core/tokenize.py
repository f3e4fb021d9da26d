"""Chat formatting and batched tokenisation of conversations.

A tokenizer with a chat template of its own (a chat model's, e.g. SmolLM2's ChatML) renders every
conversation with it. A tokenizer without one (a base model, the world's LM) gets the Tulu chat
format used by Ivison et al. (2025); its role markers are special tokens of the world's tokenizer
(each one token, never merged with the text beside it) and, as in open-instruct, plain text for a
Hugging Face base model's:

    <|user|>\\n{content}\\n<|assistant|>\\n{content}<EOS>\\n ...

Either way the "answer" tokens are each assistant turn's content and its end-of-turn tokens: the
loss mask for fine-tuning and the A in perplexity/IFD. With a template they are found by rendering
each prefix of the conversation (the assistant turn with a marker for its content, then through the
turn) and mapping those character spans to tokens; in the Tulu format the spans are known as the
string is built. Either way each conversation is tokenised as one string, as open-instruct's
`encode_with_messages_format` does (segment-wise tokenisation would let a SentencePiece tokenizer add
word-start pieces at the joins), and, as there, with no newline after the last turn.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
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


def has_chat_template(tokenizer) -> bool:
    """Whether conversations are rendered with the tokenizer's own chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def format_conversation(messages: Sequence[dict[str, str]], eos_token: str) -> str:
    """The conversation as one string in the Tulu chat format, each turn ending in a newline (the
    world's pre-training text, encoder input, and the context of a generation prompt)."""
    text, _ = tulu_text(messages, eos_token)
    return text + "\n" if messages else ""


def encode_conversations(tokenizer, conversations: Sequence[Sequence[dict[str, str]]],
                         max_length: int | None = None) -> list[Encoded]:
    """Tokenise conversations (the tokenizer's chat template if it has one, else the Tulu format) in
    one batched tokenizer call; truncate each to `max_length`."""
    out = (_encode_with_template(tokenizer, conversations) if has_chat_template(tokenizer)
           else _encode_tulu(tokenizer, conversations))
    return out if max_length is None else truncate(out, max_length)


def truncate(encoded: list[Encoded], max_length: int) -> list[Encoded]:
    """Cut every encoded conversation to its first `max_length` tokens, in place; returns them."""
    for enc in encoded:
        del enc.input_ids[max_length:]
        del enc.answer_mask[max_length:]
    return encoded


def generation_prompt_text(tokenizer, messages: Sequence[dict[str, str]]) -> str:
    """The prompt (context turns) followed by the opening of an assistant turn, as one string rendered
    as `encode_conversations` renders conversations (chat template, or the Tulu format with the BOS
    token written out), so a model asked to continue it answers where it learned to."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    bos = tokenizer.bos_token if getattr(tokenizer, "bos_token_id", None) is not None else ""
    return bos + format_conversation(messages, tokenizer.eos_token or "") + ROLE_HEADERS["assistant"]


_CONTENT_MARK = "\u2063selection-assets-answer\u2063"  # stands in for an assistant turn's content


def _answer_spans(tokenizer, messages: Sequence[dict[str, str]], text: str) -> list[tuple[int, int]]:
    """Character spans of the assistant turns in `text` (the rendered conversation): each starts where
    the turn's content starts (found by rendering the turn with a marker for its content, which also
    works for a first turn) and ends where the prefix through that turn ends (end-of-turn tokens
    included)."""
    spans = []
    for turn, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        marked = tokenizer.apply_chat_template([*messages[:turn], {**message, "content": _CONTENT_MARK}],
                                               tokenize=False)
        opened = marked[: marked.index(_CONTENT_MARK)]
        closed = tokenizer.apply_chat_template(list(messages[: turn + 1]), tokenize=False)
        if not (text.startswith(opened) and text.startswith(closed) and len(opened) <= len(closed)):
            raise ValueError("the tokenizer's chat template does not render a conversation's prefixes as prefixes "
                             "of the whole; assistant tokens cannot be located")
        spans.append((len(opened), len(closed)))
    return spans


def _encode_with_template(tokenizer, conversations: Sequence[Sequence[dict[str, str]]]) -> list[Encoded]:
    texts = [tokenizer.apply_chat_template(list(c), tokenize=False) for c in conversations]
    return _encode_rendered(tokenizer, [(text, _answer_spans(tokenizer, messages, text))
                                        for messages, text in zip(conversations, texts)], prefix=[])


def _encode_rendered(tokenizer, rendered: Sequence[tuple[str, list[tuple[int, int]]]],
                     prefix: list[int]) -> list[Encoded]:
    """Rendered conversations (text, character spans of the assistant turns) tokenised in one batched
    call, each after the token ids `prefix`; a token is an answer token where it starts inside a span."""
    if not rendered:
        return []
    # the fast tokenizer's own batch call: what `tokenizer(texts, add_special_tokens=False,
    # return_offsets_mapping=True)` runs, without its per-encoding Python conversion (a third of the time)
    backend = tokenizer.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    encodings = backend.encode_batch([text for text, _ in rendered], add_special_tokens=False)
    out = []
    for (text, spans), encoding in zip(rendered, encodings):
        starts = np.fromiter((begin for begin, _ in encoding.offsets), dtype=np.int64, count=len(encoding.offsets))
        mask = np.zeros(len(starts), dtype=bool)
        for start, end in spans:
            mask |= (starts >= start) & (starts < end)
        last_start = spans[-1][0] if spans else len(text)
        at_or_after = np.flatnonzero(starts >= last_start)
        last_answer_start = int(at_or_after[0]) if len(at_or_after) else len(starts)
        out.append(Encoded(prefix + encoding.ids, [False] * len(prefix) + mask.tolist(),
                           len(prefix) + last_answer_start))
    return out


def tulu_text(messages: Sequence[dict[str, str]], eos_token: str) -> tuple[str, list[tuple[int, int]]]:
    """The conversation in the Tulu format as it is encoded, as open-instruct's
    `encode_with_messages_format` (and the RDS+ reference's utils.py) writes it: each message's
    content stripped of surrounding whitespace, no newline after the last turn; and the character
    span of each assistant turn's content with its EOS."""
    text, spans = "", []
    for msg in messages:
        text += ROLE_HEADERS[msg["role"]]
        content = msg["content"].strip()
        if msg["role"] == "assistant":
            start = len(text)
            text += content + eos_token
            spans.append((start, len(text)))
            text += "\n"
        else:
            text += content + "\n"
    return (text[:-1] if text.endswith("\n") else text), spans


def _encode_tulu(tokenizer, conversations: Sequence[Sequence[dict[str, str]]]) -> list[Encoded]:
    """Each conversation tokenised as one string (so a SentencePiece tokenizer adds no word-start
    piece at segment joins), answer tokens found from the character spans of the assistant turns."""
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    return _encode_rendered(tokenizer, [tulu_text(c, tokenizer.eos_token or "") for c in conversations], prefix=bos)


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
    """Total tokens and answer tokens per encoded conversation. The answer is the last assistant
    turn (its content and end of turn), as in CE(A | Q) and in Xia et al.'s `response_token`
    (token_length/compute_token_num.py); earlier turns count as context."""
    total = np.fromiter((len(e.input_ids) for e in encoded), dtype=np.int64, count=len(encoded))
    answer = np.fromiter((sum(e.answer_mask[e.last_answer_start:]) for e in encoded), dtype=np.int64,
                         count=len(encoded))
    return total, answer


def load_tokenizer_dir(path: str | Path):
    """The tokenizer saved at `path` (its EOS as pad token when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_LOADED: dict[tuple, object] = {}  # per process: (path, its files' sizes and mtimes) -> tokenizer


def _tokenizer_at(path: str):
    """The tokenizer at `path`, loaded once per process while its files stay unchanged."""
    stamp = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in Path(path).iterdir()))
    key = (os.path.realpath(path), stamp)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load_tokenizer_dir(path)
    return _LOADED[key]


@dataclass(frozen=True)
class TokenCounter:
    """Total and answer token counts of a chunk of conversations (JSON text of their messages) under
    the tokenizer saved at `tokenizer_dir`; it pickles as its path, for worker processes."""

    tokenizer_dir: str

    def __call__(self, messages: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encoded = encode_conversations(_tokenizer_at(self.tokenizer_dir), [json.loads(m) for m in messages])
        return token_counts(encoded)
