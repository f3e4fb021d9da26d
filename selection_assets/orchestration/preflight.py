"""The preflight of an experiment: every check of `core/preflight.py` over the settings the
resources hold, before any work (the command line before it starts runs; every stage job's executor
before its first step, runs.py). Refusals name the setting (with its variable), the problem and the
fix; nothing is written. A pass is remembered under the storage root per settings, so a backfill's
hundreds of runs check once.
"""

from __future__ import annotations

import json
from pathlib import Path

from selection_assets.core import real_material
from selection_assets.core import harness, tokenize
from selection_assets.core.preflight import (PreflightFailed, Refusal, footprint, model_refusals, passed,
                                             pool_refusals, remember_pass, settings_key, storage_refusals)

POOL = "DataResource.pool (SELECTION_ASSETS_POOL)"
BASE_MODEL = "DataResource.base_model (SELECTION_ASSETS_BASE_MODEL)"
EVAL_TASKS = "DataResource.eval_tasks (SELECTION_ASSETS_EVAL_TASKS)"
HARNESS_TASKS = "DataResource.harness_tasks ([data] harness_tasks)"
STORAGE = "StorageResource.root (SELECTION_ASSETS_STORAGE, else $DAGSTER_HOME/storage)"
PASSES = ".preflight"  # under the storage root: one empty file per settings that passed


def load_eval_tasks(data, world) -> dict:
    """The eval tasks the settings name ({'tasks': [...]}), named harness tasks included, checked
    (`core.harness.task_file_problem`); ValueError naming the setting and what is wrong."""
    from selection_assets.world import generate

    if data.eval_tasks == "world":
        tasks = generate.generate_eval_tasks(data.seed, n_dev=world.n_dev, n_test=world.n_test)
    elif data.eval_tasks in real_material.PACKAGED_EVAL_TASKS:
        try:
            tasks = real_material.gsm8k_tasks(data.seed, n_dev=world.n_dev, n_test=world.n_test,
                                              max_new_tokens=data.max_new_tokens)
        except (FileNotFoundError, ValueError) as error:
            raise ValueError(f"{EVAL_TASKS}={data.eval_tasks!r}: {error}") from None
    else:
        try:
            with open(data.eval_tasks, encoding="utf-8") as handle:
                tasks = json.load(handle)
        except (OSError, ValueError) as error:
            raise ValueError(f"{EVAL_TASKS}={data.eval_tasks!r} cannot be read: {error}") from None
    problem = harness.task_file_problem(tasks, data.eval_tasks)
    if problem:
        raise ValueError(f"{EVAL_TASKS}: {problem}")
    named = [n.strip() for n in data.harness_tasks.split(",") if n.strip()]
    if named:
        try:
            tasks["tasks"].extend(harness.named_task_entries(named, data.harness_include, n_dev=world.n_dev))
        except ValueError as error:
            raise ValueError(f"{HARNESS_TASKS}={data.harness_tasks!r}: {error}") from None
    return tasks


def _built_in(base_model: str) -> bool:
    """The world's model (made by the run) or one the project's packages ship: nothing to fetch."""
    return base_model == "world" or base_model in real_material.PACKAGED_MODELS


def _model_tokenizer_and_config(data):
    """The base model's tokenizer (with the Tulu markers it would gain) and config; None for the
    world's model, which does not exist before the run makes it."""
    from transformers import AutoConfig, AutoTokenizer

    if data.base_model == "world":
        return None, None
    if data.base_model in real_material.PACKAGED_MODELS:
        gguf = real_material.PACKAGED_MODELS[data.base_model].path()
        return real_material.load_gguf_tokenizer(gguf), AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return AutoTokenizer.from_pretrained(data.base_model), AutoConfig.from_pretrained(data.base_model)


def context_length(config, tokenizer) -> int:
    """The model's context in tokens as the harness's HFLM reads it."""
    text = config.get_text_config()
    for attribute in ("n_positions", "max_position_embeddings", "n_ctx"):
        if getattr(text, attribute, None):
            return int(getattr(text, attribute))
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < 10**9 else 2048


def refusals(resources: dict, grid, checkpoints: int, echo=None) -> list[Refusal]:
    """Every check over `resources` (the experiment's resources by name) and `grid`, for an
    experiment writing `checkpoints` fine-tuned models; the refusals (empty: go). With `echo`, says
    how many harness items will have their context cut."""
    data, world, storage = resources["data"], resources["world"], resources["storage"]
    found = [*pool_refusals(POOL, data.pool, real_material.pool_source(data.pool)),
             *([] if _built_in(data.base_model) else
               model_refusals(BASE_MODEL, data.base_model, data.allow_pickle_weights))]
    try:
        tasks = load_eval_tasks(data, world)
    except ValueError as error:
        setting, _, problem = str(error).partition(": ")
        found.append(Refusal(setting.split("=")[0], problem or str(error),
                             "correct the file or the names (see the problem above)"))
        tasks = None
    tokenizer = config = None
    if not any(r.setting == BASE_MODEL for r in found):
        tokenizer, config = _model_tokenizer_and_config(data)
    if tasks is not None and tokenizer is not None:
        try:
            cut = harness.contexts_to_cut(tokenizer, tasks["tasks"], context_length(config, tokenizer),
                                          harness_include=data.harness_include,
                                          chat_template=tokenize.has_chat_template(tokenizer))
        except harness.ContextTooShort as error:
            found.append(Refusal(EVAL_TASKS if not data.harness_tasks else HARNESS_TASKS, str(error).split("; fix: ")[0],
                                 str(error).split("; fix: ")[-1]))
        else:
            if echo and any(cut.values()):
                echo("  contexts the harness will cut to fit the model (counted in each eval report): "
                     + ", ".join(f"{task} {n}" for task, n in cut.items() if n))
    text = config.get_text_config() if config is not None else None
    hidden = text.hidden_size if text is not None else world.hidden_size
    layers = text.num_hidden_layers if text is not None else world.num_layers
    vocab = text.vocab_size if text is not None else world.vocab_size
    source = Path(real_material.pool_source(data.pool))
    source_bytes = source.stat().st_size if source.is_file() else max(grid.pool_sizes) * 2048
    found += storage_refusals(STORAGE, Path(storage.root),
                              footprint(source_bytes, max(grid.pool_sizes), hidden, 12 * layers * hidden**2 + vocab * hidden,
                                        checkpoints))
    return found


def settings_values(resources: dict, grid, checkpoints: int) -> dict:
    """What a preflight's verdict depends on: the data and world settings, the grid, the footprint."""
    return {"data": resources["data"].model_dump(), "world": resources["world"].model_dump(),
            "root": str(resources["storage"].root), "pool_sizes": grid.pool_sizes, "checkpoints": checkpoints}


def ensure(resources: dict, grid, checkpoints: int, echo=None) -> None:
    """Run the preflight unless these settings already passed under this storage root; raise
    PreflightFailed with every refusal, else remember the pass."""
    key = settings_key(settings_values(resources, grid, checkpoints))
    directory = Path(resources["storage"].root) / PASSES
    if passed(directory, key):
        return
    found = refusals(resources, grid, checkpoints, echo)
    if found:
        raise PreflightFailed(found)
    remember_pass(directory, key)
