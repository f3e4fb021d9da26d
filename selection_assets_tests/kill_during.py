"""Run `selection-assets ARGS` and SIGKILL this very process at a named point of the lineage, as the
OOM killer would: `python -m selection_assets_tests.kill_during POINT ARGS...`, or many such runs
from one `Forks` server, which imports the libraries once and forks a fresh process per run (each
start would otherwise spend seconds importing torch, transformers and Dagster).

Each point wraps one function of the pipeline so that the kill lands inside real work, after some
of it is finished (a complete shard, a finished ring) and while a write is half done, never at a
convenient boundary. Used by test_kill_matrix.py; the pipeline itself knows nothing of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _freeze() -> None:
    """Stop (SIGSTOP) for the test to look at a live run holding its locks and slot, then kill it."""
    os.kill(os.getpid(), signal.SIGSTOP)
    _die()


def _after_calls(owner, name: str, calls: int, *, half_done=None, only_if=None, end=_die,
                 finish_call: bool = False) -> None:
    """Replace `owner.name` so that its `calls`-th matching call (`only_if(*args, **kwargs)`) runs
    `half_done(*args, **kwargs)` (a write cut short), or the call itself with `finish_call`, and then
    `end`s the process; earlier calls run as they would."""
    original = getattr(owner, name)
    seen = 0

    def wrapper(*args, **kwargs):
        nonlocal seen
        if only_if is None or only_if(*args, **kwargs):
            seen += 1
            if seen == calls:
                if finish_call:
                    original(*args, **kwargs)
                if half_done is not None:
                    half_done(*args, **kwargs)
                end()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _half_written_file(path, suffix: str = "") -> None:
    from selection_assets.core import store

    store._temp_sibling(Path(path), suffix).write_bytes(b"\x93NUMPY half a shard")


def _views_half_created(layout) -> None:
    """Inside the scores database's lock: open it for writing and change it, then die."""
    import duckdb

    with duckdb.connect(str(layout.scores_db)) as con:
        con.execute("CREATE OR REPLACE VIEW scores_all AS SELECT 1 AS half_written")
        _die()


def install(point: str) -> None:
    """Arm the kill at `point`."""
    from transformers import Trainer

    from selection_assets.core import evaluate, harness, ingest, store

    if point == "ingestion":  # the first chunk of the shuffled source written, its file not closed
        _after_calls(ingest, "_write_chunk", 1, finish_call=True)
    elif point == "embedding":  # a pool shard half written, after another one is complete
        _after_calls(store, "write_npy", 2, half_done=lambda array, path: _half_written_file(path, ".npy"),
                     only_if=lambda array, path: "embeddings/position_weighted/pool" in Path(path).as_posix())
    elif point == "answer_losses":  # the second ring's losses, after the first ring's are written
        _after_calls(evaluate, "answer_losses", 2)
    elif point == "score_writing":  # with the scores database's lock held and the database open
        _after_calls(store, "_create_score_views", 1, half_done=_views_half_created)
    elif point == "fine_tuning":  # the third optimiser step of the first fine-tuning; frozen, then killed
        _after_calls(Trainer, "training_step", 3, end=_freeze)
    elif point == "evaluation":  # the second model's test items, after the first model's report
        _after_calls(harness, "evaluate_project_tasks", 2)
    elif point == "second_search_trial":  # one seed: the base model's, then two a trial; the second trial's first
        _after_calls(harness, "evaluate_project_tasks", 4)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def _serve() -> None:
    """The server `Forks` talks to, one JSON line each way: {"run": [POINT or null, ARGS...], "log":
    PATH} forks a process that arms POINT (none: an ordinary run) and runs the command, its output to
    PATH, and answers {"pid"}; {"wait": PID} answers {"exit"}: the code, or minus the signal."""
    from transformers import Trainer  # noqa: F401  (loaded once, for the children)

    from selection_assets import cli

    for line in sys.stdin:
        request = json.loads(line)
        if "run" in request:
            point, *args = request["run"]
            pid = os.fork()
            if pid == 0:  # the child: a fresh run of the command, as a process of its own
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                if point:
                    install(point)
                try:
                    code = cli.main(args)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code or 0)
            answer = {"pid": pid}
        else:
            _, status = os.waitpid(request["wait"], 0)
            answer = {"exit": -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)}
        print(json.dumps(answer), flush=True)


class Forks:
    """A `_serve` process started with `env`: `run` forks a command from it, `wait` its exit code."""

    def __init__(self, env: dict, cwd):
        self.server = subprocess.Popen([sys.executable, "-m", "selection_assets_tests.kill_during", "--serve"],
                                       env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, request: dict) -> dict:
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        return json.loads(self.server.stdout.readline())

    def run(self, point: str | None, args: list[str], log) -> int:
        """Fork `selection-assets ARGS` armed to die at `point` (None: not armed); its pid."""
        return self._ask({"run": [point, *args], "log": str(log)})["pid"]

    def wait(self, pid: int) -> int:
        """The exit code of the forked run `pid` once it has ended (minus the signal that killed it)."""
        return self._ask({"wait": pid})["exit"]

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        _serve()
        sys.exit(0)
    install(sys.argv[1])
    from selection_assets import cli

    sys.exit(cli.main(sys.argv[2:]))
