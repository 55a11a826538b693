#!/usr/bin/env bash
# The device check, as one script for a borrowed GPU machine (prepare it here with
# scripts/gpu_bundle.sh and carry gpu_bundle): runs the GPU tests (every kernel against the CPU
# reference; autograd on Var<float, cuda>), the kernel benchmark and the training step against
# PyTorch on the same GPU, then a short joint search on Fashion-MNIST with --device cuda
# (SEARCH_MINUTES, default 3), and writes their output to $OUT (default gpu_check_out/). cuBLAS and
# cuDNN come from the machine's PyTorch wheels. Exits non-zero if anything fails.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
wheels=$(python3 -c 'import nvidia.cublas, nvidia.cudnn, os; print(":".join(os.path.join(list(m.__path__)[0], "lib") for m in (nvidia.cublas, nvidia.cudnn)))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$PWD/gpu_bundle/lib:${wheels}:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv >"$out/device.txt" 2>&1
./gpu_bundle/dam_cuda_tests --durations yes >"$out/tests.txt" 2>&1
tests=$?
./gpu_bundle/dam_cuda_autograd_tests --durations yes >"$out/autograd_tests.txt" 2>&1
autograd=$?
./gpu_bundle/cuda_kernels >"$out/benchmark.md" 2>&1
bench=$?
./gpu_bundle/train_step_cuda --peer benchmarks/torch_train_step_gpu.py >"$out/train_step.txt" 2>&1
step=$?
./gpu_bundle/diffautoml-search --device cuda --data gpu_bundle/fashion-mnist --minutes "${SEARCH_MINUTES:-3}" \
    --out "$out/search" >"$out/search.txt" 2>&1
search=$?
cat "$out/device.txt"
tail -30 "$out/tests.txt"
tail -15 "$out/autograd_tests.txt"
cat "$out/benchmark.md" "$out/train_step.txt"
grep -E '^epoch [0-9]+ |^(test_accuracy|wall_seconds)=|error' "$out/search.txt"
echo "gpu_check: kernel tests exit $tests, autograd tests exit $autograd, kernel benchmark exit $bench, training step exit $step, search exit $search"
[ $tests -eq 0 ] && [ $autograd -eq 0 ] && [ $bench -eq 0 ] && [ $step -eq 0 ] && [ $search -eq 0 ]
