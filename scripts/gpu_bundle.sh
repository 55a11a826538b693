#!/usr/bin/env bash
# Prepares gpu_bundle/ (git-ignored) for a borrowed GPU machine, which has CUDA, cuDNN and cuBLAS
# (through PyTorch's wheels) but none of the project's Debian packages: the GPU test and
# benchmark binaries built here, the main job (diffautoml-search, for --device cuda) with the
# Fashion-MNIST files, plus the shared libraries they need that the machine lacks.
# Carry gpu_bundle and run scripts/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target dam_cuda_tests dam_cuda_autograd_tests cuda_kernels train_step_cuda diffautoml_search
rm -rf gpu_bundle
mkdir -p gpu_bundle/lib
cp build/tests/dam_cuda_tests build/tests/dam_cuda_autograd_tests build/benchmarks/cuda_kernels \
   build/benchmarks/train_step_cuda build/examples/diffautoml-search gpu_bundle/
for lib in libfmt.so.9 libgomp.so.1 libcudart.so.13 libz.so.1; do
    path=$(ldd build/examples/diffautoml-search | awk -v l="$lib" '$1 == l {print $3}')
    [ -n "$path" ] && cp -L "$path" gpu_bundle/lib/
done
cp -r /usr/share/datasets/fashion-mnist gpu_bundle/fashion-mnist
du -sh gpu_bundle
