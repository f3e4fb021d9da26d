"""Byte-level fuzzing of every pool format the readers take (selection_assets_tests/fuzzing.py):
valid JSON lines, JSON arrays and Parquet files are mutated at the byte level and read, validated
and written as a ring writes them. On every input, whatever it holds:

- nothing crashes: a text file always reads; a Parquet file reads or is refused as unreadable;
- nothing is lost: records in = kept + quarantined, and for text every byte of the file belongs
  to exactly one record, in order, but whitespace, line breaks, array brackets and the commas
  between elements;
- every kept and quarantined row can be stored.

The seed changes with every run and is printed on failure, and a failing input is written to the
regression corpus (`fuzz_corpus/`, committed), which every run replays first."""

import os
import random
from pathlib import Path

import pytest

from selection_assets_tests import fuzzing


@pytest.mark.parametrize("path", sorted(fuzzing.CORPUS.glob("*")) if fuzzing.CORPUS.exists() else [], ids=lambda p: p.name)
def test_every_input_of_the_regression_corpus_keeps_the_invariant(path):
    fuzzing.check(path)


def test_every_fuzzed_input_keeps_the_invariant(tmp_path):
    seed = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    batch: list[tuple[Path, list[bytes]]] = []
    for number, (name, data) in enumerate(fuzzing.inputs(seed)):
        path = tmp_path / name
        path.write_bytes(data)
        try:
            batch.append((path, fuzzing.read_checked(path)))
            if len(batch) == 250 or number == sum(fuzzing.INPUTS.values()) - 1:
                try:
                    fuzzing.validate_and_store([record for _, raw in batch for record in raw])
                except Exception:  # find the input of the batch that breaks it
                    for path, raw in batch:
                        fuzzing.validate_and_store(raw)
                    raise
                batch = []
        except Exception as error:
            kept = fuzzing.keep(path.read_bytes(), path.suffix)
            raise AssertionError(f"FUZZ_SEED={seed}: input {path.name} (kept as {kept}) breaks the invariant: "
                                 f"{type(error).__name__}: {error}") from error
