"""Pack the Python packages a lent GPU machine lacks, for `benchmarks/device_demo_reruns.sh`.

The device image (Python 3.12) has torch, transformers, peft, accelerate, pandas and pyarrow, but
not dagster, duckdb, faiss, datasets or lm-eval. This downloads, for CPython 3.12 on x86-64 Linux,
the wheels of CARRIED (each at the version installed here, so both machines run the same code), builds
wheels for the few that publish only sources, unpacks them into one folder and packs it as
.site/site.tar.xz (about 38 MB; calls carry at most 64 MiB). The webserver, the real-material
packages and the encoder's model stay behind: the world demo does not import them.

    echo /.site/ >> .git/info/exclude      # once: the archive never enters git
    python -m benchmarks.device_site       # ~3 min, most of it xz
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# the project's runtime dependencies, with theirs, that the device image does not hold
CARRIED = ("alembic", "annotated-types", "antlr4-python3-runtime", "backoff", "chardet", "coloredlogs", "dagster",
           "dagster-pipes", "dagster-shared", "dataproperty", "datasets", "defusedxml", "dill", "docstring-parser",
           "duckdb", "evaluate", "faiss-cpu", "grpcio-health-checking", "humanfriendly", "lm-eval", "mako",
           "mbstrdecoder", "more-itertools", "multiprocess", "nltk", "pathlib-abc", "pathvalidate", "platformdirs",
           "protobuf", "pydantic", "pydantic-core", "pytablewriter", "python-dotenv", "pytz", "rouge-score",
           "sqlalchemy", "sqlitedict", "structlog", "tabledata", "tcolorpy", "tomli", "tomlkit", "toposort",
           "truststore", "typepy", "typing-inspection", "tzdata", "universal-pathlib", "watchdog", "word2number")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def download(requirement: str, into: Path) -> None:
    """The requirement's CPython 3.12 x86-64 wheel, or a wheel built here from its sources when it
    publishes none (pure-Python packages only, which run on any Python)."""
    binary = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
              "3.12", "--implementation", "cp", *(f"--platform={platform}" for platform in PLATFORMS), "-d",
              str(into), requirement]
    if subprocess.run(binary, capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(into), requirement],
                       check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / ".site" / "site.tar.xz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        wheels, site = Path(work) / "wheels", Path(work) / "site"
        for name in CARRIED:
            download(f"{name}=={importlib.metadata.version(name)}", wheels)
        for wheel in sorted(wheels.glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(args.out, "w:xz") as archive:
            for path in sorted(site.iterdir()):
                archive.add(path, arcname=path.name)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.0f} MiB, {len(CARRIED)} packages)")


if __name__ == "__main__":
    main()
