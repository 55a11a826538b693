#pragma once
// Reverse-mode automatic differentiation, define-by-run.
//
// Every differentiable op returns a Var whose Node remembers its inputs and a closure that, given
// dL/d(output), adds dL/d(input) into each input's pending gradient. backward() orders the nodes
// reachable from the root topologically (iterative DFS, no recursion), runs the closures from the
// root down, accumulates leaf gradients (grad += new), and then frees the graph: closures and
// input links of intermediate nodes are dropped, so the tensors they saved go back to the cache.
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "profile.hpp"

namespace diffautoml {

namespace detail {
inline bool& grad_mode_flag() {
    thread_local bool enabled = true;
    return enabled;
}
}  // namespace detail

/// Whether ops currently record the graph (false inside a NoGradGuard).
inline bool grad_enabled() { return detail::grad_mode_flag(); }

/// RAII scope in which ops record nothing: for evaluation, and for updates made by optimizers.
class NoGradGuard {
public:
    NoGradGuard() : previous_(detail::grad_mode_flag()) { detail::grad_mode_flag() = false; }
    ~NoGradGuard() { detail::grad_mode_flag() = previous_; }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};

template <class T, Device D>
struct Node {
    using TensorT = Tensor<T, D>;
    using BackwardFn = std::function<void(const TensorT& grad_output)>;
    using Hook = std::function<void(const TensorT& grad)>;

    TensorT value;
    TensorT grad;     ///< leaves: accumulated over backward() calls; intermediates: only if retained
    TensorT pending;  ///< the gradient flowing in during the current backward()
    bool requires_grad = false;
    bool is_leaf = true;
    bool retain_grad = false;
    bool freed = false;
    std::string op = "leaf";
    std::vector<std::shared_ptr<Node>> inputs;
    BackwardFn backward_fn;
    std::vector<Hook> hooks;

    /// pending += g. The first contribution is copied, so several inputs may receive one tensor.
    void accumulate(const TensorT& g) {
        check_shape(g);
        if (!pending.defined()) {
            pending = g.clone();
        } else {
            add_n(D{}, pending.data(), g.data(), g.numel());
        }
    }
    /// pending += g for a freshly computed g that nobody else holds (no copy on first use).
    void accumulate_owned(TensorT&& g) {
        check_shape(g);
        if (!pending.defined()) {
            pending = std::move(g);
        } else {
            add_n(D{}, pending.data(), g.data(), g.numel());
        }
    }

private:
    void check_shape(const TensorT& g) const {
        DAM_CHECK(g.numel() == value.numel(), shape_error,
                  "autograd: op '{}' produced a gradient of shape {} for a value of shape {}", op, g.shape(),
                  value.shape());
    }
};

template <class T, Device D = cpu>
class Var {
public:
    using TensorT = Tensor<T, D>;
    using NodeT = Node<T, D>;

    Var() = default;
    /// A leaf holding `value`; parameters pass requires_grad = true.
    explicit Var(TensorT value, bool requires_grad = false) : node_(std::make_shared<NodeT>()) {
        node_->value = std::move(value);
        node_->requires_grad = requires_grad;
    }

    /// Builds the result of an op. When grad mode is off or no input needs a gradient, the result
    /// is a constant and `backward_fn` is dropped unrun.
    static Var make_result(TensorT value, std::string op, std::initializer_list<Var> inputs,
                           typename NodeT::BackwardFn backward_fn) {
        return make_result(std::move(value), std::move(op), std::vector<Var>(inputs), std::move(backward_fn));
    }
    static Var make_result(TensorT value, std::string op, const std::vector<Var>& inputs,
                           typename NodeT::BackwardFn backward_fn) {
        if (OpProfiler* p = OpProfiler::active()) p->forward(op);
        Var r(std::move(value), false);
        r.node_->op = std::move(op);
        if (!grad_enabled()) return r;
        bool any = false;
        for (const Var& v : inputs) any = any || (v.defined() && v.requires_grad());
        if (!any) return r;
        r.node_->requires_grad = true;
        r.node_->is_leaf = false;
        // Every input is kept alive (backward closures look at each one's requires_grad), but only
        // inputs that need a gradient are visited by backward().
        for (const Var& v : inputs)
            if (v.defined()) r.node_->inputs.push_back(v.node_);
        r.node_->backward_fn = std::move(backward_fn);
        return r;
    }

    bool defined() const { return node_ != nullptr; }
    const TensorT& value() const { return node_->value; }
    const Shape& shape() const { return node_->value.shape(); }
    std::int64_t dim(int i) const { return node_->value.dim(i); }
    std::int64_t numel() const { return node_->value.numel(); }
    bool requires_grad() const { return node_->requires_grad; }
    bool is_leaf() const { return node_->is_leaf; }
    const std::string& op() const { return node_->op; }
    /// The accumulated gradient (undefined until a backward pass reaches this variable).
    const TensorT& grad() const { return node_->grad; }
    TensorT& grad() { return node_->grad; }
    /// Releases the accumulated gradient (PyTorch's set_to_none): grad() is undefined until the
    /// next backward pass reaches this variable, so an optimizer skips it (no decay, no momentum
    /// step) when that pass does not.
    void zero_grad() { node_->grad = TensorT(); }
    /// Sets the accumulated gradient to zeros in place, keeping its storage (for code that reads
    /// grad() whether or not a backward pass reached this variable).
    void fill_grad_zero() {
        if (node_->grad.defined()) node_->grad.zero();
    }
    void set_requires_grad(bool r) {
        DAM_CHECK(node_->is_leaf, autograd_error, "set_requires_grad: '{}' is not a leaf; detach() it first",
                  node_->op);
        node_->requires_grad = r;
    }
    /// A leaf sharing this value, cut from the graph.
    Var detach() const { return Var(node_->value, false); }
    /// Keeps the gradient of an intermediate value after backward() (readable through grad()).
    void retain_grad() { node_->retain_grad = true; }
    /// Calls `hook(dL/d this)` during backward, before the gradient flows further down.
    void register_hook(typename NodeT::Hook hook) {
        DAM_CHECK(node_->requires_grad, autograd_error,
                  "register_hook: '{}' does not require a gradient, so no gradient will reach it", node_->op);
        node_->hooks.push_back(std::move(hook));
    }
    NodeT* node() const { return node_.get(); }
    const std::shared_ptr<NodeT>& node_ptr() const { return node_; }

    /// The leaves that require a gradient and that a backward pass from here would reach.
    std::vector<std::shared_ptr<NodeT>> reachable_leaves() const {
        std::vector<std::shared_ptr<NodeT>> out;
        if (!node_->requires_grad) return out;
        for (auto& n : topological_order(node_))
            if (n->is_leaf && n->requires_grad) out.push_back(n);
        return out;
    }

    /// Back-propagates from a one-element value (seed 1). With retain_graph the recorded graph
    /// stays usable for another backward pass (e.g. a second seed at an intermediate value).
    void backward(bool retain_graph = false) const {
        DAM_CHECK(numel() == 1, autograd_error,
                  "backward: the value has shape {}; pass a seed gradient of that shape, or reduce it to "
                  "one element (sum, mean) first",
                  shape());
        backward(TensorT::full(shape(), T(1)), retain_graph);
    }
    /// Back-propagates the seed dL/d(this): computes the vector-Jacobian product for every leaf.
    void backward(const TensorT& seed, bool retain_graph = false) const {
        DAM_CHECK(node_->requires_grad, autograd_error,
                  "backward: '{}' does not require a gradient (no parameter with requires_grad reaches it, or "
                  "it was computed under NoGradGuard)",
                  node_->op);
        DAM_CHECK(!node_->freed, autograd_error,
                  "backward: the graph of '{}' was already freed by an earlier backward(); run the forward "
                  "pass again",
                  node_->op);
        DAM_CHECK(seed.shape() == shape(), shape_error, "backward: seed shape {} differs from value shape {}",
                  seed.shape(), shape());
        // The order holds every node alive until the pass ends: freeing a node's inputs below may
        // drop the last other reference to a node that is still to be processed.
        const std::vector<std::shared_ptr<NodeT>> order = topological_order(node_);
        node_->accumulate(seed);
        for (const auto& n : order) {
            if (!n->pending.defined()) continue;  // no gradient flowed here
            for (auto& hook : n->hooks) hook(n->pending);
            if (n->is_leaf) {
                if (!n->grad.defined()) {
                    n->grad = std::move(n->pending);
                } else {
                    add_n(D{}, n->grad.data(), n->pending.data(), n->grad.numel());
                }
                n->pending = TensorT();
                continue;
            }
            if (n->backward_fn) {
                if (OpProfiler* p = OpProfiler::active()) {
                    const auto t0 = OpProfiler::clock::now();
                    n->backward_fn(n->pending);
                    p->backward(n->op, std::chrono::duration<double>(OpProfiler::clock::now() - t0).count());
                } else {
                    n->backward_fn(n->pending);
                }
            }
            if (n->retain_grad) n->grad = std::move(n->pending);
            n->pending = TensorT();
            if (retain_graph) continue;
            n->backward_fn = nullptr;
            n->inputs.clear();
            n->hooks.clear();
            n->freed = true;
        }
    }

private:
    // Reverse post-order of the DFS from the root: every node comes after all nodes that use it.
    static std::vector<std::shared_ptr<NodeT>> topological_order(const std::shared_ptr<NodeT>& root) {
        std::vector<std::shared_ptr<NodeT>> post;
        std::unordered_set<NodeT*> seen{root.get()};
        std::vector<std::pair<std::shared_ptr<NodeT>, std::size_t>> stack{{root, 0}};
        while (!stack.empty()) {
            auto& [n, next] = stack.back();
            if (next < n->inputs.size()) {
                std::shared_ptr<NodeT> child = n->inputs[next++];
                if (child->requires_grad && seen.insert(child.get()).second) stack.emplace_back(std::move(child), 0);
            } else {
                post.push_back(n);
                stack.pop_back();
            }
        }
        return {post.rbegin(), post.rend()};
    }

    std::shared_ptr<NodeT> node_;
};

/// The vector-Jacobian product seed^T d out / d wrt_i for each of `wrt` (leaves), as a pure
/// function (torch.autograd.grad): the accumulated gradient of every leaf, in `wrt` or not, is
/// left as it was, and the other leaves' gradients are not even computed (ops skip inputs that
/// do not require a gradient). A leaf that `out` does not reach gets zeros. With retain_graph the
/// graph stays usable for another backward pass.
template <class T, Device D>
std::vector<Tensor<T, D>> grad(const Var<T, D>& out, const Tensor<T, D>& seed, const std::vector<Var<T, D>>& wrt,
                               bool retain_graph = false) {
    for (const auto& w : wrt)
        DAM_CHECK(w.defined() && w.is_leaf(), autograd_error, "grad: every variable to differentiate by must be a leaf");
    std::vector<Tensor<T, D>> out_grads;
    for (const auto& w : wrt) out_grads.push_back(Tensor<T, D>::zeros(w.shape()));
    if (!out.requires_grad()) return out_grads;
    std::unordered_set<const Node<T, D>*> wanted;
    for (const auto& w : wrt) wanted.insert(w.node());
    // Stash the wanted leaves' gradients and switch the other leaves off; restore both on exit,
    // also when backward() throws.
    struct Restore {
        std::vector<std::pair<std::shared_ptr<Node<T, D>>, Tensor<T, D>>> stashed;
        std::vector<std::shared_ptr<Node<T, D>>> switched_off;
        ~Restore() {
            for (auto& [n, g] : stashed) n->grad = std::move(g);
            // A one-input op may pass its gradient on without asking whether the input wants it:
            // what reached a switched-off leaf is dropped, never carried into a later pass.
            for (auto& n : switched_off) {
                n->requires_grad = true;
                n->pending = Tensor<T, D>();
            }
        }
    } restore;
    for (auto& leaf : out.reachable_leaves()) {
        if (wanted.count(leaf.get())) {
            restore.stashed.emplace_back(leaf, std::move(leaf->grad));
            leaf->grad = Tensor<T, D>();
        } else {
            leaf->requires_grad = false;
            restore.switched_off.push_back(leaf);
        }
    }
    out.backward(seed, retain_graph);
    for (std::size_t i = 0; i < wrt.size(); ++i)
        if (wrt[i].grad().defined()) out_grads[i] = wrt[i].grad();
    return out_grads;
}

/// grad() of a one-element value (seed 1).
template <class T, Device D>
std::vector<Tensor<T, D>> grad(const Var<T, D>& out, const std::vector<Var<T, D>>& wrt, bool retain_graph = false) {
    DAM_CHECK(out.numel() == 1, autograd_error, "grad: the value has shape {}; pass a seed of that shape", out.shape());
    return grad(out, Tensor<T, D>::full(out.shape(), T(1)), wrt, retain_graph);
}

/// Convenience: a trainable leaf.
template <class T, Device D>
Var<T, D> parameter(Tensor<T, D> value) {
    return Var<T, D>(std::move(value), true);
}

}  // namespace diffautoml
