"""A ring's chunks of pure-Python work (validation, tokenisation) spread over worker processes,
results in chunk order.

Workers are forked where the platform can (Linux), else spawned. A spawned worker imports the
caller's main module again (the Dagster or selection-assets command: dagster, torch, transformers),
seconds per worker that ate the whole gain in a first measurement; a fork costs milliseconds. The
threads a fork copies (Dagster's, torch's OpenMP pool, pyarrow's) are never used by the workers:
they only parse JSON in Python and run the Rust tokenizer, no torch, BLAS or CUDA. At most
`2 * workers` chunks are in flight: a worker that finishes early finds one queued while the oldest
is still running, and memory stays at a few chunks whatever the ring's length. The results are the
same whatever the number of workers; one worker runs everything in the calling process.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from typing import Callable, Iterable, Iterator, TypeVar

START_METHOD = "fork" if "fork" in get_all_start_methods() else "spawn"
Item = TypeVar("Item")
Result = TypeVar("Result")


def available_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_workers(requested: int) -> int:
    """`requested` workers, or every available CPU when it is 0."""
    if requested < 0:
        raise ValueError(f"workers must be 0 (every CPU) or more, got {requested}")
    return requested or available_cpus()


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """`function(item)` for every item, in the items' order, over `workers` processes (`function`
    and the items must pickle; a module-level function or a dataclass instance does)."""
    if workers <= 1:
        yield from map(function, items)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context(START_METHOD)) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
