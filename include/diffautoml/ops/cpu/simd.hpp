#pragma once
// Building blocks of the CPU kernels that work on a vector of channels at once: GNU vector types
// of 32 bytes (one AVX register; the compiler splits them where the target has narrower ones;
// shuffles by __builtin_shufflevector, which GCC >= 12 and clang both provide), register
// transposes between planar (NCHW) and channel-interleaved layouts, a packing-free
// register-blocked GEMM for the small matrices of Winograd's transform domain and of the
// GEMM-based convolutions, and with_widest, which runs such a kernel on 64-byte vectors where the
// CPU has AVX-512 (chosen at run time: our builds target AVX2).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <utility>

/// On the lambdas of register blocks: inlined even into a function compiled for another
/// instruction set (with_widest's AVX-512 caller), where GCC would otherwise call them.
#define DAM_SIMD_INLINE __attribute__((always_inline))

namespace diffautoml::backend_cpu::simd {

/// Calls f(integral_constant<int, 0>) .. f(integral_constant<int, N - 1>) as straight-line code,
/// so that the small per-tile arrays below live in registers.
template <int N, class Fn>
[[gnu::always_inline]] inline void unroll(Fn&& f) {
    [&]<int... I>(std::integer_sequence<int, I...>) __attribute__((always_inline)) {
        (f(std::integral_constant<int, I>{}), ...);
    }(
        std::make_integer_sequence<int, N>{});
}

/// A vector of `lanes<T>` values (32 bytes), typically one pixel's values of lanes<T> channels.
template <class T>
struct Lanes {
    typedef T type __attribute__((vector_size(32)));
};
template <class T>
using Vec = typename Lanes<T>::type;
template <class T>
inline constexpr std::int64_t lanes = static_cast<std::int64_t>(32 / sizeof(T));
/// n channels rounded up to whole vectors.
template <class T>
inline std::int64_t padded(std::int64_t n) {
    return (n + lanes<T> - 1) / lanes<T> * lanes<T>;
}
/// v = x in every lane (vectors travel by reference here, as in load() below).
template <class T>
[[gnu::always_inline]] inline void splat(T x, Vec<T>& v) {
    for (int l = 0; l < lanes<T>; ++l) v[l] = x;
}
/// The sum of v's lanes, as a tree of vector adds.
template <class T>
[[gnu::always_inline]] inline T sum_lanes(const Vec<T>& v) {
    Vec<T> s = v;
    if constexpr (lanes<T> == 8) {
        s += __builtin_shufflevector(s, s, 4, 5, 6, 7, 0, 1, 2, 3);
        s += __builtin_shufflevector(s, s, 2, 3, 0, 1, 6, 7, 4, 5);
        s += __builtin_shufflevector(s, s, 1, 0, 3, 2, 5, 4, 7, 6);
    } else {
        static_assert(lanes<T> == 4);
        s += __builtin_shufflevector(s, s, 2, 3, 0, 1);
        s += __builtin_shufflevector(s, s, 1, 0, 3, 2);
    }
    return s[0];
}

/// v = the lanes<T> values at p (an out-parameter: a vector returned by value draws GCC's ABI
/// warning in translation units built without AVX).
/// V is Vec<T> or a wider vector of T (with_widest below).
template <class T, class V>
[[gnu::always_inline]] inline void load(const T* p, V& v) {
    std::memcpy(&v, p, sizeof v);
}
template <class T, class V>
[[gnu::always_inline]] inline void store(T* p, const V& v) {
    std::memcpy(p, &v, sizeof v);
}

/// Transposes the lanes<T> x lanes<T> matrix whose rows are r[0], r[1], ...: afterwards lane l of
/// r[j] holds what lane j of r[l] held. Three rounds of two-input shuffles (pairs of lanes, then
/// quads, then halves for floats; pairs, then halves for doubles).
template <class T>
[[gnu::always_inline]] inline void transpose(Vec<T>* r) {
    if constexpr (lanes<T> == 8) {
        Vec<T> a[8], b[8];
        unroll<4>([&](auto i) {
            a[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
            a[2 * i + 1] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
        });
        unroll<2>([&](auto h) {  // rows 4h .. 4h + 3
            b[4 * h + 0] = __builtin_shufflevector(a[4 * h], a[4 * h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            b[4 * h + 1] = __builtin_shufflevector(a[4 * h], a[4 * h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
            b[4 * h + 2] = __builtin_shufflevector(a[4 * h + 1], a[4 * h + 3], 0, 1, 8, 9, 4, 5, 12, 13);
            b[4 * h + 3] = __builtin_shufflevector(a[4 * h + 1], a[4 * h + 3], 2, 3, 10, 11, 6, 7, 14, 15);
        });
        unroll<4>([&](auto j) {  // b[j] holds columns j and j + 4 of rows 0-3, b[j + 4] of rows 4-7
            r[j] = __builtin_shufflevector(b[j], b[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
            r[j + 4] = __builtin_shufflevector(b[j], b[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        });
    } else {
        static_assert(lanes<T> == 4);
        const Vec<T> a0 = __builtin_shufflevector(r[0], r[1], 0, 4, 2, 6), a1 = __builtin_shufflevector(r[0], r[1], 1, 5, 3, 7);
        const Vec<T> a2 = __builtin_shufflevector(r[2], r[3], 0, 4, 2, 6), a3 = __builtin_shufflevector(r[2], r[3], 1, 5, 3, 7);
        r[0] = __builtin_shufflevector(a0, a2, 0, 1, 4, 5);
        r[1] = __builtin_shufflevector(a1, a3, 0, 1, 4, 5);
        r[2] = __builtin_shufflevector(a0, a2, 2, 3, 6, 7);
        r[3] = __builtin_shufflevector(a1, a3, 2, 3, 6, 7);
    }
}

/// Interleaves channels: plane[((Y + py) * pw + X + px) * stride + l] = src[l][Y][X] for the
/// n <= L channels of src (H x W each, contiguous), L = lanes<T>; lanes l >= n are zero. Runs of
/// L pixels go through a register transpose. `stride` (>= L) is the distance between pixels.
template <class T>
void interleave(const T* src, std::int64_t n, std::int64_t H, std::int64_t W, T* plane, std::int64_t pw,
                std::int64_t py, std::int64_t px, std::int64_t stride = lanes<T>) {
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t hw = H * W;
    std::int64_t i = 0, y = 0, x = 0;  // pixel i is (y, x)
    for (; i + L <= hw; i += L) {
        Vec<T> r[L];
        unroll<L>([&](auto l) {
            if (l < n) load(src + l * hw + i, r[l]);
            else r[l] = Vec<T>{};
        });
        transpose<T>(r);
        unroll<L>([&](auto j) {
            store(plane + ((y + py) * pw + x + px) * stride, r[j]);
            if (++x == W) x = 0, ++y;
        });
    }
    for (; i < hw; ++i) {
        T* d = plane + ((y + py) * pw + x + px) * stride;
        for (std::int64_t l = 0; l < L; ++l) d[l] = l < n ? src[l * hw + i] : T(0);
        if (++x == W) x = 0, ++y;
    }
}

/// The inverse for one interleaved buffer of hw pixels without padding: dst[l][i] =
/// buf[i * stride + l] for the first n channels.
template <class T>
void deinterleave(const T* buf, std::int64_t n, std::int64_t hw, T* dst, std::int64_t stride = lanes<T>) {
    constexpr std::int64_t L = lanes<T>;
    std::int64_t i = 0;
    for (; i + L <= hw; i += L) {
        Vec<T> r[L];
        unroll<L>([&](auto j) { load(buf + (i + j) * stride, r[j]); });
        transpose<T>(r);
        unroll<L>([&](auto l) {
            if (l < n) store(dst + l * hw + i, r[l]);
        });
    }
    for (; i < hw; ++i)
        for (std::int64_t l = 0; l < n; ++l) dst[l * hw + i] = buf[i * stride + l];
}

#if !defined(__AVX512F__) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DAM_SIMD_DISPATCH 1
#endif

/// Whether this CPU runs AVX-512F code (and so the wide path below).
inline bool cpu_has_avx512() {
#if defined(__AVX512F__)
    return true;
#elif defined(DAM_SIMD_DISPATCH)
    static const bool has = __builtin_cpu_supports("avx512f");
    return has;
#else
    return false;
#endif
}

/// Whether the kernels that go through with_widest below (small_gemm and the convolutions built on
/// it, the implicit GEMM) run on 64-byte (AVX-512) vectors: by default where the CPU has AVX-512F
/// and the environment does not say DAM_SIMD=avx2. Our binaries are built for x86-64-v3 (AVX2) so
/// that they run on any machine of the kind we target; those kernels are compiled twice and chosen
/// here, at run time. Tests switch it to compare the two widths; setting it on a CPU without
/// AVX-512 would fault.
inline bool& wide_vectors() {
    static bool on = [] {
        const char* v = std::getenv("DAM_SIMD");
        return cpu_has_avx512() && !(v && std::string_view(v) == "avx2");
    }();
    return on;
}

/// A vector of `Bytes` bytes of T (the GEMM below runs on 32- or 64-byte vectors).
template <class T, int Bytes>
struct Wide {
    typedef T type __attribute__((vector_size(Bytes)));
};

namespace detail {

/// One register block of small_gemm: C (R x NV vectors of V) (+)= sum over i < n of a_r(i) b(i),
/// with a_r(i) = A[r * ars + i * ais] broadcast and b(i) the NV vectors at B + i * bis.
template <int R, int NV, class V, class T>
[[gnu::always_inline]] inline void gemm_block(std::int64_t n, const T* A, std::int64_t ars, std::int64_t ais,
                                              const T* B, std::int64_t bis, T* C, std::int64_t ldc, bool accumulate) {
    constexpr std::int64_t L = sizeof(V) / sizeof(T);
    V c[R][NV];
    unroll<R>([&](auto r) DAM_SIMD_INLINE { unroll<NV>([&](auto v) DAM_SIMD_INLINE { c[r][v] = V{}; }); });
    for (std::int64_t i = 0; i < n; ++i) {
        V b[NV];
        unroll<NV>([&](auto v) DAM_SIMD_INLINE { load(B + i * bis + v * L, b[v]); });
        const T* a = A + i * ais;
        unroll<R>([&](auto r) DAM_SIMD_INLINE {
            const T ar = a[r * ars];
            unroll<NV>([&](auto v) DAM_SIMD_INLINE { c[r][v] += ar * b[v]; });
        });
    }
    unroll<R>([&](auto r) DAM_SIMD_INLINE {
        unroll<NV>([&](auto v) DAM_SIMD_INLINE {
            T* p = C + r * ldc + v * L;
            if (accumulate) {
                V old;
                load(p, old);
                store(p, old + c[r][v]);
            } else {
                store(p, c[r][v]);
            }
        });
    });
}

/// Columns j0 .. j0 + NV vectors of V of small_gemm, over all rows: blocks of 6 rows, then the rest.
template <int NV, class V, class T>
[[gnu::always_inline]] inline void gemm_columns(std::int64_t rows, std::int64_t inner, const T* A, std::int64_t ars,
                                                std::int64_t ais, const T* B, std::int64_t bis, T* C, std::int64_t ldc,
                                                bool accumulate) {
    constexpr int R = 6;
    std::int64_t r0 = 0;
    for (; r0 + R <= rows; r0 += R)
        gemm_block<R, NV, V>(inner, A + r0 * ars, ars, ais, B, bis, C + r0 * ldc, ldc, accumulate);
    const T* a = A + r0 * ars;
    T* c = C + r0 * ldc;
    switch (rows - r0) {
        case 5: gemm_block<5, NV, V>(inner, a, ars, ais, B, bis, c, ldc, accumulate); break;
        case 4: gemm_block<4, NV, V>(inner, a, ars, ais, B, bis, c, ldc, accumulate); break;
        case 3: gemm_block<3, NV, V>(inner, a, ars, ais, B, bis, c, ldc, accumulate); break;
        case 2: gemm_block<2, NV, V>(inner, a, ars, ais, B, bis, c, ldc, accumulate); break;
        case 1: gemm_block<1, NV, V>(inner, a, ars, ais, B, bis, c, ldc, accumulate); break;
        default: break;
    }
}

#if defined(DAM_SIMD_DISPATCH)
/// f(64-byte vector tag) compiled for AVX-512 inside an x86-64-v3 (or older) build.
template <class T, class F>
[[gnu::target("avx2,fma,avx512f")]] void call_avx512(F& f) {
    f(static_cast<typename Wide<T, 64>::type*>(nullptr));
}
#endif

}  // namespace detail

/// Runs f(V*) with V the widest vector of T that wide_vectors() allows: 64 bytes (AVX-512) or 32.
/// In an AVX2 build the 64-byte call runs in a function compiled for AVX-512, so f must be a
/// lambda marked DAM_SIMD_INLINE, and whatever it calls always_inline, for its body to be compiled
/// there; a kernel's column loops then run on 64-byte vectors and their last 32 bytes on Vec<T>.
template <class T, class F>
void with_widest(F&& f) {
#if defined(__AVX512F__)
    if (wide_vectors()) return f(static_cast<typename Wide<T, 64>::type*>(nullptr));
#elif defined(DAM_SIMD_DISPATCH)
    if (wide_vectors()) return detail::call_avx512<T>(f);
#endif
    f(static_cast<Vec<T>*>(nullptr));
}

/// Calls f(integral_constant NV, V*, j) over a row of `cols` values (a multiple of lanes<T>) in
/// blocks of 2 vectors of V, then 1, then one Vec<T> for a last 32 bytes: the column sweep of the
/// register-blocked kernels. f must be DAM_SIMD_INLINE (see with_widest).
template <class T, class V, class F>
[[gnu::always_inline]] inline void sweep_columns(std::int64_t cols, F&& f) {
    constexpr std::int64_t LV = sizeof(V) / sizeof(T), L = lanes<T>;
    std::int64_t j = 0;
    for (; j + 2 * LV <= cols; j += 2 * LV) f(std::integral_constant<int, 2>{}, static_cast<V*>(nullptr), j);
    if (j + LV <= cols) {
        f(std::integral_constant<int, 1>{}, static_cast<V*>(nullptr), j);
        j += LV;
    }
    if constexpr (LV > L) {
        for (; j + L <= cols; j += L) f(std::integral_constant<int, 1>{}, static_cast<Vec<T>*>(nullptr), j);
    }
}

/// C (rows x cols, row-major, rows ldc apart) (+)= A B for small GEMMs, without packing: A is read
/// in place as A[r * ars + i * ais] (so a row-major matrix or the transpose of one), B is
/// row-major (inner x cols, rows bis apart), cols a multiple of lanes<T> (the transform domain's
/// channel counts are padded to whole vectors). Blocks of 6 rows by 2 vectors keep 12 accumulators
/// in registers; the B panel of a column block (inner x 2 vectors) stays in L1 while the row blocks
/// pass over it. On 64-byte vectors where wide_vectors() says so: `small` trained 16% faster
/// (train_throughput on an AVX-512 Xeon; 12 rows per block instead of 6 was slower, 8 no better).
/// (On AVX2, shuffle's and mbv2's pointwise layers keep Eigen's GEMM over batched images, which
/// this one, one image a call, did not beat; with AVX-512 they use this one: conv.hpp.)
template <class T>
void small_gemm(std::int64_t rows, std::int64_t cols, std::int64_t inner, const T* A, std::int64_t ars,
                std::int64_t ais, const T* B, std::int64_t bis, T* C, std::int64_t ldc, bool accumulate) {
    with_widest<T>([&](auto* widest) DAM_SIMD_INLINE {
        sweep_columns<T, std::remove_pointer_t<decltype(widest)>>(cols, [&](auto nv, auto* v, std::int64_t j) DAM_SIMD_INLINE {
            detail::gemm_columns<decltype(nv)::value, std::remove_pointer_t<decltype(v)>>(rows, inner, A, ars, ais, B + j, bis,
                                                                                         C + j, ldc, accumulate);
        });
    });
}

}  // namespace diffautoml::backend_cpu::simd
