#pragma once
// The standard layers.
#include <cmath>
#include <memory>

#include "module.hpp"

namespace diffautoml::nn {

/// 2-d convolution. Weights: He (Kaiming) normal with fan_in = Cin/groups * KH * KW, suited to
/// the ReLU networks this library builds.
template <class T, Device D = cpu>
class Conv2d : public Module<T, D> {
public:
    Conv2d(std::int64_t in_c, std::int64_t out_c, std::int64_t kernel, Conv2dOptions opt, bool bias, Generator& gen)
        : opt_(opt) {
        DAM_CHECK(in_c > 0 && out_c > 0 && kernel > 0, value_error,
                  "Conv2d: channels ({} -> {}) and kernel {} must be positive", in_c, out_c, kernel);
        DAM_CHECK(in_c % opt.groups == 0 && out_c % opt.groups == 0, shape_error,
                  "Conv2d: channels {} -> {} are not divisible by groups {}", in_c, out_c, opt.groups);
        Tensor<T, D> w(Shape{out_c, in_c / opt.groups, kernel, kernel});
        kaiming_normal_(w, gen, in_c / opt.groups * kernel * kernel);
        weight_ = this->register_parameter("weight", w);
        if (bias) bias_ = this->register_parameter("bias", Tensor<T, D>::zeros(Shape{out_c}));
    }
    Var<T, D> forward(const Var<T, D>& x) override { return ops::conv2d(x, weight_, bias_, opt_); }
    const Var<T, D>& weight() const { return weight_; }
    const Conv2dOptions& options() const { return opt_; }

private:
    Conv2dOptions opt_;
    Var<T, D> weight_, bias_;
};

template <class T, Device D = cpu>
class BatchNorm2d : public Module<T, D> {
public:
    /// With fuse_relu the layer computes relu(bn(x)) in one pass (and one pass back). Without
    /// affine it has no scale and shift (PyTorch's affine=False): y = (x - mean) / sqrt(var + eps).
    explicit BatchNorm2d(std::int64_t channels, double momentum = 0.1, double eps = 1e-5, bool fuse_relu = false,
                         bool affine = true)
        : momentum_(momentum), eps_(eps), relu_(fuse_relu) {
        if (affine) {
            weight_ = this->register_parameter("weight", Tensor<T, D>::full(Shape{channels}, T(1)));
            bias_ = this->register_parameter("bias", Tensor<T, D>::zeros(Shape{channels}));
        }
        running_mean_ = this->register_buffer("running_mean", Tensor<T, D>::zeros(Shape{channels}));
        running_var_ = this->register_buffer("running_var", Tensor<T, D>::full(Shape{channels}, T(1)));
    }
    Var<T, D> forward(const Var<T, D>& x) override {
        // Training mode uses (and folds into the running statistics) the batch statistics, with or
        // without gradient recording; evaluation mode uses the running statistics.
        // Inside an ops::SyncBatchNormScope, training mode uses the global batch's statistics.
        const bool training = this->is_training();
        const ops::BatchNormOptions o{training, momentum_, eps_, relu_};
        if (training)
            if (const ops::ChannelReduce* sync = ops::batchnorm_sync())
                return ops::batchnorm2d_sync(x, weight_, bias_, running_mean_, running_var_, o, *sync);
        return ops::batchnorm2d(x, weight_, bias_, running_mean_, running_var_, o);
    }
    bool affine() const { return weight_.defined(); }
    const Tensor<T, D>& running_mean() const { return running_mean_; }
    const Tensor<T, D>& running_var() const { return running_var_; }
    /// Sets the momentum; 0 freezes the running statistics, and a cumulative average over k batches
    /// uses 1/k at the k-th (see recalibrate_batch_norm).
    void set_momentum(double m) { momentum_ = m; }
    double momentum() const { return momentum_; }
    /// Running statistics back to mean 0, variance 1.
    void reset_running_stats() {
        running_mean_.fill(T(0));
        running_var_.fill(T(1));
    }

private:
    double momentum_, eps_;
    bool relu_;
    Var<T, D> weight_, bias_;
    Tensor<T, D> running_mean_, running_var_;
};

/// Batch-norm recalibration: every BatchNorm2d in `net` forgets its running statistics and
/// re-estimates them as the exact average over `batches` batches from next_input() (momentum 1/k
/// at the k-th batch), without gradients. Needed after weight-sharing training (a supernet's
/// statistics mix many paths) and recommended before evaluating a derived network. Returns the
/// number of batch norms recalibrated; the network is left in evaluation mode.
template <class T, Device D, class NextInput>
std::int64_t recalibrate_batch_norm(Module<T, D>& net, std::int64_t batches, NextInput&& next_input) {
    DAM_CHECK(batches >= 1, value_error, "recalibrate_batch_norm: needs at least 1 batch, got {}", batches);
    std::vector<std::pair<BatchNorm2d<T, D>*, double>> bns;
    net.for_each_module([&](Module<T, D>& m) {
        if (auto* bn = dynamic_cast<BatchNorm2d<T, D>*>(&m)) bns.emplace_back(bn, bn->momentum());
    });
    for (auto& [bn, m] : bns) bn->reset_running_stats();
    NoGradGuard no_grad;
    net.train();
    for (std::int64_t k = 0; k < batches; ++k) {
        for (auto& [bn, m] : bns) bn->set_momentum(1.0 / static_cast<double>(k + 1));
        (void)net.forward(Var<T, D>(next_input()));
    }
    for (auto& [bn, m] : bns) bn->set_momentum(m);
    net.eval();
    return static_cast<std::int64_t>(bns.size());
}

/// Fully connected layer, PyTorch's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
template <class T, Device D = cpu>
class Linear : public Module<T, D> {
public:
    Linear(std::int64_t in, std::int64_t out, bool bias, Generator& gen) {
        DAM_CHECK(in > 0 && out > 0, value_error, "Linear: sizes {} -> {} must be positive", in, out);
        const double b = 1.0 / std::sqrt(static_cast<double>(in));
        Tensor<T, D> w(Shape{out, in});
        uniform_(w, gen, -b, b);
        weight_ = this->register_parameter("weight", w);
        if (bias) {
            Tensor<T, D> bb(Shape{out});
            uniform_(bb, gen, -b, b);
            bias_ = this->register_parameter("bias", bb);
        }
    }
    Var<T, D> forward(const Var<T, D>& x) override { return ops::linear(x, weight_, bias_); }

private:
    Var<T, D> weight_, bias_;
};

template <class T, Device D = cpu>
struct ReLU : Module<T, D> {
    Var<T, D> forward(const Var<T, D>& x) override { return ops::relu(x); }
};
template <class T, Device D = cpu>
struct ReLU6 : Module<T, D> {
    Var<T, D> forward(const Var<T, D>& x) override { return ops::relu6(x); }
};
template <class T, Device D = cpu>
struct Identity : Module<T, D> {
    Var<T, D> forward(const Var<T, D>& x) override { return x; }
};
template <class T, Device D = cpu>
struct Flatten : Module<T, D> {
    Var<T, D> forward(const Var<T, D>& x) override { return ops::flatten(x); }
};
template <class T, Device D = cpu>
struct GlobalAvgPool2d : Module<T, D> {
    Var<T, D> forward(const Var<T, D>& x) override { return ops::global_avg_pool2d(x); }
};
template <class T, Device D = cpu>
class MaxPool2d : public Module<T, D> {
public:
    explicit MaxPool2d(Pool2dOptions o) : o_(o) {}
    Var<T, D> forward(const Var<T, D>& x) override { return ops::max_pool2d(x, o_); }

private:
    Pool2dOptions o_;
};
template <class T, Device D = cpu>
class AvgPool2d : public Module<T, D> {
public:
    explicit AvgPool2d(Pool2dOptions o) : o_(o) {}
    Var<T, D> forward(const Var<T, D>& x) override { return ops::avg_pool2d(x, o_); }

private:
    Pool2dOptions o_;
};
template <class T>
class Dropout : public Module<T, cpu> {
public:
    Dropout(double p, Generator& gen) : p_(p), gen_(&gen) {}
    Var<T, cpu> forward(const Var<T, cpu>& x) override { return ops::dropout(x, p_, this->is_training(), *gen_); }

private:
    double p_;
    Generator* gen_;
};

/// Runs its children in order; children are named "0", "1", ...
template <class T, Device D = cpu>
class Sequential : public Module<T, D> {
public:
    Sequential() = default;
    Sequential(std::initializer_list<ModulePtr<T, D>> layers) {
        for (auto& l : layers) push_back(l);
    }
    Sequential& push_back(ModulePtr<T, D> m) {
        layers_.push_back(this->register_module(std::to_string(layers_.size()), std::move(m)));
        return *this;
    }
    Var<T, D> forward(const Var<T, D>& x) override {
        Var<T, D> y = x;
        for (auto& l : layers_) y = l->forward(y);
        return y;
    }
    std::size_t size() const { return layers_.size(); }
    const ModulePtr<T, D>& operator[](std::size_t i) const { return layers_[i]; }

private:
    std::vector<ModulePtr<T, D>> layers_;
};

/// y = post(body(x) + shortcut(x)); an empty shortcut is the identity, post is ReLU when asked.
template <class T, Device D = cpu>
class Residual : public Module<T, D> {
public:
    Residual(ModulePtr<T, D> body, ModulePtr<T, D> shortcut, bool relu_after)
        : body_(this->register_module("body", std::move(body))), relu_after_(relu_after) {
        if (shortcut) shortcut_ = this->register_module("shortcut", std::move(shortcut));
    }
    Var<T, D> forward(const Var<T, D>& x) override {
        Var<T, D> y = body_->forward(x) + (shortcut_ ? shortcut_->forward(x) : x);
        return relu_after_ ? ops::relu(y) : y;
    }

private:
    ModulePtr<T, D> body_, shortcut_;
    bool relu_after_;
};

template <class M, class... Args>
auto make(Args&&... args) {
    return std::make_shared<M>(std::forward<Args>(args)...);
}

}  // namespace diffautoml::nn
