#pragma once
// Convolution and pooling geometry shared by every backend.
#include <cstdint>

#include "../core/shape.hpp"

namespace diffautoml {

/// User-facing settings of a 2-d convolution.
struct Conv2dOptions {
    std::int64_t stride = 1;
    std::int64_t padding = 0;
    std::int64_t dilation = 1;
    std::int64_t groups = 1;
};

/// Every size a conv2d kernel needs, derived once from the shapes and the options.
struct ConvGeometry {
    std::int64_t batch, in_c, in_h, in_w, out_c, out_h, out_w, kh, kw;
    std::int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;

    static ConvGeometry make(const Shape& x, const Shape& w, const Conv2dOptions& o) {
        DAM_CHECK(x.rank() == 4, shape_error, "conv2d: input must be (N, C, H, W), got {}", x);
        DAM_CHECK(w.rank() == 4, shape_error, "conv2d: weight must be (Cout, Cin/groups, KH, KW), got {}", w);
        DAM_CHECK(o.stride >= 1 && o.dilation >= 1 && o.padding >= 0 && o.groups >= 1, value_error,
                  "conv2d: stride {} and dilation {} must be >= 1, padding {} >= 0, groups {} >= 1", o.stride,
                  o.dilation, o.padding, o.groups);
        DAM_CHECK(x[1] % o.groups == 0 && w[0] % o.groups == 0, shape_error,
                  "conv2d: input channels {} and output channels {} must both be divisible by groups {}", x[1],
                  w[0], o.groups);
        DAM_CHECK(w[1] * o.groups == x[1], shape_error,
                  "conv2d: input {} has {} channels but weight {} with groups={} expects {}", x, x[1], w, o.groups,
                  w[1] * o.groups);
        ConvGeometry g{};
        g.batch = x[0];
        g.in_c = x[1];
        g.in_h = x[2];
        g.in_w = x[3];
        g.out_c = w[0];
        g.kh = w[2];
        g.kw = w[3];
        g.stride_h = g.stride_w = o.stride;
        g.pad_h = g.pad_w = o.padding;
        g.dil_h = g.dil_w = o.dilation;
        g.groups = o.groups;
        g.out_h = (g.in_h + 2 * g.pad_h - g.dil_h * (g.kh - 1) - 1) / g.stride_h + 1;
        g.out_w = (g.in_w + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1) / g.stride_w + 1;
        DAM_CHECK(g.out_h >= 1 && g.out_w >= 1, shape_error,
                  "conv2d: input {} is too small for kernel {}x{} (padding {}, dilation {})", x, g.kh, g.kw,
                  o.padding, o.dilation);
        return g;
    }
    Shape out_shape() const { return {batch, out_c, out_h, out_w}; }
    /// Rows and columns of the zero-padded input that the kernel reads (padded coordinates start
    /// at the padding's first row and column): the extent the CPU kernels copy an input into.
    std::int64_t padded_rows_read() const { return (out_h - 1) * stride_h + (kh - 1) * dil_h + 1; }
    std::int64_t padded_cols_read() const { return (out_w - 1) * stride_w + (kw - 1) * dil_w + 1; }
};

/// Every size a pooling kernel needs: planes = N * C, square k x k windows.
struct PoolGeometry {
    std::int64_t planes, in_h, in_w, out_h, out_w, k, stride, pad;
};

/// Settings of max/avg pooling.
struct Pool2dOptions {
    std::int64_t kernel = 2;
    std::int64_t stride = 0;  ///< 0 means "same as kernel"
    std::int64_t padding = 0;
};

}  // namespace diffautoml
