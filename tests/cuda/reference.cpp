// CPU references for the GPU tests (see reference.hpp), through the library's CPU kernels.
#include "reference.hpp"

#include <diffautoml/diffautoml.hpp>

namespace dam_ref {

using namespace diffautoml;

std::vector<float> normal(std::int64_t n, std::uint64_t seed, double sd) {
    Tensor<float> t(Shape{n});
    Generator g(seed);
    normal_(t, g, 0.0, sd);
    return {t.data(), t.data() + n};
}

std::vector<float> uniform(std::int64_t n, std::uint64_t seed, double lo, double hi) {
    Tensor<float> t(Shape{n});
    Generator g(seed);
    uniform_(t, g, lo, hi);
    return {t.data(), t.data() + n};
}

void weighted_sum_forward(const std::vector<const float*>& xs, const float* w, std::int64_t n, float* y) {
    backend_cpu::weighted_sum_forward(cpu{}, xs.data(), w, static_cast<std::int64_t>(xs.size()), n, y);
}

void weighted_sum_backward(const std::vector<const float*>& xs, const float* w, const float* g, std::int64_t n,
                           const std::vector<float*>& dxs, float* dw) {
    backend_cpu::weighted_sum_backward(cpu{}, xs.data(), w, g, static_cast<std::int64_t>(xs.size()), n, dxs.data(), dw);
}

void gumbel_softmax(const float* z, std::int64_t rows, std::int64_t K, double tau, std::uint64_t seed, std::uint64_t stream,
                    bool hard, float* y, const float* seed_grad, float* dz) {
    Tensor<float> zt(Shape{rows, K});
    std::copy(z, z + rows * K, zt.data());
    const auto logits = parameter(zt);
    const auto out = sampling::gumbel_softmax(logits, tau, PhiloxStream{seed, stream}, hard);
    std::copy(out.value().data(), out.value().data() + rows * K, y);
    if (seed_grad && dz) {
        Tensor<float> s(Shape{rows, K});
        std::copy(seed_grad, seed_grad + rows * K, s.data());
        out.backward(s);
        std::copy(logits.grad().data(), logits.grad().data() + rows * K, dz);
    }
}

void cross_entropy(const float* z, const std::int32_t* labels, std::int64_t N, std::int64_t K, double smoothing,
                   const float* g, float scale, float* loss, float* prob, float* dz) {
    backend_cpu::cross_entropy_forward(cpu{}, z, labels, loss, prob, N, K, smoothing);
    backend_cpu::cross_entropy_backward(cpu{}, prob, labels, g, true, dz, N, K, smoothing, scale);
}

void unary(const std::string& op, const float* x, const float* g, std::int64_t n, float* y, float* dx) {
    auto run = [&](auto f) {
        backend_cpu::unary_forward(cpu{}, f, x, y, n);
        backend_cpu::unary_backward(cpu{}, f, x, y, g, dx, n);
    };
    if (op == "relu") run(fn::Relu{});
    else if (op == "sigmoid") run(fn::Sigmoid{});
    else if (op == "tanh") run(fn::Tanh{});
    else throw value_error(fmt::format("dam_ref::unary: no reference for '{}'", op));
}

void warp(const float* x, const float* gy, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
          const std::vector<da::OpDraw>& draws, const std::vector<double>& m, const da::AugmentOptions& o, float* y,
          float* gx, std::vector<double>& gm) {
    const std::int64_t P = C * H * W;
    std::fill(gx, gx + N * P, 0.0f);
    gm.assign(static_cast<std::size_t>(N), 0.0);
    da::kernels::Scratch scratch;
    for (std::int64_t i = 0; i < N; ++i) {
        const auto k = static_cast<std::size_t>(i);
        da::kernels::forward(draws[k], m[k], x + i * P, y + i * P, C, H, W, o, scratch);
        gm[k] = da::kernels::backward(draws[k], m[k], x + i * P, gy + i * P, gx + i * P, C, H, W, o,
                                      da::MagnitudeGradient::exact, scratch);
    }
}

}  // namespace dam_ref
