#!/usr/bin/env bash
# sae-jax on a machine with an accelerator: the test suite, then the benchmarks at larger sizes.
#
#   bash benchmarks/gpu.sh             # on the GPU machine, from anywhere in the checkout (≲ 10 min)
#   bash benchmarks/gpu.sh --dry-run   # the same steps on this CPU at tiny sizes (checks the script)
#
# Writes benchmarks/results/<tag>.json, <tag>.md and <tag>-tests.txt, where <tag> names the device
# (e.g. gpu-NVIDIA_H100_80GB_HBM3). JAX must already see the GPU (a CUDA jaxlib, e.g.
# pip install -U "jax[cuda12]"); the script refuses to run on a CPU-only JAX unless --dry-run.
# Sizes: S3 (1024·4096·4096) with the CPU peers, then 4096·16384·65536 (float32; 4.4e13 flops per
# call, CPU peers left out) where the target is ≥ 60% of the device's measured matmul rate
# (the "GEMM jax" row: the same five products alone). Float32 matmuls use JAX's default
# precision on the device (TF32 on recent NVIDIA GPUs) for the kernel and the GEMM rate alike.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1

backend="$("$PY" -c 'import jax; print(jax.default_backend())')"
device="$("$PY" -c 'import jax, re; d = jax.devices()[0]; print(re.sub(r"[^A-Za-z0-9_.-]+", "_", d.device_kind))')"
echo "# backend=$backend device=$device dry_run=$DRY"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

if [[ $DRY == 1 ]]; then
    out="$(mktemp -d)"
    tag="dryrun-$backend-$device"
    tests=(tests/test_benchmarks.py)
    bench=(--quick --sizes S1,512x1024x2048 --dtypes float32 --budget 0.2 --skip e2e,memory,others
           --sweep-steps 3 --max-peer-flops 1e9)
else
    if [[ "$backend" == "cpu" ]]; then
        echo "JAX sees no accelerator (backend cpu): install a GPU jaxlib, or use --dry-run" >&2
        exit 3
    fi
    out="benchmarks/results"
    tag="gpu-$device"
    tests=()
    bench=(--sizes S3,4096x16384x65536 --dtypes float32 --budget 5 --skip others
           --memory-sizes S3,4096x16384x65536 --sweep-size 784x196x10000 --sweep-steps 100)
fi
mkdir -p "$out"

echo "## tests"
set +e
timeout 240 "$PY" -m pytest -q -x "${tests[@]}" 2>&1 | tee "$out/$tag-tests.txt"
rc_tests=${PIPESTATUS[0]}
set -e

echo "## benchmarks"
timeout 330 "$PY" -m benchmarks "${bench[@]}" --out "$out" --tag "$tag"
echo "tests exit code: $rc_tests; results in $out/$tag*.json and .md"
exit "$rc_tests"
