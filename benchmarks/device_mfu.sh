#!/usr/bin/env bash
# Issue 13 item 6 as one device call (290 s on an H200, 2026-11-26): the 1B-Llama embedding MFU in
# bf16, eager and then compiled (`embed_compile`), results and log into $OUT.
#
# The device image has torch and transformers but not duckdb, which selection_assets.core imports.
# Here, once, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl duckdb==2.0.1
# then: run(command="bash benchmarks/device_mfu.sh", carry=[".whl"], timeout_s=600)
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
out="${OUT:-benchmarks/results}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/device_mfu.log"
for flags in "" "--compile"; do
    python3 -m benchmarks.embedding_throughput --mfu --model-size 1b --batch-tokens 16384 --repeats 3 $flags \
        2>&1 | tee -a "$out/device_mfu.log"
done
if [ "$out" != benchmarks/results ]; then
    cp benchmarks/results/embedding_throughput_1b_cuda_bfloat16_16384*.json "$out"/
fi
