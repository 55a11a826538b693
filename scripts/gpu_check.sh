#!/usr/bin/env bash
# The device check, as one script for a borrowed GPU machine (prepare it here with
# scripts/gpu_bundle.sh and carry gpu_bundle): runs the GPU tests (every kernel against the CPU
# reference; autograd on Var<float, cuda>), the kernel benchmark and the training step against
# PyTorch on the same GPU, then a short joint search on Fashion-MNIST with --device cuda
# (SEARCH_MINUTES, default 3), the NCCL communicator's tests and a 1-rank --dist nccl run against
# the plain one, and writes their output to $OUT (default gpu_check_out/). cuBLAS, cuDNN and NCCL
# come from the machine's PyTorch wheels. Exits non-zero if anything fails.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
wheels=$(python3 -c 'import nvidia.cublas, nvidia.cudnn, nvidia.nccl, os; print(":".join(os.path.join(list(m.__path__)[0], "lib") for m in (nvidia.cublas, nvidia.cudnn, nvidia.nccl)))' 2>/dev/null ||
         python3 -c 'import nvidia.cublas, nvidia.cudnn, os; print(":".join(os.path.join(list(m.__path__)[0], "lib") for m in (nvidia.cublas, nvidia.cudnn)))' 2>/dev/null || true)
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
# NCCL: the communicator's tests, then a 1-rank --dist nccl run of a short job beside the plain
# run of it. A failed test or run fails the check; whether the two model.bin files are identical is
# reported (they should be: one rank takes the one-process path, but cuDNN times its forward
# algorithms in each process, and another choice moves the last bits).
nccl=0
if [ -x gpu_bundle/dam_nccl_tests ]; then
    ./gpu_bundle/dam_nccl_tests >"$out/nccl_tests.txt" 2>&1 || nccl=1
    short=(--device cuda --data gpu_bundle/fashion-mnist --train-subset 2000 --validation 256 --epochs 2 --minutes 0
           --seed 3 --quiet --no-test)
    ./gpu_bundle/diffautoml-search "${short[@]}" --out "$out/plain" >"$out/plain.txt" 2>&1 || nccl=1
    RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 ./gpu_bundle/diffautoml-search "${short[@]}" --dist nccl --out "$out/nccl1" \
        >"$out/nccl1.txt" 2>&1 || nccl=1
    if cmp -s "$out/plain/model.bin" "$out/nccl1/model.bin"; then
        echo "nccl: 1-rank --dist nccl model.bin identical to the plain run's" >>"$out/nccl_tests.txt"
    else
        echo "nccl: model.bin differs from the plain run's: $(grep -h val_accuracy= "$out/plain.txt" "$out/nccl1.txt" | tr '\n' ' ')" \
            >>"$out/nccl_tests.txt"
    fi
fi
cat "$out/device.txt"
tail -30 "$out/tests.txt"
tail -15 "$out/autograd_tests.txt"
cat "$out/benchmark.md" "$out/train_step.txt"
grep -E '^epoch [0-9]+ |^(test_accuracy|wall_seconds)=|error' "$out/search.txt"
[ -f "$out/nccl_tests.txt" ] && tail -5 "$out/nccl_tests.txt"
echo "gpu_check: kernel tests exit $tests, autograd tests exit $autograd, kernel benchmark exit $bench, training step exit $step, search exit $search, nccl $nccl"
[ $tests -eq 0 ] && [ $autograd -eq 0 ] && [ $bench -eq 0 ] && [ $step -eq 0 ] && [ $search -eq 0 ] && [ $nccl -eq 0 ]
