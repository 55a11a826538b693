#pragma once
// Matrix products through cuBLAS, with the CPU kernel's row-major signature (ops/cpu/gemm.hpp).
#include <cstdint>
#include <type_traits>

#include "handles.hpp"

namespace diffautoml::backend_cuda {

/// C(M,N) (+)= op(A) op(B), row-major: A is (M,K), or (K,M) when trans_a; B is (K,N), or (N,K)
/// when trans_b. cuBLAS is column-major, so this computes C^T = op(B)^T op(A)^T, which has the
/// same memory as row-major C.
template <class T>
void gemm(cuda, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, const T* A, const T* B, T* C,
          bool accumulate) {
    if (M == 0 || N == 0) return;
    const T alpha = 1, beta = accumulate ? T(1) : T(0);
    const cublasOperation_t ob = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, oa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
    const int ldb = static_cast<int>(trans_b ? K : N), lda = static_cast<int>(trans_a ? M : K), ldc = static_cast<int>(N);
    DAM_CHECK(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX, shape_error,
              "gemm (cuda): sizes {} x {} x {} exceed cuBLAS's 32-bit dimensions", M, N, K);
    if (K == 0) {  // an empty sum: C = 0 (all-zero bits are 0.0), or C unchanged
        if (!accumulate)
            DAM_CUDA_CHECK(cudaMemsetAsync(C, 0, static_cast<std::size_t>(M * N) * sizeof(T), current_stream()));
        return;
    }
    cublasHandle_t h = handles().blas();
    if constexpr (std::is_same_v<T, float>) {
        DAM_CUBLAS_CHECK(cublasSgemm(h, ob, oa, m, n, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
    } else {
        DAM_CUBLAS_CHECK(cublasDgemm(h, ob, oa, m, n, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
    }
}

}  // namespace diffautoml::backend_cuda
