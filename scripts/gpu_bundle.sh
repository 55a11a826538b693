#!/usr/bin/env bash
# Prepares gpu_bundle/ (git-ignored) for a borrowed GPU machine, which has CUDA, cuDNN, cuBLAS and
# NCCL (through PyTorch's wheels) but none of the project's Debian packages: the GPU test and
# benchmark binaries built here, the main job (diffautoml-search, for --device cuda and --dist
# nccl) with the Fashion-MNIST files, plus the shared libraries they need that the machine lacks.
# The build is the default x86-64-v3 one (CMakeLists.txt's DAM_ARCH): it runs on the GPU hosts'
# Xeons whatever CPU built it. Carry gpu_bundle and run scripts/gpu_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$(grep -E '^DAM_ARCH:' build/CMakeCache.txt | cut -d= -f2 || true)
native=$(grep -E '^DAM_NATIVE:' build/CMakeCache.txt | cut -d= -f2 || true)
if [ "$arch" = native ] || [ "$native" = ON ]; then
    echo "gpu_bundle: build/ is configured with -DDAM_ARCH=native, which may not run on the GPU host; reconfigure" >&2
    exit 1
fi
targets=(dam_cuda_tests dam_cuda_autograd_tests cuda_kernels train_step_cuda diffautoml_search)
grep -q '^DAM_NCCL_LIBRARY:.*nccl' build/CMakeCache.txt && targets+=(dam_nccl_tests)
cmake --build build --target "${targets[@]}"
rm -rf gpu_bundle
mkdir -p gpu_bundle/lib
cp build/tests/dam_cuda_tests build/tests/dam_cuda_autograd_tests build/benchmarks/cuda_kernels \
   build/benchmarks/train_step_cuda build/examples/diffautoml-search gpu_bundle/
[ -x build/tests/dam_nccl_tests ] && cp build/tests/dam_nccl_tests gpu_bundle/
# Every library the binaries load from this machine, but the C library's, the compiler's runtime
# (the host's is newer), the driver's, and the big CUDA libraries the host's wheels provide.
skip='^(libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libstdc\+\+|libgcc_s|libcuda|libnccl|libcudnn[a-z_]*|libcublas|libcublasLt)\.so'
for bin in gpu_bundle/*; do
    [ -f "$bin" ] || continue
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
        [[ $name =~ $skip ]] && continue
        [ -e "gpu_bundle/lib/$name" ] || cp -L "$path" gpu_bundle/lib/
    done
done
cp -r /usr/share/datasets/fashion-mnist gpu_bundle/fashion-mnist
du -sh gpu_bundle
