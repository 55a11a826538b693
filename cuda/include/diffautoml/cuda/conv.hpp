#pragma once
// 2-d convolution through cuDNN, with the CPU kernels' signatures (ops/cpu/conv.hpp): forward,
// backward data and backward filter (+ bias), any stride, padding, dilation and group count
// (depthwise included). The algorithm of each direction is chosen once per shape by timing
// cuDNN's candidates (cudnnFind*) and cached; backward passes take only deterministic algorithms,
// and float convolutions do not use TF32 unless allow_tf32() is set, so results compare with the
// CPU at float tolerances and repeat bit for bit.
#include <array>
#include <cstddef>
#include <map>
#include <mutex>
#include <tuple>

#include <diffautoml/ops/conv_params.hpp>

#include "handles.hpp"
#include "memory.hpp"

namespace diffautoml::backend_cuda {

/// Whether float convolutions may use TF32 tensor cores (faster, about 1e-3 relative error).
inline bool& allow_tf32() {
    static bool on = false;
    return on;
}

namespace conv_detail {

/// Everything a cached algorithm depends on.
struct Key {
    std::array<std::int64_t, 16> g;
    int type;
    bool tf32;
    auto operator<=>(const Key&) const = default;
};
template <class T>
Key key_of(const ConvGeometry& g) {
    return {{g.batch, g.in_c, g.in_h, g.in_w, g.out_c, g.out_h, g.out_w, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_h,
             g.pad_w, g.dil_h, g.dil_w, g.groups},
            static_cast<int>(cudnn_type<T>()),
            allow_tf32()};
}

/// A chosen algorithm: its id, the math type it was measured with, and its workspace bytes.
template <class Algo>
struct Choice {
    Algo algo;
    cudnnMathType_t math;
    std::size_t workspace;
};

/// The descriptors of one convolution.
template <class T>
struct Descriptors {
    TensorDescriptor x, y;
    FilterDescriptor w;
    ConvolutionDescriptor conv;
    explicit Descriptors(const ConvGeometry& g) {
        DAM_CHECK(g.batch <= INT32_MAX && g.in_c * g.in_h * g.in_w <= INT32_MAX, shape_error,
                  "conv2d (cuda): the input is too large for cuDNN's 32-bit descriptors");
        set_nchw<T>(x, g.batch, g.in_c, g.in_h, g.in_w);
        set_nchw<T>(y, g.batch, g.out_c, g.out_h, g.out_w);
        DAM_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w.get(), cudnn_type<T>(), CUDNN_TENSOR_NCHW, static_cast<int>(g.out_c),
                                                   static_cast<int>(g.in_c / g.groups), static_cast<int>(g.kh),
                                                   static_cast<int>(g.kw)));
        DAM_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
            conv.get(), static_cast<int>(g.pad_h), static_cast<int>(g.pad_w), static_cast<int>(g.stride_h),
            static_cast<int>(g.stride_w), static_cast<int>(g.dil_h), static_cast<int>(g.dil_w), CUDNN_CROSS_CORRELATION,
            cudnn_type<T>()));
        DAM_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.get(), static_cast<int>(g.groups)));
        const bool tensor_ok = std::is_same_v<T, float> && allow_tf32();
        DAM_CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), tensor_ok ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    }
};

/// Picks the fastest successful result (the deterministic ones only when asked) among cuDNN's
/// timed candidates, which come sorted by time.
template <class Perf>
auto pick(const Perf* perf, int n, bool deterministic, const char* what) {
    for (int i = 0; i < n; ++i) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
        if (deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
        return Choice<decltype(perf[i].algo)>{perf[i].algo, perf[i].mathType, perf[i].memory};
    }
    throw cudnn_error(DAM_FORMAT("{}: cuDNN offered no {}algorithm that runs for this shape", what,
                                 deterministic ? "deterministic " : ""));
}

/// The algorithm cache of one direction: shape -> choice, shared by all threads.
template <class Algo>
struct Cache {
    std::mutex m;
    std::map<Key, Choice<Algo>> choices;
    template <class Find>
    Choice<Algo> get(const Key& k, Find&& find) {
        {
            std::lock_guard lock(m);
            if (auto it = choices.find(k); it != choices.end()) return it->second;
        }
        const Choice<Algo> c = find();  // timed outside the lock: it launches work
        std::lock_guard lock(m);
        return choices.try_emplace(k, c).first->second;
    }
};
inline Cache<cudnnConvolutionFwdAlgo_t>& forward_cache() {
    static Cache<cudnnConvolutionFwdAlgo_t> c;
    return c;
}
inline Cache<cudnnConvolutionBwdDataAlgo_t>& data_cache() {
    static Cache<cudnnConvolutionBwdDataAlgo_t> c;
    return c;
}
inline Cache<cudnnConvolutionBwdFilterAlgo_t>& filter_cache() {
    static Cache<cudnnConvolutionBwdFilterAlgo_t> c;
    return c;
}

inline constexpr int kCandidates = 8;

/// A workspace of at least this many bytes from the caching allocator.
inline DeviceArray<std::byte> workspace(std::size_t bytes) { return DeviceArray<std::byte>(static_cast<std::int64_t>(bytes)); }

}  // namespace conv_detail

/// How many algorithms the cache holds per direction (forward, data, filter); for tests.
inline std::array<std::size_t, 3> conv_algorithm_cache_sizes() {
    using namespace conv_detail;
    auto size = [](auto& c) {
        std::lock_guard lock(c.m);
        return c.choices.size();
    };
    return {size(forward_cache()), size(data_cache()), size(filter_cache())};
}

/// y(N, Cout, OH, OW) = conv(x, w) + bias (bias may be null); device pointers.
template <class T>
void conv2d_forward(cuda, const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
    using namespace conv_detail;
    Descriptors<T> d(g);
    cudnnHandle_t h = handles().dnn();
    const auto c = forward_cache().get(key_of<T>(g), [&] {
        std::array<cudnnConvolutionFwdAlgoPerf_t, kCandidates> perf{};
        int n = 0;
        DAM_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, d.x.get(), d.w.get(), d.conv.get(), d.y.get(), kCandidates,
                                                             &n, perf.data()));
        return pick(perf.data(), n, false, "conv2d forward (cuda)");
    });
    DAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.math));
    auto ws = workspace(c.workspace);
    const T one = 1, zero = 0;
    DAM_CUDNN_CHECK(cudnnConvolutionForward(h, &one, d.x.get(), x, d.w.get(), w, d.conv.get(), c.algo, ws.data(),
                                            c.workspace, &zero, d.y.get(), y));
    if (bias) {
        TensorDescriptor b;
        set_nchw<T>(b, 1, g.out_c, 1, 1);
        DAM_CUDNN_CHECK(cudnnAddTensor(h, &one, b.get(), bias, &one, d.y.get(), y));
    }
}

/// dx = the transposed convolution of dy with w (overwrites dx).
template <class T>
void conv2d_backward_data(cuda, const T* dy, const T* w, T* dx, const ConvGeometry& g) {
    using namespace conv_detail;
    Descriptors<T> d(g);
    cudnnHandle_t h = handles().dnn();
    const auto c = data_cache().get(key_of<T>(g), [&] {
        std::array<cudnnConvolutionBwdDataAlgoPerf_t, kCandidates> perf{};
        int n = 0;
        DAM_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(h, d.w.get(), d.y.get(), d.conv.get(), d.x.get(),
                                                                  kCandidates, &n, perf.data()));
        return pick(perf.data(), n, true, "conv2d backward data (cuda)");
    });
    DAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.math));
    auto ws = workspace(c.workspace);
    const T one = 1, zero = 0;
    DAM_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, d.w.get(), w, d.y.get(), dy, d.conv.get(), c.algo, ws.data(),
                                                 c.workspace, &zero, d.x.get(), dx));
}

/// dw = the correlation of x and dy, db = the sum of dy per channel (db may be null); overwrites both.
template <class T>
void conv2d_backward_weight(cuda, const T* x, const T* dy, T* dw, T* db, const ConvGeometry& g) {
    using namespace conv_detail;
    Descriptors<T> d(g);
    cudnnHandle_t h = handles().dnn();
    const auto c = filter_cache().get(key_of<T>(g), [&] {
        std::array<cudnnConvolutionBwdFilterAlgoPerf_t, kCandidates> perf{};
        int n = 0;
        DAM_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x.get(), d.y.get(), d.conv.get(), d.w.get(),
                                                                    kCandidates, &n, perf.data()));
        return pick(perf.data(), n, true, "conv2d backward filter (cuda)");
    });
    DAM_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), c.math));
    auto ws = workspace(c.workspace);
    const T one = 1, zero = 0;
    DAM_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, d.x.get(), x, d.y.get(), dy, d.conv.get(), c.algo, ws.data(),
                                                   c.workspace, &zero, d.w.get(), dw));
    if (db) {
        TensorDescriptor b;
        set_nchw<T>(b, 1, g.out_c, 1, 1);
        DAM_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, d.y.get(), dy, &zero, b.get(), db));
    }
}

}  // namespace diffautoml::backend_cuda
