#pragma once
// Row-major GEMM through Eigen: C(M,N) (+)= op(A) * op(B).
#include <cstdint>

#include <Eigen/Core>

#include "../../core/device.hpp"

namespace diffautoml::backend_cpu {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A is (M,K) row-major, or (K,M) when trans_a; B is (K,N), or (N,K) when trans_b.
template <class T>
void gemm(cpu, bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, const T* A, const T* B,
          T* C, bool accumulate) {
    using CMap = Eigen::Map<const RowMatrix<T>>;
    Eigen::Map<RowMatrix<T>> c(C, M, N);
    auto run = [&](const auto& a, const auto& b) {
        if (accumulate) {
            c.noalias() += a * b;
        } else {
            c.noalias() = a * b;
        }
    };
    if (!trans_a && !trans_b) run(CMap(A, M, K), CMap(B, K, N));
    else if (!trans_a && trans_b) run(CMap(A, M, K), CMap(B, N, K).transpose());
    else if (trans_a && !trans_b) run(CMap(A, K, M).transpose(), CMap(B, K, N));
    else run(CMap(A, K, M).transpose(), CMap(B, N, K).transpose());
}

}  // namespace diffautoml::backend_cpu
