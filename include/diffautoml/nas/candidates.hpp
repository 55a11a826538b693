#pragma once
// Candidate op types of the search spaces (nas/spaces.hpp).
#include <string_view>

#include "../nn/reference_nets.hpp"
#include "mixed_op.hpp"

namespace diffautoml::nas {

// ---------------------------------------------------------------------------------------------
// ShuffleNetV2 choice blocks (Ma et al., 2018), as searched by SPOS (Guo et al., 2020) and DSNAS.

/// A ShuffleNetV2 unit. When the shape is kept (stride 1, in == out) half of the channels pass
/// through and the other half go through the branch; otherwise (the first unit of a stage) a
/// projection branch (depthwise k x k, 1x1) runs beside the main branch on the whole input. The
/// halves are concatenated and channel-shuffled. The main branch is 1x1 -> depthwise k x k -> 1x1,
/// or for the Xception variant three (depthwise 3x3 -> 1x1) pairs.
template <class T, Device D = cpu>
class ShuffleUnit : public nn::Module<T, D> {
public:
    ShuffleUnit(std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t kernel, bool xception, Generator& gen)
        : split_(stride == 1 && in == out) {
        DAM_CHECK(in > 0 && out > 0 && out % 2 == 0 && (stride == 1 || stride == 2), value_error,
                  "ShuffleUnit: needs positive channels, an even output width and stride 1 or 2; got {} -> {}, stride {}",
                  in, out, stride);
        const std::int64_t branch_in = split_ ? in / 2 : in;
        const std::int64_t branch_out = split_ ? out / 2 : out - in;
        DAM_CHECK(branch_out > 0, value_error, "ShuffleUnit: output width {} must exceed input width {} when downsampling",
                  out, in);
        const std::int64_t mid = out / 2;
        auto main = nn::make<nn::Sequential<T, D>>();
        if (xception) {
            std::int64_t c = branch_in;
            for (int i = 0; i < 3; ++i) {
                const std::int64_t s = i == 0 ? stride : 1, next = i == 2 ? branch_out : mid;
                main->push_back(depthwise(c, 3, s, gen));
                main->push_back(nn::conv_bn_relu<T, D>(c, next, gen, 1));
                c = next;
            }
        } else {
            main->push_back(nn::conv_bn_relu<T, D>(branch_in, mid, gen, 1));
            main->push_back(depthwise(mid, kernel, stride, gen));
            main->push_back(nn::conv_bn_relu<T, D>(mid, branch_out, gen, 1));
        }
        main_ = this->register_module("main", main);
        if (!split_) {
            proj_ = this->register_module(
                "proj", nn::make<nn::Sequential<T, D>>(std::initializer_list<nn::ModulePtr<T, D>>{
                            depthwise(in, kernel, stride, gen), nn::conv_bn_relu<T, D>(in, in, gen, 1)}));
        }
    }
    Var<T, D> forward(const Var<T, D>& x) override {
        if (split_) {
            const std::int64_t half = x.dim(1) / 2;
            return ops::concat_shuffle(ops::narrow(x, 1, 0, half), main_->forward(ops::narrow(x, 1, half, half)));
        }
        return ops::concat_shuffle(proj_->forward(x), main_->forward(x));
    }

private:
    /// Depthwise k x k conv + BN (no ReLU, as in ShuffleNetV2).
    static nn::ModulePtr<T, D> depthwise(std::int64_t c, std::int64_t k, std::int64_t stride, Generator& gen) {
        return nn::make<nn::Sequential<T, D>>(std::initializer_list<nn::ModulePtr<T, D>>{
            nn::make<nn::Conv2d<T, D>>(c, c, k, Conv2dOptions{stride, k / 2, 1, c}, false, gen),
            nn::make<nn::BatchNorm2d<T, D>>(c)});
    }
    bool split_;
    nn::ModulePtr<T, D> main_, proj_;
};

template <int K>
struct ShuffleBlock {
    static_assert(K == 3 || K == 5 || K == 7, "ShuffleBlock: kernel must be 3, 5 or 7");
    static constexpr std::string_view name = K == 3 ? "shuffle_k3" : K == 5 ? "shuffle_k5" : "shuffle_k7";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen) {
        return nn::make<ShuffleUnit<T, D>>(a.in, a.out, a.stride, K, false, gen);
    }
};
struct ShuffleXception {
    static constexpr std::string_view name = "shuffle_xception";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen) {
        return nn::make<ShuffleUnit<T, D>>(a.in, a.out, a.stride, 3, true, gen);
    }
};

// ---------------------------------------------------------------------------------------------
// MobileNetV2 inverted residuals (Sandler et al., 2018) as in ProxylessNAS: kernel x expansion.

template <int Kernel, int Expand>
struct InvertedResidual {
    static constexpr std::string_view name = Kernel == 3   ? (Expand == 3 ? "mb_k3_e3" : "mb_k3_e6")
                                             : Kernel == 5 ? (Expand == 3 ? "mb_k5_e3" : "mb_k5_e6")
                                                           : (Expand == 3 ? "mb_k7_e3" : "mb_k7_e6");
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen) {
        return nn::inverted_residual<T, D>(a.in, a.out, a.stride, Kernel, Expand, gen);
    }
};

/// The identity (only where the shape is kept; spaces offer it only there). Note for ablations:
/// a zero-parameter candidate.
struct SkipConnect {
    static constexpr std::string_view name = "skip";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen);
};

// ---------------------------------------------------------------------------------------------
// DARTS operations (Liu et al., 2019): ReLU-conv-BN ordering, separable convs applied twice.

/// ReLU -> depthwise k x k (stride, dilation) -> 1x1 -> BN.
template <class T, Device D = cpu>
nn::ModulePtr<T, D> relu_dil_conv_bn(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride,
                                     std::int64_t dilation, Generator& gen) {
    return nn::make<nn::Sequential<T, D>>(std::initializer_list<nn::ModulePtr<T, D>>{
        nn::make<nn::ReLU<T, D>>(),
        nn::make<nn::Conv2d<T, D>>(in, in, k, Conv2dOptions{stride, dilation * (k - 1) / 2, dilation, in}, false, gen),
        nn::make<nn::Conv2d<T, D>>(in, out, 1, Conv2dOptions{}, false, gen), nn::make<nn::BatchNorm2d<T, D>>(out)});
}

template <int K>
struct SepConv {
    static_assert(K == 3 || K == 5, "SepConv: kernel must be 3 or 5");
    static constexpr std::string_view name = K == 3 ? "sep_conv_3x3" : "sep_conv_5x5";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen) {
        return nn::make<nn::Sequential<T, D>>(std::initializer_list<nn::ModulePtr<T, D>>{
            relu_dil_conv_bn<T, D>(a.in, a.in, K, a.stride, 1, gen), relu_dil_conv_bn<T, D>(a.in, a.out, K, 1, 1, gen)});
    }
};
template <int K>
struct DilConv {
    static_assert(K == 3 || K == 5, "DilConv: kernel must be 3 or 5");
    static constexpr std::string_view name = K == 3 ? "dil_conv_3x3" : "dil_conv_5x5";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen) {
        return relu_dil_conv_bn<T, D>(a.in, a.out, K, a.stride, 2, gen);
    }
};

/// 3x3 pooling (padding 1) followed by BN without affine terms in DARTS; here plain BN, and a 1x1
/// conv when the width changes.
template <bool Max>
struct Pool3x3 {
    static constexpr std::string_view name = Max ? "max_pool_3x3" : "avg_pool_3x3";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen) {
        const Pool2dOptions o{3, a.stride, 1};
        auto seq = nn::make<nn::Sequential<T, D>>();
        if constexpr (Max) seq->push_back(nn::make<nn::MaxPool2d<T, D>>(o));
        else seq->push_back(nn::make<nn::AvgPool2d<T, D>>(o));
        if (a.in != a.out) seq->push_back(nn::make<nn::Conv2d<T, D>>(a.in, a.out, 1, Conv2dOptions{}, false, gen));
        seq->push_back(nn::make<nn::BatchNorm2d<T, D>>(a.out));
        return seq;
    }
};

/// DARTS' pooling as it searches: 3x3 pooling (padding 1), then batch norm without affine terms
/// (DARTS' MixedOp appends BatchNorm2d(C, affine=False) to its pooling ops), and a 1x1 conv first
/// when the width changes.
template <bool Max>
struct PoolBN3x3 {
    static constexpr std::string_view name = Max ? "max_pool_3x3" : "avg_pool_3x3";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator& gen) {
        const Pool2dOptions o{3, a.stride, 1};
        auto seq = nn::make<nn::Sequential<T, D>>();
        if constexpr (Max) seq->push_back(nn::make<nn::MaxPool2d<T, D>>(o));
        else seq->push_back(nn::make<nn::AvgPool2d<T, D>>(o));
        if (a.in != a.out) seq->push_back(nn::make<nn::Conv2d<T, D>>(a.in, a.out, 1, Conv2dOptions{}, false, gen));
        seq->push_back(nn::make<nn::BatchNorm2d<T, D>>(a.out, 0.1, 1e-5, false, /*affine=*/false));
        return seq;
    }
};

/// DARTS' `none`: zeros of the output shape, so that an edge can be switched off. In a mixture
/// it adds nothing and its weight gets no gradient; derived networks skip it.
template <class T, Device D = cpu>
class Zero : public nn::Module<T, D> {
public:
    Zero(std::int64_t out, std::int64_t stride) : out_(out), stride_(stride) {}
    Var<T, D> forward(const Var<T, D>& x) override {
        DAM_CHECK(x.shape().rank() == 4, shape_error, "none: input must be (N, C, H, W), got {}", x.shape());
        const std::int64_t H = (x.dim(2) + stride_ - 1) / stride_, W = (x.dim(3) + stride_ - 1) / stride_;
        return Var<T, D>(Tensor<T, D>::zeros({x.dim(0), out_, H, W}));
    }

private:
    std::int64_t out_, stride_;
};
struct NoneOp {
    static constexpr std::string_view name = "none";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const CandidateArgs& a, Generator&) {
        return nn::make<Zero<T, D>>(a.out, a.stride);
    }
};

/// DARTS' reduction of a skip edge: ReLU then two stride-2 1x1 convs on offset grids, concatenated.
template <class T, Device D = cpu>
class FactorizedReduce : public nn::Module<T, D> {
public:
    FactorizedReduce(std::int64_t in, std::int64_t out, Generator& gen) {
        DAM_CHECK(out % 2 == 0, value_error, "FactorizedReduce: output width {} must be even", out);
        a_ = this->register_module("a", nn::make<nn::Conv2d<T, D>>(in, out / 2, 1, Conv2dOptions{2, 0, 1, 1}, false, gen));
        b_ = this->register_module("b", nn::make<nn::Conv2d<T, D>>(in, out / 2, 1, Conv2dOptions{2, 0, 1, 1}, false, gen));
        bn_ = this->register_module("bn", nn::make<nn::BatchNorm2d<T, D>>(out));
    }
    Var<T, D> forward(const Var<T, D>& x) override {
        const Var<T, D> r = ops::relu(x);
        // The second conv sees the grid shifted by one pixel (x[:, :, 1:, 1:]), zero-padded at the end.
        const std::int64_t H = x.dim(2), W = x.dim(3);
        Var<T, D> shifted = ops::narrow(ops::narrow(r, 2, 1, H - 1), 3, 1, W - 1);
        shifted = ops::concat(std::vector<Var<T, D>>{shifted, Var<T, D>(Tensor<T, D>::zeros({x.dim(0), x.dim(1), H - 1, 1}))}, 3);
        shifted = ops::concat(std::vector<Var<T, D>>{shifted, Var<T, D>(Tensor<T, D>::zeros({x.dim(0), x.dim(1), 1, W}))}, 2);
        return bn_->forward(ops::concat(std::vector<Var<T, D>>{a_->forward(r), b_->forward(shifted)}));
    }

private:
    nn::ModulePtr<T, D> a_, b_, bn_;
};

template <class T, Device D>
nn::ModulePtr<T, D> SkipConnect::make(const CandidateArgs& a, Generator& gen) {
    if (a.stride == 1 && a.in == a.out) return nn::make<nn::Identity<T, D>>();
    return nn::make<FactorizedReduce<T, D>>(a.in, a.out, gen);
}

}  // namespace diffautoml::nas
