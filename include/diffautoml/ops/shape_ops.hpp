#pragma once
// Front doors of the ops that only move data: reshape/flatten (views), concat, narrow, split
// along an axis, the ShuffleNet channel shuffle, and ShuffleNetV2's concat + shuffle fused.
#include <numeric>
#include <type_traits>
#include <vector>

#include "../autograd/variable.hpp"
#include "cpu/channel.hpp"

namespace diffautoml::ops {

/// A view with a new shape (one -1 allowed); the gradient is reshaped back.
template <class T, Device D>
Var<T, D> reshape(const Var<T, D>& x, const Shape& shape) {
    Tensor<T, D> y = x.value().reshape(shape);
    return Var<T, D>::make_result(y, "reshape", {x}, [xn = x.node()](const Tensor<T, D>& g) {
        xn->accumulate(g.reshape(xn->value.shape()));
    });
}
/// (N, ...) -> (N, product of the rest).
template <class T, Device D>
Var<T, D> flatten(const Var<T, D>& x) {
    DAM_CHECK(x.shape().rank() >= 1, shape_error, "flatten: needs at least one axis, got {}", x.shape());
    return reshape(x, Shape{x.dim(0), -1});
}

namespace detail {
struct AxisSplit {
    std::int64_t outer = 1, inner = 1;
    int axis = 0;
};
inline AxisSplit axis_split(const Shape& s, int axis, const char* op) {
    AxisSplit r;
    r.axis = axis < 0 ? axis + s.rank() : axis;
    DAM_CHECK(r.axis >= 0 && r.axis < s.rank(), shape_error, "{}: axis {} is out of range for {}", op, axis, s);
    for (int i = 0; i < r.axis; ++i) r.outer *= s[i];
    for (int i = r.axis + 1; i < s.rank(); ++i) r.inner *= s[i];
    return r;
}
}  // namespace detail

/// Joins tensors along `axis` (default: channels); all other axes must match.
template <class T, Device D>
Var<T, D> concat(const std::vector<Var<T, D>>& xs, int axis = 1) {
    DAM_CHECK(!xs.empty(), shape_error, "concat: needs at least one input");
    const Shape& s0 = xs[0].shape();
    const auto sp = detail::axis_split(s0, axis, "concat");
    std::int64_t total = 0;
    std::vector<std::int64_t> sizes;
    for (const auto& x : xs) {
        const Shape& s = x.shape();
        bool ok = s.rank() == s0.rank();
        for (int i = 0; ok && i < s.rank(); ++i) ok = (i == sp.axis) || s[i] == s0[i];
        DAM_CHECK(ok, shape_error, "concat: shapes {} and {} differ outside axis {}", s0, s, sp.axis);
        sizes.push_back(s[sp.axis]);
        total += s[sp.axis];
    }
    Shape out = s0;
    out[sp.axis] = total;
    Tensor<T, D> y(out);
    std::int64_t off = 0;
    for (std::size_t k = 0; k < xs.size(); ++k) {
        copy_axis_block(D{}, xs[k].value().data(), y.data(), sp.outer, sizes[k], sp.inner, total, off, false);
        off += sizes[k];
    }
    std::vector<Node<T, D>*> nodes;
    for (const auto& x : xs) nodes.push_back(x.node());
    return Var<T, D>::make_result(y, "concat", xs, [nodes, sizes, sp, total](const Tensor<T, D>& g) {
        std::int64_t o = 0;
        for (std::size_t k = 0; k < nodes.size(); ++k) {
            if (nodes[k]->requires_grad) {
                Tensor<T, D> dx(nodes[k]->value.shape());
                narrow_axis(D{}, g.data(), dx.data(), sp.outer, sizes[k], sp.inner, total, o);
                nodes[k]->accumulate_owned(std::move(dx));
            }
            o += sizes[k];
        }
    });
}

/// The slice [start, start + length) of `axis`.
template <class T, Device D>
Var<T, D> narrow(const Var<T, D>& x, int axis, std::int64_t start, std::int64_t length) {
    const auto sp = detail::axis_split(x.shape(), axis, "narrow");
    const std::int64_t n = x.shape()[sp.axis];
    DAM_CHECK(start >= 0 && length >= 0 && start + length <= n, shape_error,
              "narrow: [{}, {}) is outside axis {} of {}", start, start + length, sp.axis, x.shape());
    Shape out = x.shape();
    out[sp.axis] = length;
    Tensor<T, D> y(out);
    narrow_axis(D{}, x.value().data(), y.data(), sp.outer, length, sp.inner, n, start);
    return Var<T, D>::make_result(y, "narrow", {x}, [xn = x.node(), sp, n, start, length](const Tensor<T, D>& g) {
        // Written into the slice of x's pending gradient in place: no full-size temporary, and when
        // x is cut into parts (ShuffleNetV2's split) each part's backward touches only its slice.
        const bool fresh = !xn->pending.defined();
        if (fresh) xn->pending = Tensor<T, D>::zeros(xn->value.shape());
        copy_axis_block(D{}, g.data(), xn->pending.data(), sp.outer, length, sp.inner, n, start, !fresh);
    });
}

/// Splits `axis` into pieces of the given sizes (which must add up to the axis length).
template <class T, Device D>
std::vector<Var<T, D>> split(const Var<T, D>& x, const std::vector<std::int64_t>& sizes, int axis = 1) {
    const auto sp = detail::axis_split(x.shape(), axis, "split");
    const std::int64_t total = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
    DAM_CHECK(total == x.shape()[sp.axis], shape_error, "split: sizes add up to {} but axis {} of {} is {}", total,
              sp.axis, x.shape(), x.shape()[sp.axis]);
    std::vector<Var<T, D>> parts;
    std::int64_t off = 0;
    for (auto s : sizes) {
        parts.push_back(narrow(x, axis, off, s));
        off += s;
    }
    return parts;
}

/// ShuffleNet's channel shuffle: view C as (groups, C/groups), transpose, flatten.
template <class T, Device D>
Var<T, D> channel_shuffle(const Var<T, D>& x, std::int64_t groups) {
    DAM_CHECK(x.shape().rank() >= 2, shape_error, "channel_shuffle: needs (N, C, ...), got {}", x.shape());
    const std::int64_t N = x.dim(0), C = x.dim(1), inner = x.numel() / std::max<std::int64_t>(1, N * C);
    DAM_CHECK(groups >= 1 && C % groups == 0, shape_error, "channel_shuffle: {} channels of {} do not split into {} groups",
              C, x.shape(), groups);
    // Output channel k = i * groups + j reads input channel j * (C / groups) + i.
    auto perm = std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(C));
    const std::int64_t per = C / groups;
    for (std::int64_t i = 0; i < per; ++i)
        for (std::int64_t j = 0; j < groups; ++j) (*perm)[static_cast<std::size_t>(i * groups + j)] = j * per + i;
    Tensor<T, D> y(x.shape());
    permute_channels(D{}, x.value().data(), y.data(), perm->data(), N, C, inner, false);
    return Var<T, D>::make_result(y, "channel_shuffle", {x}, [xn = x.node(), perm, N, C, inner](const Tensor<T, D>& g) {
        Tensor<T, D> dx(xn->value.shape());
        permute_channels(D{}, g.data(), dx.data(), perm->data(), N, C, inner, true);
        xn->accumulate_owned(std::move(dx));
    });
}

/// ShuffleNetV2's merge of its two branches, channel_shuffle(concat({a, b}), 2), as one op: on the
/// CPU one pass over memory forward and one backward instead of two each. a and b must agree in
/// every axis but the channels, and Ca + Cb must be even. Other devices compose the two ops.
template <class T, Device D>
Var<T, D> concat_shuffle(const Var<T, D>& a, const Var<T, D>& b) {
    if constexpr (!std::is_same_v<D, cpu>) {
        return channel_shuffle(concat(std::vector<Var<T, D>>{a, b}), 2);
    } else {
        const Shape& sa = a.shape();
        const Shape& sb = b.shape();
        bool ok = sa.rank() >= 2 && sa.rank() == sb.rank();
        for (int i = 0; ok && i < sa.rank(); ++i) ok = i == 1 || sa[i] == sb[i];
        DAM_CHECK(ok, shape_error, "concat_shuffle: needs (N, C, ...) inputs that agree outside the channels, got {} and {}",
                  sa, sb);
        const std::int64_t N = sa[0], Ca = sa[1], Cb = sb[1];
        DAM_CHECK((Ca + Cb) % 2 == 0, shape_error,
                  "concat_shuffle: {} + {} channels do not split into 2 groups; make the two branches' widths add up "
                  "to an even number", Ca, Cb);
        std::int64_t inner = 1;
        for (int i = 2; i < sa.rank(); ++i) inner *= sa[i];
        Shape out = sa;
        out[1] = Ca + Cb;
        Tensor<T, D> y(out);
        concat_shuffle2(D{}, a.value().data(), b.value().data(), y.data(), N, Ca, Cb, inner);
        return Var<T, D>::make_result(y, "concat_shuffle", {a, b},
                                      [an = a.node(), bn = b.node(), N, Ca, Cb, inner](const Tensor<T, D>& g) {
                                          Tensor<T, D> da, db;
                                          if (an->requires_grad) da = Tensor<T, D>(an->value.shape());
                                          if (bn->requires_grad) db = Tensor<T, D>(bn->value.shape());
                                          concat_shuffle2_backward(D{}, g.data(), da.defined() ? da.data() : nullptr,
                                                                   db.defined() ? db.data() : nullptr, N, Ca, Cb, inner);
                                          if (da.defined()) an->accumulate_owned(std::move(da));
                                          if (db.defined()) bn->accumulate_owned(std::move(db));
                                      });
    }
}

}  // namespace diffautoml::ops
