#pragma once
// The DARTS cell spaces (Liu et al., 2019), narrow and shallow for 28x28 inputs. A cell takes the
// outputs of the two previous cells, preprocesses them to C channels, and computes `nodes`
// intermediate nodes, each the sum of one mixed op per earlier node (two inputs included); the
// cell's output is the concatenation of its intermediate nodes. Reduction cells apply stride 2 on
// the edges from their inputs and double C. Each edge of the normal cell is one decision shared by
// every normal cell, and likewise for the reduction cell (2 x sum_{i<nodes} (2 + i) decisions).
//  - DartsSpace: 7 ops per edge, no `none`; the derived network keeps every edge with its argmax.
//  - DartsPaperSpace: DARTS' own 8 ops (none, max/avg pool 3x3 with non-affine BN, skip,
//    sep_conv 3x3/5x5, dil_conv 3x3/5x5) and DARTS' derivation: each node keeps the two incoming
//    edges whose strongest non-`none` op is strongest, each with that op; the other edges are
//    `none` and the derived network skips them.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/json.hpp"
#include "candidates.hpp"
#include "supernet.hpp"

namespace diffautoml::nas {

struct DartsOptions {
    std::int64_t in_channels = 1, classes = 10, image = 28;
    std::int64_t channels = 16;  ///< C of the first cells (the stem has 3C)
    std::int64_t cells = 4;      ///< reduction cells sit at cells/3 and 2*cells/3
    std::int64_t nodes = 3;      ///< intermediate nodes per cell

    nlohmann::json to_json() const {
        return {{"in_channels", in_channels}, {"classes", classes}, {"image", image},
                {"channels", channels},       {"cells", cells},     {"nodes", nodes}};
    }
    static DartsOptions from_json(const nlohmann::json& j) {
        DartsOptions o;
        try {
            o.in_channels = json_int(j.at("in_channels"), "in_channels");
            o.classes = json_int(j.at("classes"), "classes");
            o.image = json_int(j.at("image"), "image");
            o.channels = json_int(j.at("channels"), "channels");
            o.cells = json_int(j.at("cells"), "cells");
            o.nodes = json_int(j.at("nodes"), "nodes");
        } catch (const nlohmann::json::exception& e) {
            throw format_error(fmt::format("darts space options: {} (in {})", e.what(), j.dump()));
        } catch (const format_error& e) {
            throw format_error(fmt::format("darts space options: {} (in {})", e.what(), j.dump()));
        }
        return o;
    }
    /// Limits of this implementation (see ChainOptions): cells, nodes, classes, and values of one
    /// image's largest activation (a cell's output: nodes x 4C at full resolution bounds it).
    static constexpr std::int64_t max_cells = 64, max_nodes = 16, max_activation = std::int64_t{1} << 26,
                                  max_classes = 1 << 20;

    void validate() const {
        DAM_CHECK(in_channels > 0 && classes > 1 && image >= 4 && channels > 0 && channels % 2 == 0 && cells >= 1 &&
                      nodes >= 1,
                  value_error, "darts: options need positive sizes, even channels, at least 2 classes and image >= 4; got {}",
                  to_json().dump());
        DAM_CHECK(classes <= max_classes && cells <= max_cells && nodes <= max_nodes && image <= max_activation &&
                      std::max(in_channels, nodes * 4 * channels) <= max_activation / image / image,
                  value_error,
                  "darts: options beyond this implementation's limits (at most {} classes, {} cells, {} nodes, and {} "
                  "values in one image's activation, i.e. nodes x 4 x channels x image x image); got {}",
                  max_classes, max_cells, max_nodes, max_activation, to_json().dump());
    }
    /// A lower bound on the parameters of a network of these options (valid options only): the
    /// stem, each cell's 1x1 preprocessing of its input (C x C at least) and the classifier.
    std::int64_t min_parameters() const { return 9 * in_channels * 3 * channels + cells * channels * channels + channels * classes; }
    std::int64_t edges() const { return nodes * (nodes + 3) / 2; }  // sum_{i<nodes} (2 + i)
    bool is_reduction(std::int64_t cell) const {
        return cells >= 3 && (cell == cells / 3 || cell == 2 * cells / 3);
    }
};

/// The mixed op of one edge of DartsSpace (D a Device; unconstrained here so that the alias can
/// be passed as a template template argument).
template <class T, class D>
using DartsEdge = MixedOp<T, D, SepConv<3>, SepConv<5>, DilConv<3>, DilConv<5>, Pool3x3<true>, Pool3x3<false>, SkipConnect>;
/// The mixed op of one edge of DartsPaperSpace, in DARTS' order (PRIMITIVES); `none` is choice 0.
template <class T, class D>
using DartsPaperEdge = MixedOp<T, D, NoneOp, PoolBN3x3<true>, PoolBN3x3<false>, SkipConnect, SepConv<3>, SepConv<5>,
                               DilConv<3>, DilConv<5>>;

template <class T, Device D = cpu, template <class, class> class EdgeT = DartsEdge>
class DartsCell : public nn::Module<T, D> {
public:
    using Edge = EdgeT<T, D>;
    /// The index of `none` among the edge's choices, or -1 when it has none.
    static constexpr std::int64_t none_index = [] {
        for (std::size_t k = 0; k < Edge::candidate_names.size(); ++k)
            if (Edge::candidate_names[k] == "none") return static_cast<std::int64_t>(k);
        return std::int64_t{-1};
    }();

    /// `arch` (empty for a supernet) holds this cell type's choice per edge.
    DartsCell(std::int64_t c_pp, std::int64_t c_p, std::int64_t c, bool reduction, bool reduction_prev, std::int64_t nodes,
              Generator& gen, const std::vector<std::int64_t>& arch)
        : nodes_(nodes) {
        if (reduction_prev) pre0_ = this->register_module("pre0", nn::make<FactorizedReduce<T, D>>(c_pp, c, gen));
        else pre0_ = this->register_module("pre0", relu_conv_bn(c_pp, c, gen));
        pre1_ = this->register_module("pre1", relu_conv_bn(c_p, c, gen));
        std::int64_t e = 0;
        for (std::int64_t i = 0; i < nodes; ++i)
            for (std::int64_t j = 0; j < 2 + i; ++j, ++e) {
                const CandidateArgs a{c, c, reduction && j < 2 ? 2 : 1};
                auto edge = std::make_shared<Edge>(a, gen, arch.empty() ? -1 : arch.at(static_cast<std::size_t>(e)));
                edges_.push_back(this->register_module(fmt::format("node{}.in{}", i, j), edge));
            }
    }
    const std::vector<std::shared_ptr<Edge>>& edges() const { return edges_; }

    Var<T, D> forward2(const Var<T, D>& s0, const Var<T, D>& s1) {
        std::vector<Var<T, D>> states{pre0_->forward(s0), pre1_->forward(s1)};
        std::size_t e = 0;
        for (std::int64_t i = 0; i < nodes_; ++i) {
            Var<T, D> node;
            for (std::size_t j = 0; j < states.size(); ++j, ++e) {
                // A derived `none` edge adds zeros: skip it (unless the node would have no input).
                const bool last = j + 1 == states.size();
                if (none_index >= 0 && edges_[e]->only() == none_index && (node.defined() || !last)) {
                    edges_[e]->note_skipped_input(states[j].shape());
                    continue;
                }
                Var<T, D> y = edges_[e]->forward(states[j]);
                node = node.defined() ? node + y : y;
            }
            states.push_back(node);
        }
        return ops::concat(std::vector<Var<T, D>>(states.begin() + 2, states.end()), 1);
    }
    Var<T, D> forward(const Var<T, D>&) override {
        throw value_error("DartsCell: a cell takes the outputs of the two previous cells; call forward2(s0, s1)");
    }

private:
    static nn::ModulePtr<T, D> relu_conv_bn(std::int64_t in, std::int64_t out, Generator& gen) {
        return nn::make<nn::Sequential<T, D>>(std::initializer_list<nn::ModulePtr<T, D>>{
            nn::make<nn::ReLU<T, D>>(), nn::make<nn::Conv2d<T, D>>(in, out, 1, Conv2dOptions{}, false, gen),
            nn::make<nn::BatchNorm2d<T, D>>(out)});
    }
    std::int64_t nodes_;
    nn::ModulePtr<T, D> pre0_, pre1_;
    std::vector<std::shared_ptr<Edge>> edges_;
};

/// stem (conv3x3 -> BN, 3C channels) -> cells -> global average pool -> linear.
template <class T, Device D = cpu, template <class, class> class EdgeT = DartsEdge>
class DartsSupernet : public Supernet<T, D> {
public:
    using Cell = DartsCell<T, D, EdgeT>;

    DartsSupernet(DartsOptions o, Generator& gen, const std::vector<std::int64_t>& arch, std::string space = "darts")
        : opt_(o), space_(std::move(space)) {
        opt_.validate();
        const std::int64_t E = opt_.edges();
        static constexpr const char* cell_types[] = {"normal", "reduce"};
        for (int t = 0; t < 2; ++t) {
            std::int64_t e = 0;
            for (std::int64_t i = 0; i < opt_.nodes; ++i)
                for (std::int64_t j = 0; j < 2 + i; ++j, ++e) {
                    std::vector<std::string> names(Cell::Edge::candidate_names.begin(), Cell::Edge::candidate_names.end());
                    this->add_decision(fmt::format("{}.node{}.in{}", cell_types[t], i, j), names);
                }
        }
        if (!arch.empty()) this->check_architecture(arch);
        auto type_arch = [&](int t) {
            if (arch.empty()) return std::vector<std::int64_t>{};
            return std::vector<std::int64_t>(arch.begin() + t * E, arch.begin() + (t + 1) * E);
        };
        const std::int64_t C = opt_.channels;
        stem_ = this->register_module(
            "stem", nn::make<nn::Sequential<T, D>>(std::initializer_list<nn::ModulePtr<T, D>>{
                        nn::make<nn::Conv2d<T, D>>(opt_.in_channels, 3 * C, 3, Conv2dOptions{1, 1, 1, 1}, false, gen),
                        nn::make<nn::BatchNorm2d<T, D>>(3 * C)}));
        std::int64_t c_pp = 3 * C, c_p = 3 * C, c = C;
        bool reduction_prev = false;
        for (std::int64_t k = 0; k < opt_.cells; ++k) {
            const bool reduction = opt_.is_reduction(k);
            if (reduction) c *= 2;
            const int t = reduction ? 1 : 0;
            auto cell = std::make_shared<Cell>(c_pp, c_p, c, reduction, reduction_prev, opt_.nodes, gen, type_arch(t));
            cells_.push_back(this->register_module(fmt::format("cell{}", k), cell));
            for (std::size_t e = 0; e < cell->edges().size(); ++e)
                this->bind(static_cast<std::size_t>(t * E) + e, cell->edges()[e].get());
            reduction_prev = reduction;
            c_pp = c_p;
            c_p = opt_.nodes * c;
        }
        pool_ = this->register_module("pool", nn::make<nn::GlobalAvgPool2d<T, D>>());
        head_ = this->register_module("head", nn::make<nn::Linear<T, D>>(c_p, opt_.classes, true, gen));
        if (!arch.empty()) this->set_derived(arch);
        this->measure_costs({1, opt_.in_channels, opt_.image, opt_.image});
    }
    Var<T, D> forward(const Var<T, D>& x) override {
        Var<T, D> s0 = stem_->forward(x), s1 = s0;
        for (auto& cell : cells_) {
            Var<T, D> s2 = cell->forward2(s0, s1);
            s0 = s1;
            s1 = s2;
        }
        return head_->forward(pool_->forward(s1));
    }
    std::string space_name() const override { return space_; }
    nlohmann::json options_json() const override { return opt_.to_json(); }
    const DartsOptions& options() const { return opt_; }

    /// With a `none` op, DARTS' derivation (Liu et al., 2019, section 2.4): per node the two
    /// incoming edges with the largest max_{k != none} p_k, each with that argmax op; the other
    /// edges get `none`. Without one, the argmax of every edge.
    std::vector<std::int64_t> derive_architecture(const std::vector<std::vector<double>>& probabilities) const override {
        if constexpr (Cell::none_index < 0) {
            return Supernet<T, D>::derive_architecture(probabilities);
        } else {
            DAM_CHECK(probabilities.size() == this->num_decisions(), value_error,
                      "{}: derive_architecture needs one distribution per decision ({}), got {}", space_, this->num_decisions(),
                      probabilities.size());
            constexpr auto none = static_cast<std::size_t>(Cell::none_index);
            std::vector<std::int64_t> arch(probabilities.size(), Cell::none_index);
            std::vector<std::pair<double, std::int64_t>> best;  // (strength, op) of each incoming edge
            std::size_t e = 0;
            for (int t = 0; t < 2; ++t)
                for (std::int64_t i = 0; i < opt_.nodes; ++i) {
                    best.clear();
                    for (std::int64_t j = 0; j < 2 + i; ++j, ++e) {
                        const auto& p = probabilities[e];
                        std::pair<double, std::int64_t> b{-1.0, -1};
                        for (std::size_t k = 0; k < p.size(); ++k)
                            if (k != none && p[k] > b.first) b = {p[k], static_cast<std::int64_t>(k)};
                        best.push_back(b);
                    }
                    std::vector<std::size_t> order(best.size());
                    std::iota(order.begin(), order.end(), std::size_t{0});
                    std::stable_sort(order.begin(), order.end(),
                                     [&](std::size_t a, std::size_t b) { return best[a].first > best[b].first; });
                    const std::size_t first = e - best.size();
                    for (std::size_t r = 0; r < std::min<std::size_t>(2, order.size()); ++r)
                        arch[first + order[r]] = best[order[r]].second;
                }
            return arch;
        }
    }

private:
    DartsOptions opt_;
    std::string space_;
    nn::ModulePtr<T, D> stem_, pool_, head_;
    std::vector<std::shared_ptr<Cell>> cells_;
};

/// The DARTS cell space: sep_conv 3x3/5x5, dil_conv 3x3/5x5, max/avg pool 3x3, skip per edge.
struct DartsSpace {
    static constexpr const char* name = "darts";
    using Options = DartsOptions;
    static Options default_options() { return {}; }
    template <class T, Device D = cpu>
    static std::shared_ptr<DartsSupernet<T, D>> build(const Options& o, Generator& gen,
                                                      const std::vector<std::int64_t>& arch = {}) {
        return std::make_shared<DartsSupernet<T, D>>(o, gen, arch, name);
    }
};

/// The DARTS paper's cell space: none, max/avg pool 3x3 (non-affine BN), skip, sep_conv 3x3/5x5,
/// dil_conv 3x3/5x5 per edge, and DARTS' two-edges-per-node derivation.
struct DartsPaperSpace {
    static constexpr const char* name = "darts_paper";
    using Options = DartsOptions;
    static Options default_options() { return {}; }
    template <class T, Device D = cpu>
    static std::shared_ptr<DartsSupernet<T, D, DartsPaperEdge>> build(const Options& o, Generator& gen,
                                                                      const std::vector<std::int64_t>& arch = {}) {
        return std::make_shared<DartsSupernet<T, D, DartsPaperEdge>>(o, gen, arch, name);
    }
};

}  // namespace diffautoml::nas
