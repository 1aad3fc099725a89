#!/usr/bin/env bash
# The GPU check: rnn_jax's exactness tests on the accelerator's backend, the gradient check at
# the tutorial's sizes in float64 and float32, the GPU benchmark, and parallel-in-time
# evaluation against the sequential scan. Written for a machine
# where JAX with CUDA (and, optionally, PyTorch and Flax) is installed for python3 and nothing
# can be downloaded, so it runs from the checkout without uv:
#
#     experiments/gpu_check.sh              # on the GPU; results in results/gpu_check/
#     experiments/gpu_check.sh cpu quick    # the same steps on a CPU: one test module, tiny benchmark
#
# It needs python3 with jax, equinox, optax, jaxtyping, numpy, matplotlib, pytest and chex;
# tqdm is optional (plain log lines without it), torch and flax are compared where importable.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-gpu}
quick=${2:-}
out=${OUT:-results/gpu_check}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"

python3 -c "import jax; print('JAX', jax.__version__, 'devices:', jax.devices())"
if [ "$device" = gpu ]; then
  python3 -c "import jax, sys; sys.exit(0 if jax.devices()[0].platform == 'gpu' else 'no GPU visible to JAX')"
fi

# The quick tier (-m "not slow") of the numerical modules on this backend: exactness against
# autodiff in float64, every cell, layers, truncation, losses, training, PyTorch agreement.
# Without pyproject's xdist option (the image may lack pytest-xdist).
tests=(tests/test_manual_grads.py tests/test_manual_rule.py tests/test_custom_cell.py tests/test_cells.py
  tests/test_gated.py tests/test_layers.py tests/test_unroll.py tests/test_losses.py tests/test_train.py
  tests/test_interop.py)
if [ -n "$quick" ]; then
  tests=(tests/test_manual_rule.py)
fi
python3 -m pytest -q -o addopts="" -p no:cacheprovider -m "not slow" "${tests[@]}" | tee "$out/tests.txt"

tutorial="--activation sigmoid --input-dim 1 --hidden-dim 100 --output-dim 1 --seq-len 50 --batch 100 --truncation 5"
for dtype in float64 float32; do
  # shellcheck disable=SC2086
  python3 -m rnn_jax gradcheck $tutorial --dtype "$dtype" --json > "$out/gradcheck_$dtype.json"
  python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[1], 'ok' if r['ok'] else 'FAIL', r['max_rel_err']); sys.exit(0 if r['ok'] else 1)" "$out/gradcheck_$dtype.json"
done

python3 experiments/benchmark_gpu.py --device "$device" --out "$out" ${quick:+--quick}

# Parallel-in-time evaluation against the sequential scan on this device (the speed part of
# experiments/beyond_bptt.py; docs/beyond_bptt.md). On a GPU the grid reaches T = 1e5.
if [ -n "$quick" ]; then
  grid=(--seq-lens 100 --hidden-sizes 8 --cells indrnn --memory-seq-len 1000 --rounds 1)
else
  grid=(--seq-lens 100,1000,10000,100000 --hidden-sizes 1,8,32,128 --dense-budget-mb 8192)
fi
python3 experiments/beyond_bptt.py --parts speed "${grid[@]}" --out "$out"
echo "GPU check finished: $out"
