#pragma once
// Search spaces sized for 28x28 inputs (Fashion-MNIST, MNIST and similar). A space type names its
// candidate lists and builds supernets (every candidate) or derived networks (one chosen
// candidate per decision, same parameter names) from plain options:
//   ShuffleSpace      ShuffleNetV2 choice blocks (k3, k5, k7, Xception): the DSNAS/SPOS space.
//   MobileNetV2Space  inverted residuals, kernel {3,5,7} x expansion {3,6}, plus skip where the
//                     shape is kept (ProxylessNAS-like).
//   DartsSpace        DARTS normal and reduction cells (nas/darts_space.hpp).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/json.hpp"
#include "candidates.hpp"
#include "supernet.hpp"

namespace diffautoml::nas {

/// A chain of searchable layers between a fixed stem and head (ShuffleNetV2 and MobileNetV2 spaces).
struct ChainOptions {
    struct Stage {
        std::int64_t width = 0, layers = 0, stride = 1;  ///< the first layer of a stage has the stride
    };
    std::int64_t in_channels = 1, classes = 10, image = 28;
    std::int64_t stem = 16;  ///< width of the 3x3 stem conv (stride 1)
    std::vector<Stage> stages;
    std::int64_t head = 256;  ///< width of the 1x1 conv before global pooling

    nlohmann::json to_json() const {
        nlohmann::json st = nlohmann::json::array();
        for (const auto& s : stages) st.push_back({{"width", s.width}, {"layers", s.layers}, {"stride", s.stride}});
        return {{"in_channels", in_channels}, {"classes", classes}, {"image", image}, {"stem", stem},
                {"stages", st},           {"head", head}};
    }
    static ChainOptions from_json(const nlohmann::json& j) {
        ChainOptions o;
        try {
            o.in_channels = json_int(j.at("in_channels"), "in_channels");
            o.classes = json_int(j.at("classes"), "classes");
            o.image = json_int(j.at("image"), "image");
            o.stem = json_int(j.at("stem"), "stem");
            o.head = json_int(j.at("head"), "head");
            const auto& stages = j.at("stages");
            DAM_CHECK(stages.is_array(), format_error, "'stages' must be a list, got {}", stages.dump());
            for (const auto& s : stages)
                o.stages.push_back({json_int(s.at("width"), "width"), json_int(s.at("layers"), "layers"),
                                    json_int(s.at("stride"), "stride")});
        } catch (const nlohmann::json::exception& e) {
            throw format_error(fmt::format("search space options: {} (in {})", e.what(), j.dump()));
        } catch (const format_error& e) {
            throw format_error(fmt::format("search space options: {} (in {})", e.what(), j.dump()));
        }
        return o;
    }
    /// Limits of this implementation, checked by validate() so that a corrupt or hostile description
    /// cannot make a build allocate without bound: searchable layers in all, and values of one
    /// image's largest activation (2^26 floats: 28x28 images allow widths up to 85,000).
    static constexpr std::int64_t max_layers = 1024, max_activation = std::int64_t{1} << 26, max_classes = 1 << 20;

    void validate(const char* space) const {
        DAM_CHECK(in_channels > 0 && classes > 1 && image >= 4 && stem > 0 && head > 0 && !stages.empty(), value_error,
                  "{}: options need positive channels, at least 2 classes, image >= 4 and at least one stage; got {}",
                  space, to_json().dump());
        const auto too_wide = [&](std::int64_t width) {
            return image > max_activation || width > max_activation / image / image;
        };
        DAM_CHECK(classes <= max_classes && !too_wide(in_channels) && !too_wide(stem) && !too_wide(head) &&
                      static_cast<std::int64_t>(stages.size()) <= max_layers,
                  value_error,
                  "{}: options beyond this implementation's limits (at most {} classes, {} stages, and {} values in "
                  "one image's activation, i.e. width x image x image); got {}",
                  space, max_classes, max_layers, max_activation, to_json().dump());
        std::int64_t layers_total = 0;
        for (const auto& s : stages) {
            DAM_CHECK(s.width > 0 && s.layers > 0 && (s.stride == 1 || s.stride == 2), value_error,
                      "{}: every stage needs width > 0, layers > 0 and stride 1 or 2; got {}", space, to_json().dump());
            DAM_CHECK(!too_wide(s.width) && s.layers <= max_layers - layers_total, value_error,
                      "{}: options beyond this implementation's limits (at most {} searchable layers, and {} values in "
                      "one image's activation, i.e. width x image x image); got {}",
                      space, max_layers, max_activation, to_json().dump());
            layers_total += s.layers;
        }
    }
    /// Searchable layers (decisions) of a network of these options.
    std::int64_t decisions() const {
        std::int64_t n = 0;
        for (const auto& s : stages) n += s.layers;
        return n;
    }
    /// A lower bound on the parameters of any network of these options (valid options only): the
    /// stem, head and classifier, and the half of in x out that every layer changing the shape
    /// needs in its 1x1 convolutions (a layer that keeps it may be a skip). A model file with fewer
    /// values cannot hold such a network: export.hpp refuses it before building anything.
    std::int64_t min_parameters() const {
        std::int64_t n = 9 * in_channels * stem + head * classes, c = stem;
        for (const auto& s : stages)
            for (std::int64_t i = 0; i < s.layers; ++i) {
                if (c != s.width || (i == 0 && s.stride == 2)) n += c * s.width / 2;
                c = s.width;
            }
        return n + c * head;
    }
};

/// stem (conv3x3-BN-ReLU) -> searchable layers -> conv1x1-BN-ReLU -> global average pool -> linear.
/// `make_layer(args, decision name, only)` builds one mixed op (a derived network passes the choice).
template <class T, Device D = cpu>
class ChainSupernet : public Supernet<T, D> {
public:
    using LayerFactory = std::function<std::shared_ptr<MixedOpBase<T, D>>(const CandidateArgs&, Generator&, std::int64_t)>;

    ChainSupernet(std::string space, ChainOptions o, Generator& gen, const LayerFactory& make_layer,
                  const std::vector<std::int64_t>& arch)
        : space_(std::move(space)), opt_(std::move(o)) {
        opt_.validate(space_.c_str());
        DAM_CHECK(arch.empty() || static_cast<std::int64_t>(arch.size()) == opt_.decisions(), value_error,
                  "{}: an architecture needs one choice per searchable layer ({}), got {}", space_, opt_.decisions(),
                  arch.size());
        stem_ = this->register_module("stem", nn::conv_bn_relu<T, D>(opt_.in_channels, opt_.stem, gen));
        std::int64_t c = opt_.stem, d = 0;
        for (std::size_t s = 0; s < opt_.stages.size(); ++s)
            for (std::int64_t i = 0; i < opt_.stages[s].layers; ++i, ++d) {
                const CandidateArgs a{c, opt_.stages[s].width, i == 0 ? opt_.stages[s].stride : 1};
                const std::int64_t only = arch.empty() ? -1 : arch.at(static_cast<std::size_t>(d));
                auto layer = make_layer(a, gen, only);
                layers_.push_back(this->register_module(fmt::format("layer{}", d), layer));
                const auto dec = this->add_decision(fmt::format("stage{}.layer{}", s + 1, i + 1), layer->names());
                this->bind(dec, layer.get());
                c = a.out;
            }
        head_ = this->register_module(
            "head", nn::make<nn::Sequential<T, D>>(std::initializer_list<nn::ModulePtr<T, D>>{
                        nn::conv_bn_relu<T, D>(c, opt_.head, gen, 1), nn::make<nn::GlobalAvgPool2d<T, D>>(),
                        nn::make<nn::Linear<T, D>>(opt_.head, opt_.classes, true, gen)}));
        if (!arch.empty()) {
            this->check_architecture(arch);
            this->set_derived(arch);
        }
        this->measure_costs({1, opt_.in_channels, opt_.image, opt_.image});
    }
    Var<T, D> forward(const Var<T, D>& x) override {
        Var<T, D> y = stem_->forward(x);
        for (auto& l : layers_) y = l->forward(y);
        return head_->forward(y);
    }
    std::string space_name() const override { return space_; }
    nlohmann::json options_json() const override { return opt_.to_json(); }
    const ChainOptions& options() const { return opt_; }

private:
    std::string space_;
    ChainOptions opt_;
    nn::ModulePtr<T, D> stem_, head_;
    std::vector<std::shared_ptr<MixedOpBase<T, D>>> layers_;
};

/// ShuffleNetV2 choice blocks (DSNAS/SPOS), scaled down for 28x28: stem 16, stages 48x2 (stride
/// 2), 96x4 (stride 2), 192x2, head 256; 8 decisions of 4 choices.
struct ShuffleSpace {
    static constexpr const char* name = "shuffle";
    using Options = ChainOptions;
    template <class T, Device D>
    using Layer = MixedOp<T, D, ShuffleBlock<3>, ShuffleBlock<5>, ShuffleBlock<7>, ShuffleXception>;

    static Options default_options() {
        Options o;
        o.stem = 16;
        o.stages = {{48, 2, 2}, {96, 4, 2}, {192, 2, 1}};
        o.head = 256;
        return o;
    }
    /// A supernet (arch empty) or the derived network of `arch`.
    template <class T, Device D = cpu>
    static std::shared_ptr<ChainSupernet<T, D>> build(const Options& o, Generator& gen,
                                                      const std::vector<std::int64_t>& arch = {}) {
        return std::make_shared<ChainSupernet<T, D>>(
            name, o, gen,
            [](const CandidateArgs& a, Generator& g, std::int64_t only) -> std::shared_ptr<MixedOpBase<T, D>> {
                return std::make_shared<Layer<T, D>>(a, g, only);
            },
            arch);
    }
};

/// MobileNetV2 inverted residuals (ProxylessNAS-like) for 28x28: stem 16, stages 24x2, 40x3
/// (stride 2), 80x3 (stride 2), head 256. Layers that keep the shape also offer skip (7 choices),
/// the others the 6 inverted residuals.
struct MobileNetV2Space {
    static constexpr const char* name = "mobilenetv2";
    using Options = ChainOptions;
    template <class T, Device D>
    using Layer = MixedOp<T, D, InvertedResidual<3, 3>, InvertedResidual<3, 6>, InvertedResidual<5, 3>,
                          InvertedResidual<5, 6>, InvertedResidual<7, 3>, InvertedResidual<7, 6>>;
    template <class T, Device D>
    using SkippableLayer = MixedOp<T, D, InvertedResidual<3, 3>, InvertedResidual<3, 6>, InvertedResidual<5, 3>,
                                   InvertedResidual<5, 6>, InvertedResidual<7, 3>, InvertedResidual<7, 6>, SkipConnect>;

    static Options default_options() {
        Options o;
        o.stem = 16;
        o.stages = {{24, 2, 1}, {40, 3, 2}, {80, 3, 2}};
        o.head = 256;
        return o;
    }
    template <class T, Device D = cpu>
    static std::shared_ptr<ChainSupernet<T, D>> build(const Options& o, Generator& gen,
                                                      const std::vector<std::int64_t>& arch = {}) {
        return std::make_shared<ChainSupernet<T, D>>(
            name, o, gen,
            [](const CandidateArgs& a, Generator& g, std::int64_t only) -> std::shared_ptr<MixedOpBase<T, D>> {
                if (a.stride == 1 && a.in == a.out) return std::make_shared<SkippableLayer<T, D>>(a, g, only);
                return std::make_shared<Layer<T, D>>(a, g, only);
            },
            arch);
    }
};

}  // namespace diffautoml::nas
