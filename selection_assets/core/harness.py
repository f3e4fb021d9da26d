"""Evaluation through lm-evaluation-harness (`lm-eval`): the one path that scores checkpoints.

The project's own eval tasks (the world's, or a user's task file, e.g. the `smol` profile's GSM8K
split) become harness tasks: each task's items are written as JSON lines with the prompt rendered
for the evaluated model (its chat template, or the Tulu format for a model without one: exactly
the tokens fine-tuning used) and a YAML that includes one of the configurations shipped in
`selection_assets/harness_tasks/` (`exact_answer`: whole-answer exact match; `gsm8k`: the
harness's GSM8K strict and flexible number extraction). Harness tasks a user names (`gsm8k`,
`mmlu`, ...) are run as the harness defines them, with the model's chat template when it has one.

The model is wrapped in the harness's HFLM in process, so a checkpoint already in memory is not
loaded twice. Every sample the harness logs becomes one row: task, item (the harness's doc id),
prediction and gold as the harness saw them, `correct` (the task's primary metric: its first metric
under its first filter), one column per other metric and filter (`exact_match,strict-match`) and
`context_cut` (the harness cut the item's context from the left to fit the model: a changed item,
counted per task in the report). An answer that cannot fit at all is refused, naming task and item.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import yaml

from selection_assets.core.progress import Progress
from selection_assets.core.tokenize import generation_prompt_text

SHIPPED_CONFIGS = Path(__file__).resolve().parent.parent / "harness_tasks"
SCORINGS = ("exact_answer", "gsm8k")
FEWSHOT_SEED = 1234  # the harness's default few-shot sampling seed
TASK_PREFIX = "selection_assets_"  # keeps a project task named e.g. "gsm8k" apart from the harness's own


def scoring_of(task: dict) -> str:
    """A project task's scoring (one of SCORINGS; `exact_answer` when it names none); ValueError
    naming the task otherwise."""
    scoring = task.get("scoring", "exact_answer")
    if scoring not in SCORINGS:
        raise ValueError(f"eval task {task.get('name')!r}: scoring {scoring!r} is not one of {SCORINGS}")
    return scoring


TASK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # a task name names files: it stays a plain name


def task_file_problem(tasks, origin: str) -> str | None:
    """What is wrong with an eval-task file's content ({'tasks': [...]}), naming the task and field
    at fault; None when nothing is."""
    if not isinstance(tasks, dict) or not isinstance(tasks.get("tasks"), list) or not tasks["tasks"]:
        return f"eval tasks from {origin!r}: expected {{'tasks': [...]}} with at least one task"
    for position, task in enumerate(tasks["tasks"]):
        if not isinstance(task, dict):
            return f"eval task #{position} from {origin!r}: expected an object with a name, got {task!r:.80}"
        name = task.get("name", f"#{position}")
        if not isinstance(name, str) or not TASK_NAME.fullmatch(name):
            return (f"eval task #{position} from {origin!r}: name {name!r} must be letters, digits, '_', '-' or '.' "
                    "(not starting with '.'); it names files, which must stay inside their folder")
        try:
            scoring_of(task)
        except ValueError as error:
            return str(error)
        for split in ("dev", "test"):
            rows = task.get(split)
            if not isinstance(rows, list) or not rows:
                return f"eval task {name!r}: '{split}' must be a non-empty list"
            for row_index, row in enumerate(rows):
                if not isinstance(row, dict):
                    return f"eval task {name!r} {split}[{row_index}]: expected an object, got {type(row).__name__}"
                if not isinstance(row.get("messages"), list) or not isinstance(row.get("answer"), str):
                    return f"eval task {name!r} {split}[{row_index}]: needs 'messages' (list) and 'answer' (text)"
    return None


def harness_task_name(task: dict) -> str:
    """The harness task name of a project task."""
    return TASK_PREFIX + task["name"]


def write_project_tasks(tasks: Sequence[dict], tokenizer, directory: Path, split: str = "test") -> list[str]:
    """Write each project task's `split` (and its dev split, the harness's few-shot pool) as JSON lines
    with prompts rendered for `tokenizer`, and a task YAML including its shipped scoring config.
    Returns the harness task names, in task order."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for task in tasks:
        scoring = scoring_of(task)
        files = {}
        for part in dict.fromkeys((split, "dev")):
            path = directory / f"{task['name']}.{part}.jsonl"
            with path.open("w", encoding="utf-8") as handle:
                for row in task[part]:
                    prompt = generation_prompt_text(tokenizer, row["messages"])
                    handle.write(json.dumps({"prompt": prompt, "answer": row["answer"]}, ensure_ascii=False) + "\n")
            files[part] = str(path)
        # the datasets cache of these files lives and dies with `directory`, not in ~/.cache
        config = {"include": str(SHIPPED_CONFIGS / f"{scoring}.yaml"), "task": harness_task_name(task),
                  "test_split": split,
                  "dataset_kwargs": {"data_files": files, "cache_dir": str(directory / "datasets-cache")}}
        if "max_new_tokens" in task:
            base = yaml.safe_load((SHIPPED_CONFIGS / f"{scoring}.yaml").read_text())
            config["generation_kwargs"] = {**base["generation_kwargs"], "max_gen_toks": int(task["max_new_tokens"])}
        (directory / f"{task['name']}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        names.append(harness_task_name(task))
    return names


def _metric_keys(sample: dict) -> list[str]:
    """The metric names a logged sample carries (everything that is not the sample's own bookkeeping)."""
    bookkeeping = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                   "doc_hash", "prompt_hash", "target_hash"}
    return [k for k in sample if k not in bookkeeping]


def sample_rows(task: str, samples: Sequence[dict]) -> pd.DataFrame:
    """One row per document from the harness's logged samples of one task (one sample per document
    and filter): prediction and gold under the first filter, `correct` = the first metric under the
    first filter, and `metric,filter` columns for every metric under every filter."""
    by_doc: dict[int, dict] = {}
    primary: tuple[str, str] | None = None
    for sample in samples:
        metrics = sample.get("metrics") or _metric_keys(sample)
        filter_name = sample.get("filter", "none")
        if primary is None:
            primary = (metrics[0], filter_name)
        row = by_doc.setdefault(int(sample["doc_id"]), {"task": task, "item": int(sample["doc_id"])})
        if filter_name == primary[1]:
            response = sample["filtered_resps"][0]
            row["prediction"] = response if isinstance(response, str) else json.dumps(response)
            row["gold"] = str(sample["target"])
        for metric in metrics:
            row[f"{metric},{filter_name}"] = float(sample[metric])
    frame = pd.DataFrame([by_doc[d] for d in sorted(by_doc)])
    frame["correct"] = frame[f"{primary[0]},{primary[1]}"]
    return frame


class ContextTooShort(ValueError):
    """A harness item whose answer (a choice, or the generation budget) cannot fit the model's context."""


def context_fit(requests, encode_pair: Callable, encode: Callable, max_length: int,
                default_max_gen_toks: int) -> set[tuple[str, int]]:
    """The (task, doc id) of every harness request whose context lm-eval must cut from the left to fit
    `max_length` tokens (that changes the item, so reports count them). Raises ContextTooShort naming
    the task, the item and the fix when what must be scored cannot fit at all: a choice longer than
    the context (loglikelihood), or a generation budget that leaves no context (generate_until).
    `encode_pair` and `encode` tokenise as the harness's model does."""
    cut = set()
    for request in requests:
        where = f"harness task {request.task_name!r}, item {request.doc_id}"
        if request.request_type == "generate_until":
            context, gen_kwargs = request.args
            budget = int((gen_kwargs or {}).get("max_gen_toks", default_max_gen_toks))
            if budget >= max_length:
                raise ContextTooShort(f"{where}: {budget} tokens to generate leave no room in the model's context of "
                                      f"{max_length}; fix: lower the task's max_gen_toks (max_new_tokens for a "
                                      "project task) or use a base model with a longer context")
            if len(encode(context)) > max_length - budget:
                cut.add((request.task_name, request.doc_id))
        elif request.request_type in ("loglikelihood", "multiple_choice"):
            context, continuation = request.args
            context_tokens, continuation_tokens = encode_pair(context, continuation)
            if len(continuation_tokens) > max_length:
                raise ContextTooShort(f"{where}: an answer choice of {len(continuation_tokens)} tokens cannot fit "
                                      f"the model's context of {max_length} (it begins {continuation[:60]!r}); fix: "
                                      "shorten or drop that item in the task's data, leave the task out of "
                                      "[data] harness_tasks, or use a base model with a longer context")
            if len(context_tokens) + len(continuation_tokens) > max_length + 1:
                cut.add((request.task_name, request.doc_id))
    return cut


DEFAULT_MAX_GEN_TOKS = 256  # HFLM's generation budget where a task names none


def _chat_template_of(tokenizer):
    """Conversation -> prompt text as HFLM.apply_chat_template renders it for the harness."""
    return lambda history, add_generation_prompt=True: tokenizer.apply_chat_template(
        history, tokenize=False, add_generation_prompt=add_generation_prompt,
        continue_final_message=not add_generation_prompt)


def contexts_to_cut(tokenizer, tasks: Sequence[dict], max_length: int, *, harness_include: str = "",
                    chat_template: bool = False) -> dict[str, int]:
    """Before any work: per task, how many test items the harness will cut from the left to fit a
    model of `max_length` tokens, from the very requests evaluation will make (the project's tasks as
    written for the harness, and the harness tasks named in `tasks`). Raises ContextTooShort naming
    task, item and fix when an answer cannot fit at all."""
    from lm_eval.tasks import TaskManager

    from selection_assets.core.preflight import encode_pair_with

    encode_pair, encode = encode_pair_with(tokenizer)
    project = [t for t in tasks if "harness_task" not in t]
    named = [t["harness_task"] for t in tasks if "harness_task" in t]
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="selection-assets-preflight-") as scratch:
        loaded = []
        if project:
            names = write_project_tasks(project, tokenizer, Path(scratch))
            manager = TaskManager(include_path=scratch, include_defaults=False)
            renamed = {harness_task_name(t): t["name"] for t in project}
            loaded += [(renamed.get(leaf.config.task, leaf.config.task), leaf, False)  # prompts rendered
                       for leaf in _leaf_tasks(manager.load_task_or_group(names))]
        if named:
            manager = TaskManager(include_path=harness_include or None)
            loaded += [(leaf.config.task, leaf, chat_template)
                       for leaf in _leaf_tasks(manager.load_task_or_group(named))]
        for name, leaf, templated in loaded:
            if leaf.get_config("num_fewshot") is None:
                leaf.set_config(key="num_fewshot", value=0)
            leaf.set_fewshot_seed(seed=FEWSHOT_SEED)
            leaf.build_all_requests(apply_chat_template=templated, fewshot_as_multiturn=templated,
                                    chat_template=_chat_template_of(tokenizer) if templated else None)
            try:
                cut = context_fit(leaf.instances, encode_pair, encode, max_length, DEFAULT_MAX_GEN_TOKS)
            except ContextTooShort as error:
                raise ContextTooShort(str(error).replace(repr(leaf.config.task), repr(name), 1)) from None
            counts[name] = len({doc for _, doc in cut})
    return counts


def _reporting_lm(model, tokenizer, batch_size: int, progress: Progress | None):
    """The harness's HFLM over an in-memory model, advancing `progress` by each generated batch and
    noting in `.cut` the (task, doc id) of every item whose context it cuts (`context_fit`)."""
    from lm_eval.models.huggingface import HFLM

    class ReportingHFLM(HFLM):
        cut: set = set()

        def _fit(self, requests) -> None:
            self.cut = self.cut | context_fit(requests, self._encode_pair,
                                              lambda text: self.tok_encode(text), self.max_length, self.max_gen_toks)

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            self._fit(requests)
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

        def generate_until(self, requests, disable_tqdm: bool = False):
            self._fit(requests)
            # its own progress bar only when nothing else reports progress
            return super().generate_until(requests, disable_tqdm=disable_tqdm or progress is not None)

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            output = super()._model_generate(context, max_length, stop, **generation_kwargs)
            if progress is not None:
                progress.advance(int(context.shape[0]))
            return output

    return ReportingHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=False)


def run_harness(model, tokenizer, task_names: Sequence[str], *, include_path: str | Path | None = None,
                builtin_tasks: bool = True, chat_template: bool = False, batch_size: int = 32,
                expected_answers: int | None = None, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Evaluate an in-memory causal LM on harness tasks (found under `include_path`, then among the
    harness's own when `builtin_tasks`), one task per harness call. With `log`, progress lines count
    generated answers against `expected_answers` when it is known, else finished tasks.
    Returns the per-item rows of every task (of every task of a group)."""
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    answers = (Progress("harness evaluation", expected_answers, log, unit="answers")
               if log and expected_answers else None)
    lm = _reporting_lm(model, tokenizer, batch_size, answers)
    manager = TaskManager(include_path=str(include_path) if include_path else None, include_defaults=builtin_tasks)
    progress = Progress("harness evaluation", len(task_names), log, unit="tasks") if log and not answers else None
    frames = []
    for name in task_names:
        # the harness's evaluate() as simple_evaluate() calls it, without the environment report
        # (pip list, git describe) simple_evaluate() collects on every call
        loaded = manager.load([name])
        for task in loaded["tasks"].values():
            if task.get_config("num_fewshot") is None:
                task.set_config(key="num_fewshot", value=0)
            task.set_fewshot_seed(seed=FEWSHOT_SEED)
        output = evaluate(lm=lm, task_dict=loaded, log_samples=True, bootstrap_iters=0,
                          apply_chat_template=chat_template, fewshot_as_multiturn=chat_template)
        for leaf, samples in output["samples"].items():  # a group (mmlu) logs each of its tasks
            rows = sample_rows(leaf, samples)
            frames.append(rows.assign(context_cut=[(leaf, item) in lm.cut for item in rows["item"]]))
        if progress:
            progress.advance(1)
    return pd.concat(frames, ignore_index=True)


def evaluate_project_tasks(model, tokenizer, tasks: Sequence[dict], *, split: str = "test", batch_size: int = 32,
                           log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The project's tasks through the harness: per-item rows under the project's task names."""
    with tempfile.TemporaryDirectory(prefix="selection-assets-harness-") as scratch:
        names = write_project_tasks(tasks, tokenizer, Path(scratch), split=split)
        items = run_harness(model, tokenizer, names, include_path=scratch, builtin_tasks=False,
                            batch_size=batch_size, expected_answers=sum(len(t[split]) for t in tasks), log=log)
    items["task"] = items["task"].map({harness_task_name(t): t["name"] for t in tasks})
    return items


def _leaf_tasks(loaded: dict) -> list:
    """The tasks of a `load_task_or_group` result, groups flattened."""
    leaves = []
    for value in loaded.values():
        leaves.extend(_leaf_tasks(value) if isinstance(value, dict) else [value])
    return leaves


def _query(task, doc) -> dict:
    """A harness document as an RDS+ query: its prompt as a user turn, its gold answer as the reply."""
    target = task.doc_to_target(doc)
    if isinstance(target, int) and task.config.doc_to_choice is not None:  # multiple choice: the answer text
        target = task.doc_to_choice(doc)[target]
    elif isinstance(target, list):
        target = target[0]
    return {"messages": [{"role": "user", "content": str(task.doc_to_text(doc))}], "answer": str(target)}


def named_task_entries(names: Sequence[str], include_path: str = "", n_dev: int = 30) -> list[dict]:
    """Eval-task entries for harness tasks named by the user: no test items of ours (the harness
    scores its own test split) and, as dev queries for RDS+, up to `n_dev` documents of each task's
    few-shot split (else its validation split), spread over the tasks of a group.

    Raises ValueError naming each task that is unknown or whose data cannot be loaded."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path or None)
    problems = [f"{name}: not a task lm-evaluation-harness knows" for name in names if name not in manager.all_tasks]
    entries = []
    for name in names:
        if name not in manager.all_tasks:
            continue
        try:
            leaves = _leaf_tasks(manager.load_task_or_group([name]))
        except Exception as error:  # whatever the harness's dataset loader raises
            problems.append(f"{name}: cannot be loaded ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
            continue
        per_leaf = max(1, -(-n_dev // len(leaves)))
        dev = []
        for leaf in leaves:
            docs = leaf.fewshot_docs() or (leaf.validation_docs() if leaf.has_validation_docs() else None) or []
            dev.extend(_query(leaf, doc) for doc in list(docs)[:per_leaf])
        if not dev:
            problems.append(f"{name}: has neither a few-shot nor a validation split to take RDS+ queries from")
            continue
        entries.append({"name": name, "harness_task": name, "dev": dev[:n_dev], "test": []})
    if problems:
        raise ValueError("; ".join(problems))
    return entries
