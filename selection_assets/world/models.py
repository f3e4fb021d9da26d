"""The world's tokenizer (byte-level BPE trained on the pool's text) and its tiny Llama-style LM,
pre-trained briefly on the same text so that its hidden states carry meaning.

Pre-training is chaotic across CPUs: another instruction set rounds differently, and a few hundred
steps later it is another model (another world, with other numbers). So the default world's
pre-trained model ships with the package (`SHIPPED`, made by `selection-assets ship-world`
from a finished demo): the base_model asset starts from it whenever the tokenizer and the
pre-training settings are the ones it was made with, and pre-trains only for other worlds."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from selection_assets.core import store
from selection_assets.core.tokenize import CHAT_SPECIAL_TOKENS
from selection_assets.core.train import TrainSettings, train_causal_lm

if TYPE_CHECKING:  # imported where they run: transformers' model classes take seconds to load
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

EOS, PAD = "<|endoftext|>", "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` (read once, as they come) and save it as a
    transformers tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS, *CHAT_SPECIAL_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=list(CHAT_SPECIAL_TOKENS))
    fast.save_pretrained(out_dir)
    return fast


@dataclass(frozen=True, kw_only=True)
class TinyModelShape:
    """Size of the world's Llama-style model (its values: WorldResource's, and the context length)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    max_positions: int


def build_tiny_llama(vocab_size: int, shape: TinyModelShape, seed: int, eos_id: int, pad_id: int) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama-style causal LM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_layers,
                         num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_heads,
                         max_position_embeddings=shape.max_positions, tie_word_embeddings=True,
                         eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=None)
    return LlamaForCausalLM(config)


def pretrain_tiny_llama(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], shape: TinyModelShape,
                        settings: TrainSettings, out_dir: Path, device: str,
                        log: Callable[[str], None] | None = None) -> dict:
    """Pre-train the tiny LM on packed blocks of `texts` (plain next-token loss); save it to `out_dir`.
    With `log`, training progress goes to it."""
    model = build_tiny_llama(len(tokenizer), shape, settings.seed, tokenizer.eos_token_id, tokenizer.pad_token_id)
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    stream = [token for seq in ids for token in seq]
    block = shape.max_positions
    blocks = [stream[i : i + block] for i in range(0, len(stream) - block + 1, block)]
    examples = [{"input_ids": b, "labels": b} for b in blocks]
    stats = train_causal_lm(model, tokenizer, examples, settings, out_dir, device, log=log, label="pre-training")
    stats.update(parameters=sum(p.numel() for p in model.parameters()), tokens=len(blocks) * block)
    return stats


SHIPPED = Path(__file__).resolve().parent / "shipped"  # the default world's pre-trained model
SHIPPED_RECORD = "shipped.json"  # beside it: the tokenizer digest and settings it was made with


def pretraining_identity(tokenizer_dir: Path, shape: TinyModelShape, settings: TrainSettings,
                         corpus_documents: int) -> dict:
    """What decides a pre-trained world model besides the machine: the tokenizer's bytes, the
    model's shape, the corpus size and the optimisation settings (seed included)."""
    return {"tokenizer": store.content_digest(tokenizer_dir), "shape": asdict(shape),
            "corpus_documents": corpus_documents, "settings": asdict(settings)}


def shipped_model(identity: dict) -> tuple[Path, dict] | None:
    """The shipped pre-trained model and its pre-training record, if it was made with `identity`
    (`pretraining_identity`); None otherwise (another world: pre-train it)."""
    record_path = SHIPPED / SHIPPED_RECORD
    if not record_path.exists():
        return None
    record = json.loads(record_path.read_text())
    return (SHIPPED / "model", record) if record["identity"] == identity else None


def copy_shipped_model(source: Path, out_dir: Path) -> None:
    """Copy the shipped model directory to `out_dir` (renamed into place when complete)."""
    work = store.temp_dir_beside(out_dir)
    shutil.copytree(source, work, dirs_exist_ok=True)
    store.replace_dir(work, out_dir)
