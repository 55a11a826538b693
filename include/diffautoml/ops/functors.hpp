#pragma once
// Elementwise functors. Each one's arithmetic is a DAM_HOST_DEVICE function, so the CPU kernels
// and the CUDA kernels run the very same formula and the CPU tests cover both.
//   fwd(x)       -> y
//   bwd(x, y, g) -> dL/dx given g = dL/dy
#include <cmath>

#include "../core/error.hpp"

namespace diffautoml::fn {

struct Exp {
    static constexpr const char* name = "exp";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return std::exp(x); }
    template <class T> DAM_HOST_DEVICE T bwd(T, T y, T g) const { return g * y; }
};
struct Log {
    static constexpr const char* name = "log";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return std::log(x); }
    template <class T> DAM_HOST_DEVICE T bwd(T x, T, T g) const { return g / x; }
};
struct Sigmoid {
    static constexpr const char* name = "sigmoid";
    // Written so that exp never overflows: for x < 0 use e^x / (1 + e^x).
    template <class T> DAM_HOST_DEVICE T fwd(T x) const {
        if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
        const T e = std::exp(x);
        return e / (T(1) + e);
    }
    template <class T> DAM_HOST_DEVICE T bwd(T, T y, T g) const { return g * y * (T(1) - y); }
};
struct Tanh {
    static constexpr const char* name = "tanh";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return std::tanh(x); }
    template <class T> DAM_HOST_DEVICE T bwd(T, T y, T g) const { return g * (T(1) - y * y); }
};
struct Relu {
    static constexpr const char* name = "relu";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return x > T(0) ? x : T(0); }
    template <class T> DAM_HOST_DEVICE T bwd(T x, T, T g) const { return x > T(0) ? g : T(0); }
};
struct Relu6 {
    static constexpr const char* name = "relu6";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return x < T(0) ? T(0) : (x > T(6) ? T(6) : x); }
    template <class T> DAM_HOST_DEVICE T bwd(T x, T, T g) const { return (x > T(0) && x < T(6)) ? g : T(0); }
};
struct Neg {
    static constexpr const char* name = "neg";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return -x; }
    template <class T> DAM_HOST_DEVICE T bwd(T, T, T g) const { return -g; }
};
struct Square {
    static constexpr const char* name = "square";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return x * x; }
    template <class T> DAM_HOST_DEVICE T bwd(T x, T, T g) const { return T(2) * x * g; }
};
struct Sqrt {
    static constexpr const char* name = "sqrt";
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return std::sqrt(x); }
    template <class T> DAM_HOST_DEVICE T bwd(T, T y, T g) const { return g / (T(2) * y); }
};
struct AddScalar {
    static constexpr const char* name = "add_scalar";
    double s;
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return x + T(s); }
    template <class T> DAM_HOST_DEVICE T bwd(T, T, T g) const { return g; }
};
struct MulScalar {
    static constexpr const char* name = "mul_scalar";
    double s;
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return x * T(s); }
    template <class T> DAM_HOST_DEVICE T bwd(T, T, T g) const { return g * T(s); }
};
/// x * s + t (an affine map: stored values to pixels, x * std + mean)
struct ScaleShift {
    static constexpr const char* name = "scale_shift";
    double s, t;
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return x * T(s) + T(t); }
    template <class T> DAM_HOST_DEVICE T bwd(T, T, T g) const { return g * T(s); }
};
/// (x + t) * s (pixels to stored values, (x - mean) / std, rounding as written)
struct ShiftScale {
    static constexpr const char* name = "shift_scale";
    double t, s;
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return (x + T(t)) * T(s); }
    template <class T> DAM_HOST_DEVICE T bwd(T, T, T g) const { return g * T(s); }
};
/// s / x
struct RdivScalar {
    static constexpr const char* name = "rdiv_scalar";
    double s;
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return T(s) / x; }
    template <class T> DAM_HOST_DEVICE T bwd(T x, T y, T g) const { return -g * y / x; }
};
struct PowScalar {
    static constexpr const char* name = "pow_scalar";
    double p;
    template <class T> DAM_HOST_DEVICE T fwd(T x) const { return std::pow(x, T(p)); }
    template <class T> DAM_HOST_DEVICE T bwd(T x, T, T g) const { return g * T(p) * std::pow(x, T(p - 1)); }
};

// Binary functors: fwd(a, b); da(a, b, g) and db(a, b, g) give the two partial products.
struct Add {
    static constexpr const char* name = "add";
    template <class T> DAM_HOST_DEVICE T fwd(T a, T b) const { return a + b; }
    template <class T> DAM_HOST_DEVICE T da(T, T, T g) const { return g; }
    template <class T> DAM_HOST_DEVICE T db(T, T, T g) const { return g; }
};
struct Sub {
    static constexpr const char* name = "sub";
    template <class T> DAM_HOST_DEVICE T fwd(T a, T b) const { return a - b; }
    template <class T> DAM_HOST_DEVICE T da(T, T, T g) const { return g; }
    template <class T> DAM_HOST_DEVICE T db(T, T, T g) const { return -g; }
};
struct Mul {
    static constexpr const char* name = "mul";
    template <class T> DAM_HOST_DEVICE T fwd(T a, T b) const { return a * b; }
    template <class T> DAM_HOST_DEVICE T da(T, T b, T g) const { return g * b; }
    template <class T> DAM_HOST_DEVICE T db(T a, T, T g) const { return g * a; }
};
struct Div {
    static constexpr const char* name = "div";
    template <class T> DAM_HOST_DEVICE T fwd(T a, T b) const { return a / b; }
    template <class T> DAM_HOST_DEVICE T da(T, T b, T g) const { return g / b; }
    template <class T> DAM_HOST_DEVICE T db(T a, T b, T g) const { return -g * a / (b * b); }
};

}  // namespace diffautoml::fn
