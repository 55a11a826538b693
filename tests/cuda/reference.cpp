// CPU references for the GPU tests (see reference.hpp), through the library's CPU kernels.
#include "reference.hpp"

#include <memory>
#include <string>

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
    if (op == "exp") run(fn::Exp{});
    else if (op == "log") run(fn::Log{});
    else if (op == "sigmoid") run(fn::Sigmoid{});
    else if (op == "tanh") run(fn::Tanh{});
    else if (op == "relu") run(fn::Relu{});
    else if (op == "relu6") run(fn::Relu6{});
    else if (op == "neg") run(fn::Neg{});
    else if (op == "square") run(fn::Square{});
    else if (op == "sqrt") run(fn::Sqrt{});
    else if (op == "add_scalar") run(fn::AddScalar{kTestScalar});
    else if (op == "mul_scalar") run(fn::MulScalar{kTestScalar});
    else if (op == "scale_shift") run(fn::ScaleShift{kTestScalar, kTestShift});
    else if (op == "shift_scale") run(fn::ShiftScale{kTestShift, kTestScalar});
    else if (op == "rdiv_scalar") run(fn::RdivScalar{kTestScalar});
    else if (op == "pow_scalar") run(fn::PowScalar{kTestPower});
    else throw value_error(fmt::format("dam_ref::unary: no reference for '{}'", op));
}

void binary(const std::string& op, const BroadcastPlan& p, const float* a, const float* b, const float* g, float* out,
            float* ga, float* gb) {
    auto run = [&](auto f) {
        backend_cpu::binary_forward(cpu{}, f, p, a, b, out);
        backend_cpu::binary_backward_full(cpu{}, f, p, a, b, g, ga, gb);
    };
    if (op == "add") run(fn::Add{});
    else if (op == "sub") run(fn::Sub{});
    else if (op == "mul") run(fn::Mul{});
    else if (op == "div") run(fn::Div{});
    else throw value_error(fmt::format("dam_ref::binary: no reference for '{}'", op));
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

void augment_images(const float* x, std::int64_t N, std::int64_t S, std::int64_t C, std::int64_t H, std::int64_t W,
                    const std::vector<da::OpDraw>& draws, const std::vector<double>& m, const da::AugmentOptions& o, float* y) {
    backend_cpu::augment_forward(cpu{}, x, y, draws, m, N, S, C, H, W, o);
}

std::vector<float> noise(std::int64_t n, std::uint64_t seed, std::uint64_t stream, bool logistic) {
    const PhiloxStream s{seed, stream};
    const Tensor<float> t = logistic ? sampling::logistic_noise<float>(Shape{n}, s) : sampling::gumbel_noise<float>(Shape{n}, s);
    return {t.data(), t.data() + n};
}

void conv2d(const float* x, const float* w, const float* bias, const float* dy, const ConvGeometry& g, float* y, float* dx,
            float* dw, float* db) {
    backend_cpu::conv2d_forward(cpu{}, x, w, bias, y, g);
    backend_cpu::conv2d_backward_data(cpu{}, dy, w, dx, g);
    backend_cpu::conv2d_backward_weight(cpu{}, x, dy, dw, db, g);
}

void batchnorm(const float* x, const float* gamma, const float* beta, const float* dy, float* running_mean,
               float* running_var, std::int64_t N, std::int64_t C, std::int64_t HW, bool training, bool relu,
               double momentum, double eps, float* y, float* mean, float* invstd, float* dx, float* dgamma,
               float* dbeta) {
    if (training) {
        backend_cpu::batchnorm2d_forward_train(cpu{}, x, gamma, beta, y, mean, invstd, running_mean, running_var, N, C, HW,
                                               momentum, eps, relu);
    } else {
        backend_cpu::batchnorm2d_forward_eval(cpu{}, x, gamma, beta, y, mean, invstd, running_mean, running_var, N, C, HW,
                                              eps, relu);
    }
    backend_cpu::batchnorm2d_backward(cpu{}, x, relu ? y : nullptr, dy, gamma, mean, invstd, dx, dgamma, dbeta, N, C, HW,
                                      training);
}

void gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, const float* A, const float* B,
          float* C, bool accumulate) {
    backend_cpu::gemm(cpu{}, trans_a, trans_b, M, N, K, A, B, C, accumulate);
}

void binary_mul(const BroadcastPlan& p, const float* a, const float* b, const float* g, float* out, float* ga, float* gb) {
    backend_cpu::binary_forward(cpu{}, fn::Mul{}, p, a, b, out);
    backend_cpu::binary_backward_full(cpu{}, fn::Mul{}, p, a, b, g, ga, gb);
}
void sum_to(const BroadcastPlan& p, const float* full, float* target, std::int64_t target_numel) {
    backend_cpu::sum_to(cpu{}, p, full, target, target_numel);
}
void sum_axis(const float* x, float* y, std::int64_t outer, std::int64_t n, std::int64_t inner) {
    backend_cpu::sum_axis(cpu{}, x, y, outer, n, inner);
}
void expand_axis(const float* g, float* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, float s) {
    backend_cpu::expand_axis(cpu{}, g, dx, outer, n, inner, s);
}
void copy_axis_block(const float* src, float* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t dst_n,
                     std::int64_t offset, bool add) {
    backend_cpu::copy_axis_block(cpu{}, src, dst, outer, n, inner, dst_n, offset, add);
}
void narrow_axis(const float* src, float* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t src_n,
                 std::int64_t offset) {
    backend_cpu::narrow_axis(cpu{}, src, dst, outer, n, inner, src_n, offset);
}
void permute_channels(const float* x, float* y, const std::int64_t* perm, std::int64_t N, std::int64_t C, std::int64_t inner,
                      bool inverse) {
    backend_cpu::permute_channels(cpu{}, x, y, perm, N, C, inner, inverse);
}
void softmax(const float* x, const float* g, float* y, float* dx, std::int64_t outer, std::int64_t n, std::int64_t inner,
             bool log) {
    backend_cpu::softmax_forward(cpu{}, x, y, outer, n, inner, log);
    backend_cpu::softmax_backward(cpu{}, y, g, dx, outer, n, inner, log);
}
void max_pool(const float* x, const float* dy, float* y, std::int32_t* argmax, float* dx, const PoolGeometry& g) {
    backend_cpu::max_pool2d_forward(cpu{}, x, y, argmax, g);
    backend_cpu::max_pool2d_backward(cpu{}, dy, argmax, dx, g);
}
void avg_pool(const float* x, const float* dy, float* y, float* dx, const PoolGeometry& g) {
    backend_cpu::avg_pool2d_forward(cpu{}, x, y, g);
    backend_cpu::avg_pool2d_backward(cpu{}, dy, dx, g);
}

std::vector<float> optimize(const std::string& which, std::vector<float> w, const std::vector<std::vector<float>>& gs) {
    const auto n = static_cast<std::int64_t>(w.size());
    Tensor<float> wt(Shape{n});
    std::copy(w.begin(), w.end(), wt.data());
    auto p = parameter(wt);
    std::vector<optim::ParamGroup<float, cpu>> groups{{{p}, 0.05, 1e-3, "all"}};
    std::unique_ptr<optim::Optimizer<float, cpu>> opt;
    if (which == "sgd") opt = std::make_unique<optim::SGD<float>>(groups, optim::SGDOptions{0.9, true, 0.0});
    else opt = std::make_unique<optim::Adam<float>>(groups, optim::AdamOptions{});
    for (const auto& g : gs) {
        Tensor<float> gt(Shape{n});
        std::copy(g.begin(), g.end(), gt.data());
        // The gradient a backward pass would leave: grad(), not the node's in-flight `pending`
        // (which the first version of this reference filled, so the optimizer never stepped).
        p.grad() = std::move(gt);
        opt->step();
    }
    return {p.value().data(), p.value().data() + n};
}

}  // namespace dam_ref
