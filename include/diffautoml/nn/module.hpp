#pragma once
// Modules: layers with named parameters, buffers (state that is saved but not trained, such as
// batch-norm running statistics), children, and a train/eval mode.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../ops.hpp"

namespace diffautoml::nn {

template <class T, Device D = cpu>
class Module {
public:
    using VarT = Var<T, D>;
    using TensorT = Tensor<T, D>;

    virtual ~Module() = default;
    virtual VarT forward(const VarT& x) = 0;
    VarT operator()(const VarT& x) { return forward(x); }

    /// Parameters with dotted names ("2.a.conv.weight"), depth first, in registration order.
    std::vector<std::pair<std::string, VarT>> named_parameters(const std::string& prefix = "") const {
        std::vector<std::pair<std::string, VarT>> out;
        collect_parameters(prefix, out);
        return out;
    }
    std::vector<VarT> parameters() const {
        std::vector<VarT> out;
        for (auto& [name, p] : named_parameters()) out.push_back(p);
        return out;
    }
    std::vector<std::pair<std::string, TensorT>> named_buffers(const std::string& prefix = "") const {
        std::vector<std::pair<std::string, TensorT>> out;
        collect_buffers(prefix, out);
        return out;
    }
    std::int64_t parameter_count() const {
        std::int64_t n = 0;
        for (auto& [name, p] : named_parameters()) n += p.numel();
        return n;
    }

    /// Training mode (batch statistics, dropout on) or evaluation mode, for this module and all children.
    void train(bool on = true) {
        training_ = on;
        for (auto& [name, c] : children_) c->train(on);
    }
    void eval() { train(false); }
    bool is_training() const { return training_; }
    /// Releases every parameter's gradient (Var::zero_grad).
    void zero_grad() {
        for (auto& [name, p] : named_parameters()) p.zero_grad();
    }
    /// Fills every defined parameter gradient with zeros (Var::fill_grad_zero).
    void fill_grad_zero() {
        for (auto& [name, p] : named_parameters()) p.fill_grad_zero();
    }
    /// Calls f(module) for this module and every descendant, depth first.
    template <class F>
    void for_each_module(F&& f) {
        f(*this);
        for (auto& [name, c] : children_) c->for_each_module(f);
    }

protected:
    VarT register_parameter(std::string name, TensorT init) {
        VarT p(std::move(init), true);
        params_.emplace_back(std::move(name), p);
        return p;
    }
    TensorT register_buffer(std::string name, TensorT t) {
        buffers_.emplace_back(std::move(name), t);
        return t;
    }
    template <class M>
    std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
        children_.emplace_back(std::move(name), m);
        return m;
    }

private:
    static std::string join(const std::string& prefix, const std::string& name) {
        return prefix.empty() ? name : prefix + "." + name;
    }
    void collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, VarT>>& out) const {
        for (auto& [name, p] : params_) out.emplace_back(join(prefix, name), p);
        for (auto& [name, c] : children_) c->collect_parameters(join(prefix, name), out);
    }
    void collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, TensorT>>& out) const {
        for (auto& [name, b] : buffers_) out.emplace_back(join(prefix, name), b);
        for (auto& [name, c] : children_) c->collect_buffers(join(prefix, name), out);
    }

    std::vector<std::pair<std::string, VarT>> params_;
    std::vector<std::pair<std::string, TensorT>> buffers_;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
    bool training_ = true;
};

template <class T, Device D = cpu>
using ModulePtr = std::shared_ptr<Module<T, D>>;

}  // namespace diffautoml::nn
