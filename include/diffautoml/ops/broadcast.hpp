#pragma once
// NumPy broadcasting of two shapes, with adjacent dimensions merged where both operands stay
// contiguous, so (N,C,H,W) op (C,1,1) becomes a 3-d loop whose inner run is H*W long.
#include <array>

#include "../core/shape.hpp"

namespace diffautoml {

struct BroadcastPlan {
    Shape out;                              ///< the broadcast result shape
    int rank = 0;                           ///< rank after merging (0: a single element)
    std::array<std::int64_t, Shape::max_rank> size{}, stride_a{}, stride_b{};

    std::int64_t inner() const { return rank ? size[rank - 1] : 1; }
    std::int64_t outer() const {
        std::int64_t n = 1;
        for (int i = 0; i + 1 < rank; ++i) n *= size[i];
        return n;
    }
    /// Element offsets of a and b for outer index o (inner index 0).
    void offsets(std::int64_t o, std::int64_t& a, std::int64_t& b) const {
        a = b = 0;
        for (int i = rank - 2; i >= 0; --i) {
            const std::int64_t k = o % size[i];
            o /= size[i];
            a += k * stride_a[i];
            b += k * stride_b[i];
        }
    }

    static BroadcastPlan make(const Shape& a, const Shape& b, const char* op) {
        BroadcastPlan p;
        const int r = std::max(a.rank(), b.rank());
        std::array<std::int64_t, Shape::max_rank> da{}, db{}, sa{}, sb{}, so{};
        for (int i = 0; i < r; ++i) {
            const int ia = i - (r - a.rank()), ib = i - (r - b.rank());
            da[i] = ia >= 0 ? a[ia] : 1;
            db[i] = ib >= 0 ? b[ib] : 1;
            DAM_CHECK(da[i] == db[i] || da[i] == 1 || db[i] == 1, shape_error,
                      "{}: shapes {} and {} cannot be broadcast together (axis {} is {} vs {}); they must be "
                      "equal or one of them 1",
                      op, a, b, i, da[i], db[i]);
            so[i] = std::max(da[i], db[i]);
            p.out.push_back(so[i]);
        }
        std::int64_t ca = 1, cb = 1;
        for (int i = r - 1; i >= 0; --i) {
            sa[i] = da[i] == 1 ? 0 : ca;
            sb[i] = db[i] == 1 ? 0 : cb;
            ca *= da[i];
            cb *= db[i];
        }
        // Drop size-1 axes, merge an axis into the one before when both operands stay contiguous.
        for (int i = 0; i < r; ++i) {
            if (so[i] == 1) continue;
            if (p.rank > 0) {
                const int j = p.rank - 1;
                if (p.stride_a[j] == sa[i] * so[i] && p.stride_b[j] == sb[i] * so[i]) {
                    p.size[j] *= so[i];
                    p.stride_a[j] = sa[i];
                    p.stride_b[j] = sb[i];
                    continue;
                }
            }
            p.size[p.rank] = so[i];
            p.stride_a[p.rank] = sa[i];
            p.stride_b[p.rank] = sb[i];
            ++p.rank;
        }
        return p;
    }
};

}  // namespace diffautoml
