#pragma once
// Looking at augmentation: image grids (PNG, or SVG with the PNG embedded and the rows labelled)
// of every op on a few samples and of a policy's output, and a learned policy as a Markdown table.
// Opt-in, through <diffautoml/visualize.hpp> and the diffautoml::visualize target (stb's PNG writer);
// the names stay in diffautoml::da, beside the policies they picture.
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../core/io.hpp"
#include "../da/policies.hpp"
#include "png.hpp"

namespace diffautoml::da {

/// Cells (rows * cols, C, H, W) with pixels in [0, 1] (C = 1 or 3) laid out as a picture with
/// `gap` pixels of mid grey between cells, each pixel repeated `scale` times each way.
struct Gallery {
    Tensor<float> cells;
    std::int64_t rows = 0, cols = 0;
    std::vector<std::string> row_labels;  ///< one per row (SVG only)
};

/// The gallery as 8-bit pixels: (width, height, channels, bytes).
struct Picture {
    std::int64_t width = 0, height = 0;
    int channels = 1;
    std::vector<std::uint8_t> pixels;
};

inline Picture render(const Gallery& g, std::int64_t scale = 3, std::int64_t gap = 2) {
    const Shape& s = g.cells.shape();
    DAM_CHECK(s.rank() == 4 && (s[1] == 1 || s[1] == 3), shape_error,
              "render: gallery cells must be (rows * cols, 1 or 3, H, W), got {}", s);
    DAM_CHECK(g.rows >= 1 && g.cols >= 1 && s[0] == g.rows * g.cols, shape_error,
              "render: {} cells do not fill {} rows x {} cols", s[0], g.rows, g.cols);
    DAM_CHECK(scale >= 1 && gap >= 0, value_error, "render: scale {} must be >= 1 and gap {} >= 0", scale, gap);
    const std::int64_t C = s[1], H = s[2], W = s[3];
    Picture p;
    p.channels = static_cast<int>(C);
    p.width = g.cols * W * scale + (g.cols + 1) * gap;
    p.height = g.rows * H * scale + (g.rows + 1) * gap;
    p.pixels.assign(static_cast<std::size_t>(p.width * p.height * C), 128);
    for (std::int64_t r = 0; r < g.rows; ++r)
        for (std::int64_t c = 0; c < g.cols; ++c) {
            const float* cell = g.cells.data() + (r * g.cols + c) * C * H * W;
            const std::int64_t y0 = gap + r * (H * scale + gap), x0 = gap + c * (W * scale + gap);
            for (std::int64_t i = 0; i < H * scale; ++i)
                for (std::int64_t j = 0; j < W * scale; ++j)
                    for (std::int64_t ch = 0; ch < C; ++ch) {
                        const double v = static_cast<double>(cell[ch * H * W + (i / scale) * W + j / scale]);
                        p.pixels[static_cast<std::size_t>(((y0 + i) * p.width + x0 + j) * C + ch)] =
                            static_cast<std::uint8_t>(kernels::level8(kernels::clip01(v)));
                    }
        }
    return p;
}

/// The gallery as PNG bytes.
inline std::vector<std::uint8_t> gallery_png(const Gallery& g, std::int64_t scale = 3) {
    const Picture p = render(g, scale);
    return encode_png(p.width, p.height, p.channels, p.pixels);
}

/// The gallery as a self-contained SVG: the PNG embedded as data, row labels on the left.
inline std::string gallery_svg(const Gallery& g, std::int64_t scale = 3, const std::string& title = "") {
    const std::int64_t gap = 2;
    const Picture p = render(g, scale, gap);
    const std::string png = base64(encode_png(p.width, p.height, p.channels, p.pixels));
    const std::int64_t label_w = 120, top = title.empty() ? 0 : 24;
    const std::int64_t cell_h = g.cells.dim(2) * scale;
    std::string svg = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
        "font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        label_w + p.width, top + p.height);
    if (!title.empty()) svg += fmt::format("<text x=\"4\" y=\"17\" font-weight=\"bold\">{}</text>\n", title);
    for (std::size_t r = 0; r < g.row_labels.size() && static_cast<std::int64_t>(r) < g.rows; ++r)
        svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\n",
                           label_w - 6, top + gap + static_cast<std::int64_t>(r) * (cell_h + gap) + cell_h / 2,
                           g.row_labels[r]);
    svg += fmt::format("<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" href=\"data:image/png;base64,{}\"/>\n</svg>\n",
                       label_w, top, p.width, p.height, png);
    return svg;
}

/// Writes a gallery as .svg (labelled) or .png, chosen by the file's extension.
inline void write_gallery(const std::string& path, const Gallery& g, std::int64_t scale = 3, const std::string& title = "") {
    const bool svg = path.size() >= 4 && path.substr(path.size() - 4) == ".svg";
    const bool png = path.size() >= 4 && path.substr(path.size() - 4) == ".png";
    DAM_CHECK(svg || png, value_error, "write_gallery: '{}' must end in .svg or .png", path);
    if (svg) write_text_atomic(path, gallery_svg(g, scale, title));
    else write_file_atomic(path, gallery_png(g, scale));
}

/// Every op of `ops` applied to each of the images (pixels in [0, 1]) at magnitude `m` with a
/// positive sign: the first row holds the originals, then one row per op.
inline Gallery op_gallery(const Tensor<float>& pixels, const std::vector<Op>& ops, double m, const AugmentOptions& o = {},
                          const PhiloxStream& s = {0, 0}) {
    DAM_CHECK(pixels.shape().rank() == 4 && pixels.dim(0) >= 1, shape_error,
              "op_gallery: images must be (N, C, H, W) with N >= 1, got {}", pixels.shape());
    const std::int64_t n = pixels.dim(0), per = pixels.numel() / n;
    Gallery g;
    g.rows = 1 + static_cast<std::int64_t>(ops.size());
    g.cols = n;
    g.cells = Tensor<float>(Shape{g.rows * n, pixels.dim(1), pixels.dim(2), pixels.dim(3)});
    std::copy(pixels.data(), pixels.data() + pixels.numel(), g.cells.data());
    g.row_labels.push_back("original");
    for (std::size_t r = 0; r < ops.size(); ++r) {
        std::vector<OpDraw> draws;
        for (std::int64_t i = 0; i < n; ++i) {
            OpDraw d = random_draw(ops[r], s, static_cast<std::uint64_t>(r * static_cast<std::size_t>(n) + static_cast<std::size_t>(i)));
            d.sign = 1;
            draws.push_back(d);
        }
        const std::vector<double> mags(static_cast<std::size_t>(n), m);
        const Tensor<float> y = augment_images<float>(pixels, draws, mags, 1, o);
        std::copy(y.data(), y.data() + y.numel(), g.cells.data() + (1 + static_cast<std::int64_t>(r)) * n * per);
        g.row_labels.emplace_back(op_name(ops[r]));
    }
    return g;
}

/// `rows` independent augmentations of the same stored images by a policy (first row: the
/// originals), converted to pixels with `pixels`. Leaves the policy's parameters unchanged.
template <DaPolicy P>
Gallery policy_gallery(P& policy, const Tensor<typename P::value_type>& images, std::int64_t rows, Generator& gen,
                       const PixelSpace& pixels = {}) {
    DAM_CHECK(rows >= 1, value_error, "policy_gallery: rows must be >= 1, got {}", rows);
    NoGradGuard no_grad;
    const std::int64_t n = images.dim(0), per = images.numel() / n;
    Gallery g;
    g.rows = rows + 1;
    g.cols = n;
    g.cells = Tensor<float>(Shape{g.rows * n, images.dim(1), images.dim(2), images.dim(3)});
    auto put = [&](std::int64_t r, const Tensor<typename P::value_type>& stored) {
        for (std::int64_t k = 0; k < n * per; ++k)
            g.cells[r * n * per + k] = static_cast<float>(static_cast<double>(stored[k]) * pixels.std + pixels.mean);
    };
    put(0, images);
    g.row_labels.push_back("original");
    DaContext ctx{&gen, 0, 1};
    for (std::int64_t r = 1; r <= rows; ++r) {
        put(r, policy.augment(images, ctx).value());
        g.row_labels.push_back(fmt::format("{} #{}", P::policy_name, r));
    }
    return g;
}

/// A learned policy as a Markdown table, most likely row first.
inline std::string policy_table(const std::vector<PolicyEntry>& rows) {
    if (rows.empty()) return "(this policy has no learned rows)\n";
    std::size_t width = 0;
    for (const auto& e : rows) width = std::max(width, e.ops.size());
    std::string s = "| rank | probability |";
    for (std::size_t j = 0; j < width; ++j) s += fmt::format(" op {} (magnitude, apply prob.) |", j + 1);
    s += "\n|---:|---:|";
    for (std::size_t j = 0; j < width; ++j) s += "---|";
    s += "\n";
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const auto& e = rows[r];
        s += fmt::format("| {} | {:.4f} |", r + 1, e.probability);
        for (std::size_t j = 0; j < width; ++j) {
            if (j < e.ops.size()) {
                const std::string mag = info(e.ops[j]).has_magnitude ? fmt::format("{:.2f}", e.magnitudes[j]) : "-";
                s += fmt::format(" {} ({}, {:.2f}) |", op_name(e.ops[j]), mag, e.apply_probabilities[j]);
            } else {
                s += " |";
            }
        }
        s += "\n";
    }
    return s;
}

}  // namespace diffautoml::da
