#pragma once
// A self-contained HTML report of a joint search from its per-epoch records and result: SVG line
// charts (accuracy, loss, hyperparameters), heat maps (architecture probabilities per layer over
// time, DA pair probabilities at the end) and tables. No scripts, no external files.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../core/io.hpp"

namespace diffautoml::search {

namespace report_detail {

inline std::string escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '&': o += "&amp;"; break;
            case '"': o += "&quot;"; break;
            default: o += c;
        }
    }
    return o;
}

inline constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

/// A "nice" tick step for a range.
inline double tick_step(double range) {
    if (!(range > 0)) return 1;
    const double raw = range / 5, p = std::pow(10.0, std::floor(std::log10(raw))), r = raw / p;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
}

}  // namespace report_detail

/// One line of a chart: (x, y) points.
struct Series {
    std::string name;
    std::vector<std::pair<double, double>> points;
};

/// A line chart as SVG; `log_y` plots log10(y) with labels in the original units.
inline std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                                  bool log_y = false, int width = 520, int height = 300) {
    using namespace report_detail;
    // The plot keeps its size; the legend's margin grows with the longest series name.
    std::size_t longest = 0;
    for (const auto& s : series) longest = std::max(longest, s.name.size());
    const int left = 62, top = 28, bottom = 40, pw = width - left - 120, ph = height - top - bottom;
    const int right = std::max(120, 34 + static_cast<int>(6.6 * static_cast<double>(longest)));
    width = left + pw + right;
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    auto ty = [&](double y) { return log_y ? std::log10(std::max(y, 1e-300)) : y; };
    for (const auto& s : series)
        for (auto [x, y] : s.points) {
            if (!std::isfinite(y) || (log_y && y <= 0)) continue;
            x0 = std::min(x0, x);
            x1 = std::max(x1, x);
            y0 = std::min(y0, ty(y));
            y1 = std::max(y1, ty(y));
        }
    std::string svg = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
        "font-size=\"11\">\n<text x=\"{}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        width, height, left, escape(title));
    if (x0 > x1) return svg + "<text x=\"70\" y=\"80\">no data</text>\n</svg>\n";
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) {
        y0 -= 0.5;
        y1 += 0.5;
    }
    const double pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
    auto py = [&](double y) { return top + ph - (ty(y) - y0) / (y1 - y0) * ph; };
    auto py_raw = [&](double v) { return top + ph - (v - y0) / (y1 - y0) * ph; };
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n", left, top,
                       pw, ph);
    // Whole-number x (epochs) gets whole-number ticks.
    bool whole_x = true;
    for (const auto& s : series)
        for (auto [x, y] : s.points) whole_x = whole_x && x == std::floor(x);
    const double xs = whole_x ? std::max(1.0, tick_step(x1 - x0)) : tick_step(x1 - x0), ys = tick_step(y1 - y0);
    for (double v = std::ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs)
        svg += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#eee\"/><text x=\"{0:.1f}\" "
                           "y=\"{3}\" text-anchor=\"middle\">{4:g}</text>\n",
                           px(v), top, top + ph, top + ph + 14, v);
    // y ticks: a nice step on a linear axis; on a log axis 1, 2, 5 x 10^k (decades alone when the
    // range spans more than three), so the labels are round numbers.
    std::vector<double> yticks;
    if (!log_y) {
        for (double v = std::ceil(y0 / ys) * ys; v <= y1 + 1e-9; v += ys) yticks.push_back(v);
    } else {
        const bool decades = y1 - y0 > 3;
        for (double d = std::floor(y0); d <= std::ceil(y1); ++d)
            for (double m : {1.0, 2.0, 5.0}) {
                const double v = d + std::log10(m);
                if ((m == 1.0 || !decades) && v >= y0 && v <= y1) yticks.push_back(v);
            }
    }
    for (double v : yticks)
        svg += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/><text x=\"{3}\" "
                           "y=\"{2:.1f}\" text-anchor=\"end\" dominant-baseline=\"middle\">{4:.4g}</text>\n",
                           left, left + pw, py_raw(v), left - 4, log_y ? std::pow(10.0, v) : v);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + pw / 2, height - 6,
                       escape(x_label));
    for (std::size_t k = 0; k < series.size(); ++k) {
        const char* colour = kColours[k % 6];
        std::string pts;
        for (auto [x, y] : series[k].points)
            if (std::isfinite(y) && (!log_y || y > 0)) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
        svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", pts, colour);
        for (auto [x, y] : series[k].points)
            if (std::isfinite(y) && (!log_y || y > 0) && series[k].points.size() <= 60)
                svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", px(x), py(y), colour);
        svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" "
                           "dominant-baseline=\"middle\">{}</text>\n",
                           left + pw + 10, top + 10 + 16 * static_cast<int>(k), colour, left + pw + 26,
                           top + 12 + 16 * static_cast<int>(k), escape(series[k].name));
    }
    return svg + "</svg>\n";
}

/// A heat map of values in [0, 1] (white to dark blue), one labelled row per entry of `rows`.
inline std::string svg_heatmap(const std::string& title, const std::vector<std::string>& row_labels,
                               const std::vector<std::string>& col_labels, const std::vector<std::vector<double>>& rows,
                               int cell_w = 0, int cell_h = 14) {
    using namespace report_detail;
    // Margins from the longest labels (about 6.5 px a character at font size 10); column labels
    // wider than their cell are written at -60 degrees.
    auto longest = [](const std::vector<std::string>& v) {
        std::size_t n = 0;
        for (const auto& s : v) n = std::max(n, s.size());
        return static_cast<int>(n);
    };
    const int left = std::max(60, static_cast<int>(6.5 * longest(row_labels)) + 12), top = 30;
    const std::size_t ncols = rows.empty() ? 0 : rows.front().size();
    if (cell_w == 0) cell_w = std::clamp(static_cast<int>(600 / std::max<std::size_t>(1, ncols)), 4, 28);
    const bool slanted = 6.5 * longest(col_labels) > cell_w;
    const int label_h = slanted ? static_cast<int>(6.5 * 0.87 * longest(col_labels)) + 16 : 20;
    const int width = left + static_cast<int>(ncols) * cell_w + 70,
              height = top + static_cast<int>(rows.size()) * cell_h + label_h + 20;
    std::string svg = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
        "font-size=\"10\">\n<text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        width, height, escape(title));
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const int y = top + static_cast<int>(r) * cell_h;
        if (r < row_labels.size())
            svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\n",
                               left - 4, y + cell_h / 2, escape(row_labels[r]));
        for (std::size_t c = 0; c < rows[r].size(); ++c) {
            const double v = std::clamp(rows[r][c], 0.0, 1.0);
            const int shade = static_cast<int>(255 - 200 * v), blue = static_cast<int>(255 - 100 * v);
            svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"rgb({},{},{})\"><title>{}: "
                               "{:.3f}</title></rect>\n",
                               left + static_cast<int>(c) * cell_w, y, cell_w, cell_h, shade, shade, blue,
                               escape(r < row_labels.size() ? row_labels[r] : ""), rows[r][c]);
        }
    }
    const int bottom = top + static_cast<int>(rows.size()) * cell_h;
    for (std::size_t c = 0; c < col_labels.size() && c < ncols; ++c)
        if (ncols <= 30 || c % ((ncols + 29) / 30) == 0)
        {
            const int x = left + static_cast<int>(c) * cell_w + cell_w / 2;
            if (slanted)
                svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" transform=\"rotate(-60 {} {})\">{}</text>\n",
                                   x, bottom + 8, x, bottom + 8, escape(col_labels[c]));
            else
                svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x, bottom + 12,
                                   escape(col_labels[c]));
        }
    return svg + "</svg>\n";
}

/// The report: result summary, curves, heat maps, the learned DA policy and the per-epoch table.
inline std::string html_report(const std::vector<nlohmann::json>& log, const nlohmann::json& result) {
    using namespace report_detail;
    // After RunOptions::join_validation the validation images are trained on: those epochs go
    // into a series of their own instead of continuing the held-out curve.
    std::vector<Series> acc{{"train", {}}, {"validation", {}}}, loss{{"train", {}}, {"validation", {}}};
    std::vector<Series> hyper;
    const bool joined =
        std::any_of(log.begin(), log.end(), [](const nlohmann::json& r) { return r.value("val_in_training", false); });
    if (joined) {
        acc.push_back({"validation (trained on)", {}});
        loss.push_back({"validation (trained on)", {}});
    }
    for (const auto& r : log) {
        const double e = r.value("epoch", 0.0);
        const std::size_t v = r.value("val_in_training", false) ? 2 : 1;
        acc[0].points.emplace_back(e, r.value("train_accuracy", NAN));
        acc[v].points.emplace_back(e, r.value("val_accuracy", NAN));
        loss[0].points.emplace_back(e, r.value("train_loss", NAN));
        loss[v].points.emplace_back(e, r.value("val_loss", NAN));
        if (r.contains("hyperparameters"))
            for (auto it = r["hyperparameters"].begin(); it != r["hyperparameters"].end(); ++it) {
                auto s = std::find_if(hyper.begin(), hyper.end(), [&](const Series& x) { return x.name == it.key(); });
                if (s == hyper.end()) {
                    hyper.push_back({it.key(), {}});
                    s = hyper.end() - 1;
                }
                s->points.emplace_back(e, it.value().get<double>());
            }
    }
    auto number = [&](const char* key) {
        return result.contains(key) && result[key].is_number() ? result[key].template get<double>() : NAN;
    };
    const double test = number("test_accuracy"), val = number("val_accuracy");
    if (std::isfinite(test)) acc.push_back({"test (final)", {{log.empty() ? 0.0 : log.back().value("epoch", 0.0), test}}});

    std::string h =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>diffautoml joint search</title>\n<style>body{font-"
        "family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}.l{text-align:left}"
        "figure{display:inline-block;margin:0 1em 1em 0}</style></head><body>\n<h1>diffautoml joint search</h1>\n";
    h += "<table>\n";
    auto row = [&](const std::string& k, const std::string& v) {
        h += fmt::format("<tr><th class=\"l\">{}</th><td class=\"l\">{}</td></tr>\n", escape(k), escape(v));
    };
    if (std::isfinite(test)) row("test accuracy", fmt::format("{:.4f}", test));
    if (std::isfinite(val)) row("validation accuracy (held out)", fmt::format("{:.4f}", val));
    if (result.value("run", "") == "choice") row("run", "a choice run: the test set was not read (docs/protocol.md)");
    if (result.contains("test_accuracy_last") && result["test_accuracy_last"].is_number())
        row("test accuracy of the last weights",
            fmt::format("{:.4f} (the model averages the weights of {} epoch ends)",
                        result["test_accuracy_last"].get<double>(), result.value("averaged_weights", 0)));
    if (result.contains("wall_seconds")) row("wall time", fmt::format("{:.1f} min", result["wall_seconds"].get<double>() / 60));
    if (result.contains("search_cost_cpu_minutes"))
        row("search cost", fmt::format("{:.1f} CPU minutes", result["search_cost_cpu_minutes"].get<double>()));
    if (result.contains("architecture")) {
        std::string a;
        for (const auto& x : result["architecture"]) a += (a.empty() ? "" : ", ") + x.get<std::string>();
        row("architecture", a);
    }
    if (result.contains("macs")) row("MACs per image", fmt::format("{:.2f} M", result["macs"].get<double>() / 1e6));
    if (result.contains("hyperparameters"))
        for (auto it = result["hyperparameters"].begin(); it != result["hyperparameters"].end(); ++it)
            row("final " + it.key(), fmt::format("{:.5g}", it.value().get<double>()));
    // The epochs that ran (a time budget ends a run before its cap), then the cap.
    if (!log.empty()) row("epochs run", fmt::format("{}", log.size()));
    if (result.contains("config"))
        for (const char* k : {"space", "da", "nas", "hpo", "epochs", "seed"})
            if (result["config"].contains(k))
                row(std::string(k) == "epochs" ? "epoch cap" : k, result["config"][k].dump());
    h += "</table>\n<h2>Training</h2>\n";
    h += "<figure>" + svg_line_chart("Accuracy", "epoch", acc) + "</figure>\n";
    h += "<figure>" + svg_line_chart("Loss", "epoch", loss) + "</figure>\n";
    if (!hyper.empty())
        h += "<figure>" + svg_line_chart("Hyperparameters (log scale)", "epoch", hyper, true) +
             "<figcaption>Values at the end of each epoch. With a learned learning rate (hypergradient policies) the "
             "rate the weights use is lr times the warm-up and cosine factor; a fixed schedule shows the rate "
             "itself.</figcaption></figure>\n";

    // Architecture probabilities: one row per (decision, choice), one column per epoch.
    if (!log.empty() && log.back().contains("architecture_probabilities")) {
        std::vector<std::string> labels, cols;
        std::vector<std::vector<double>> cells;
        const auto& last = log.back()["architecture_probabilities"];
        const auto& derived = log.back().value("derived", nlohmann::json::array());
        std::size_t d = 0;
        for (auto it = last.begin(); it != last.end(); ++it, ++d) {
            for (std::size_t k = 0; k < it.value().size(); ++k) {
                labels.push_back(fmt::format("{} #{}{}", it.key(), k,
                                             d < derived.size() && k == 0 ? " (" + derived[d].get<std::string>() + ")" : ""));
                std::vector<double> r;
                for (const auto& rec : log) r.push_back(rec["architecture_probabilities"][it.key()][k].get<double>());
                cells.push_back(r);
            }
        }
        for (const auto& rec : log) cols.push_back(std::to_string(rec.value("epoch", 0)));
        h += "<h2>Architecture</h2>\n<p>Probability of each choice of each searched layer at the end of every epoch "
             "(darker is more likely; the label of a layer's first row names its final choice).</p>\n";
        h += "<figure>" + svg_heatmap("Architecture probabilities per layer and epoch", labels, cols, cells) + "</figure>\n";
    }
    // DA: the pair distribution at the end, as a K x K grid (first op by row, second by column).
    if (!log.empty() && log.back().contains("da_probabilities")) {
        const auto p = log.back()["da_probabilities"].get<std::vector<double>>();
        const auto K = static_cast<std::size_t>(std::llround(std::sqrt(static_cast<double>(p.size()))));
        if (K * K == p.size() && K > 0) {
            const double mx = *std::max_element(p.begin(), p.end());
            std::vector<std::vector<double>> grid(K, std::vector<double>(K));
            for (std::size_t i = 0; i < K; ++i)
                for (std::size_t j = 0; j < K; ++j) grid[i][j] = mx > 0 ? p[i * K + j] / mx : 0;
            std::vector<std::string> names(K);
            for (std::size_t i = 0; i < K; ++i) names[i] = "op " + std::to_string(i + 1);
            if (log.back().contains("da_op_names")) names = log.back()["da_op_names"].get<std::vector<std::string>>();
            h += "<h2>Data augmentation</h2>\n<p>Final probability of each ordered op pair (row: first op, column: "
                 "second op), relative to the most likely pair.</p>\n";
            h += "<figure>" + svg_heatmap("DA pair probabilities (relative)", names, names, grid, 16, 16) + "</figure>\n";
        }
    }
    if (result.contains("da_policy") && !result["da_policy"].empty()) {
        h += "<h3>Most likely augmentation pairs</h3>\n<table><tr><th>rank</th><th>probability</th><th class=\"l\">ops "
             "(magnitude, apply probability)</th></tr>\n";
        int rank = 1;
        for (const auto& e : result["da_policy"]) {
            std::string ops;
            for (std::size_t j = 0; j < e["ops"].size(); ++j)
                ops += fmt::format("{}{} ({:.2f}, {:.2f})", j ? " then " : "", e["ops"][j].get<std::string>(),
                                   e["magnitudes"][j].get<double>(), e["apply_probabilities"][j].get<double>());
            h += fmt::format("<tr><td>{}</td><td>{:.4f}</td><td class=\"l\">{}</td></tr>\n", rank++,
                             e["probability"].get<double>(), escape(ops));
        }
        h += "</table>\n";
    }
    h += "<h2>Epochs</h2>\n<table><tr><th>epoch</th><th>phase</th><th>train loss</th><th>train acc.</th><th>val "
         "loss</th><th>val acc.</th><th>minutes</th></tr>\n";
    for (const auto& r : log)
        h += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.4f}</td><td>{:.4f}</td><td>{:.4f}</td><td>{:.4f}</td><td>{:."
                         "1f}</td></tr>\n",
                         r.value("epoch", 0),
                         escape(r.value("phase", std::string()) + (r.value("val_in_training", false) ? " (+val)" : "")),
                         r.value("train_loss", NAN),
                         r.value("train_accuracy", NAN), r.value("val_loss", NAN), r.value("val_accuracy", NAN),
                         r.value("wall_seconds", 0.0) / 60);
    h += "</table>\n</body></html>\n";
    return h;
}

}  // namespace diffautoml::search
