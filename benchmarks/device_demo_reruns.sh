#!/usr/bin/env bash
# How far the world demo's numbers move on a GPU, as one device call: `selection-assets demo` twice
# on one GPU, at once, into two DAGSTER_HOMEs; each run's storage (without its checkpoints) and log
# come back in $OUT, for `python -m benchmarks.gpu_reruns` to compare with each other and with a
# CPU run. The two runs share the GPU, so their wall times are not a speed measurement.
#
# The device image has torch, transformers, peft and accelerate, but not dagster, duckdb, faiss or
# lm-eval. Here, once, in the repository root: `python -m benchmarks.device_site` packs them as
# .site/site.tar.xz (its docstring says how), then:
#   run(command="bash benchmarks/device_demo_reruns.sh", carry=[".site"], timeout_s=600)
# (143 s for both on an H200, 2026-11-27), and for one three-seed run alone:
#   run(command="RUNS=seeds3 bash benchmarks/device_demo_reruns.sh --seeds 3", carry=[".site"], timeout_s=540)
set -uo pipefail
out="${OUT:?set OUT to the folder the results go to}"
mkdir -p /tmp/site && tar xJf .site/site.tar.xz -C /tmp/site || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
{
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    python3 -c "import torch, transformers, dagster, duckdb, faiss, lm_eval, peft; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'dagster', dagster.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$out/device.log"
runs="${RUNS:-a b}"  # one demo per name, all at once; any arguments go to each demo (e.g. --seeds 3)
for run in $runs; do
    DAGSTER_HOME="/tmp/gpu_$run" timeout "${DEMO_TIMEOUT_S:-420}" python3 -m selection_assets.cli demo "$@" \
        >"$out/demo_$run.log" 2>&1 &
done
wait
for run in $runs; do
    tar czf "$out/storage_$run.tgz" -C "/tmp/gpu_$run" --exclude=storage/checkpoints storage demo_run.json
done
ls -l "$out"
