#pragma once
// Image classification datasets in memory, train/validation splits, and shuffled mini-batches.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "idx.hpp"

namespace diffautoml::data {

/// Images (N, C, H, W) as floats and integer labels in [0, classes).
/// Where a dataset came from. HPO refuses test data (hpo::hold_out), so hyperparameters can never
/// be tuned on the test set through the API.
enum class Split { unknown, train, test };

struct Dataset {
    Tensor<float, cpu> images;
    std::vector<std::int32_t> labels;
    std::int32_t classes = 0;
    Split split = Split::unknown;

    std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
    Shape image_shape() const { return {images.dim(1), images.dim(2), images.dim(3)}; }
};

struct IdxDatasetOptions {
    std::int64_t expected_height = 0;  ///< 0: any
    std::int64_t expected_width = 0;   ///< 0: any
    std::int32_t classes = 0;          ///< 0: inferred as max label + 1
    double scale = 1.0 / 255.0;        ///< byte -> float
    Split split = Split::unknown;      ///< mark training files Split::train to tune hyperparameters on them
};

/// Loads an MNIST-format pair of IDX files: images (N, H, W) and labels (N).
inline Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                const IdxDatasetOptions& opt = {}) {
    const IdxArray im = read_idx(images_path, 3, "an images file (N, H, W)");
    const IdxArray lb = read_idx(labels_path, 1, "a labels file (N)");
    DAM_CHECK(im.dims.size() == 3, format_error, "load_idx_dataset: '{}' must hold images (N, H, W) but has {} dimensions",
              images_path, im.dims.size());
    DAM_CHECK(lb.dims.size() == 1, format_error, "load_idx_dataset: '{}' must hold labels (N) but has {} dimensions",
              labels_path, lb.dims.size());
    DAM_CHECK(im.dims[0] == lb.dims[0], format_error,
              "load_idx_dataset: '{}' holds {} images but '{}' holds {} labels; the files do not belong together",
              images_path, im.dims[0], labels_path, lb.dims[0]);
    DAM_CHECK((opt.expected_height == 0 || im.dims[1] == opt.expected_height) &&
                  (opt.expected_width == 0 || im.dims[2] == opt.expected_width),
              format_error, "load_idx_dataset: '{}' holds {}x{} images but {}x{} were expected", images_path, im.dims[1],
              im.dims[2], opt.expected_height, opt.expected_width);
    Dataset d;
    d.images = Tensor<float, cpu>(Shape{im.dims[0], 1, im.dims[1], im.dims[2]});
    for (std::size_t i = 0; i < im.values.size(); ++i)
        d.images[static_cast<std::int64_t>(i)] = static_cast<float>(im.values[i] * opt.scale);
    std::int32_t max_label = -1;
    d.labels.resize(lb.values.size());
    for (std::size_t i = 0; i < lb.values.size(); ++i) {
        d.labels[i] = lb.values[i];
        max_label = std::max(max_label, d.labels[i]);
        DAM_CHECK(opt.classes == 0 || d.labels[i] < opt.classes, format_error,
                  "load_idx_dataset: '{}' sample {} has label {}, outside [0, {}); pass the right number of classes",
                  labels_path, i, d.labels[i], opt.classes);
    }
    d.classes = opt.classes ? opt.classes : max_label + 1;
    d.split = opt.split;
    return d;
}

/// Per-dataset mean and standard deviation of all pixel values.
inline std::pair<double, double> pixel_stats(const Dataset& d) {
    double s = 0, s2 = 0;
    const auto n = d.images.numel();
    for (std::int64_t i = 0; i < n; ++i) {
        s += d.images[i];
        s2 += static_cast<double>(d.images[i]) * d.images[i];
    }
    const double mean = s / static_cast<double>(n);
    return {mean, std::sqrt(std::max(0.0, s2 / static_cast<double>(n) - mean * mean))};
}

/// Refuses a dataset whose images hold NaN or Inf (e.g. from a division by a zero deviation in the
/// user's preprocessing): `what` names it in the message. A NaN pixel would otherwise surface
/// steps later as a diverged search, with the cause lost.
inline void check_finite(const Dataset& d, const char* what) {
    const float* p = d.images.data();
    const std::int64_t n = d.images.numel();
    for (std::int64_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i])) {
            const std::int64_t per = n / std::max<std::int64_t>(d.size(), 1);
            throw value_error(fmt::format("{}: image {} holds a non-finite value ({}) at pixel {}; clean the data or "
                                          "check its normalisation (a zero standard deviation?)",
                                          what, per > 0 ? i / per : 0, p[i], per > 0 ? i % per : i));
        }
}

/// x <- (x - mean) / std, in place.
inline void normalize(Dataset& d, double mean, double stddev) {
    DAM_CHECK(stddev > 0 && std::isfinite(mean), value_error, "normalize: std must be > 0 (got {}) and mean finite ({})",
              stddev, mean);
    float* p = d.images.data();
    const float m = static_cast<float>(mean), inv = static_cast<float>(1.0 / stddev);
    parallel_for(d.images.numel(), [&](std::int64_t i) { p[i] = (p[i] - m) * inv; }, 1 << 16);
}

/// Fashion-MNIST from a folder of the four standard (gzipped) IDX files, normalised with the
/// statistics of its training set (mean 0.2860, std 0.3530, as the PyTorch peer does).
inline constexpr double fashion_mnist_mean = 0.2860, fashion_mnist_std = 0.3530;
inline Dataset load_fashion_mnist(const std::string& dir, bool train) {
    const std::string p = dir + "/" + (train ? "train" : "t10k");
    Dataset d = load_idx_dataset(p + "-images-idx3-ubyte.gz", p + "-labels-idx1-ubyte.gz", {28, 28, 10});
    normalize(d, fashion_mnist_mean, fashion_mnist_std);
    d.split = train ? Split::train : Split::test;
    return d;
}

/// A uniformly random permutation of [0, n) from a Philox stream (Fisher-Yates).
inline std::vector<std::int64_t> permutation(std::int64_t n, const PhiloxStream& s) {
    std::vector<std::int64_t> p(static_cast<std::size_t>(n));
    std::iota(p.begin(), p.end(), std::int64_t{0});
    for (std::int64_t i = n - 1; i > 0; --i) {
        const std::uint64_t r = (static_cast<std::uint64_t>(s.word(2 * static_cast<std::uint64_t>(i))) << 32) |
                                s.word(2 * static_cast<std::uint64_t>(i) + 1);
        std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(r % static_cast<std::uint64_t>(i + 1))]);
    }
    return p;
}

/// The samples at the given indices, copied.
inline Dataset subset(const Dataset& d, const std::vector<std::int64_t>& idx) {
    Dataset r;
    const Shape s = d.image_shape();
    const std::int64_t per = s.numel();
    r.images = Tensor<float, cpu>(Shape{static_cast<std::int64_t>(idx.size()), s[0], s[1], s[2]});
    r.classes = d.classes;
    r.split = d.split;
    r.labels.reserve(idx.size());
    for (std::size_t k = 0; k < idx.size(); ++k) {
        DAM_CHECK(idx[k] >= 0 && idx[k] < d.size(), value_error, "subset: index {} outside [0, {})", idx[k], d.size());
        std::copy(d.images.data() + idx[k] * per, d.images.data() + (idx[k] + 1) * per, r.images.data() + static_cast<std::int64_t>(k) * per);
        r.labels.push_back(d.labels[static_cast<std::size_t>(idx[k])]);
    }
    return r;
}

/// A seeded random split of a training set into (train, validation) with `val_size` samples held out.
inline std::pair<Dataset, Dataset> split_train_val(const Dataset& d, std::int64_t val_size, std::uint64_t seed) {
    DAM_CHECK(val_size >= 0 && val_size < d.size(), value_error,
              "split_train_val: validation size {} must be in [0, {}) for a dataset of {} samples", val_size, d.size(),
              d.size());
    const auto p = permutation(d.size(), PhiloxStream{seed, 0x5eed5017});
    std::vector<std::int64_t> tr(p.begin() + val_size, p.end()), va(p.begin(), p.begin() + val_size);
    std::sort(tr.begin(), tr.end());
    std::sort(va.begin(), va.end());
    return {subset(d, tr), subset(d, va)};
}

/// A seeded class-balanced subset of `n` samples: n / classes of each class (the first n % classes
/// classes in a seeded order get one more), each class's samples drawn without replacement, in
/// dataset order. The reduced-data protocol trains on one (AutoAugment searched on 4,000 images of
/// CIFAR-10). A class with too few samples for its share is an error that names it.
inline Dataset balanced_subset(const Dataset& d, std::int64_t n, std::uint64_t seed) {
    DAM_CHECK(d.classes >= 1, value_error, "balanced_subset: the dataset has no classes");
    DAM_CHECK(n >= d.classes && n <= d.size(), value_error,
              "balanced_subset: a subset of {} must hold at least one image of each of the {} classes and at most "
              "the {} images of the dataset",
              n, d.classes, d.size());
    std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(d.classes));
    for (std::int64_t i = 0; i < d.size(); ++i) {
        const auto c = d.labels[static_cast<std::size_t>(i)];
        DAM_CHECK(c >= 0 && c < d.classes, value_error, "balanced_subset: sample {} has label {}, outside [0, {})", i, c,
                  d.classes);
        by_class[static_cast<std::size_t>(c)].push_back(i);
    }
    const auto extra_order = permutation(d.classes, PhiloxStream{seed, 0xba1a0ce0});
    std::vector<std::int64_t> idx;
    idx.reserve(static_cast<std::size_t>(n));
    for (std::int64_t k = 0; k < d.classes; ++k) {
        const auto c = static_cast<std::size_t>(extra_order[static_cast<std::size_t>(k)]);
        const std::int64_t want = n / d.classes + (k < n % d.classes ? 1 : 0);
        const auto have = static_cast<std::int64_t>(by_class[c].size());
        DAM_CHECK(have >= want, value_error,
                  "balanced_subset: class {} has {} samples, too few for its share of {} in a subset of {}; ask for "
                  "at most {} images",
                  c, have, want, n, have * d.classes);
        const auto p = permutation(have, PhiloxStream{seed, 0xc1a55000 + c});
        for (std::int64_t j = 0; j < want; ++j) idx.push_back(by_class[c][static_cast<std::size_t>(p[static_cast<std::size_t>(j)])]);
    }
    std::sort(idx.begin(), idx.end());
    return subset(d, idx);
}

/// `a` followed by `b` (the same image shape and number of classes); the split is a's. JointSearch
/// uses it to give the held-out validation slice back to training at the end.
inline Dataset concatenate(const Dataset& a, const Dataset& b) {
    DAM_CHECK(a.size() > 0 && b.size() > 0 && a.image_shape() == b.image_shape() && a.classes == b.classes, value_error,
              "concatenate: the datasets must be non-empty with equal image shapes and classes; got {} images {} "
              "({} classes) and {} images {} ({} classes)",
              a.size(), a.image_shape().str(), a.classes, b.size(), b.image_shape().str(), b.classes);
    const Shape s = a.image_shape();
    Dataset r;
    r.images = Tensor<float, cpu>(Shape{a.size() + b.size(), s[0], s[1], s[2]});
    std::copy(a.images.data(), a.images.data() + a.images.numel(), r.images.data());
    std::copy(b.images.data(), b.images.data() + b.images.numel(), r.images.data() + a.images.numel());
    r.labels = a.labels;
    r.labels.insert(r.labels.end(), b.labels.begin(), b.labels.end());
    r.classes = a.classes;
    r.split = a.split;
    return r;
}

/// One mini-batch: images (B, C, H, W) and labels (B).
struct Batch {
    Tensor<float, cpu> images;
    Tensor<std::int32_t, cpu> labels;
};

/// Mini-batches in a fresh seeded order each epoch (or in file order when shuffle is off).
class BatchLoader {
public:
    BatchLoader(const Dataset& d, std::int64_t batch_size, bool shuffle, std::uint64_t seed, bool drop_last = false)
        : d_(&d), batch_(batch_size), shuffle_(shuffle), seed_(seed), drop_last_(drop_last) {
        DAM_CHECK(batch_size >= 1, value_error, "BatchLoader: batch size must be >= 1, got {}", batch_size);
        DAM_CHECK(d.size() > 0, value_error, "BatchLoader: the dataset is empty");
        start_epoch(0);
    }
    /// Resets the order for `epoch` (the order depends only on seed and epoch).
    void start_epoch(std::int64_t epoch) {
        order_ = shuffle_ ? permutation(d_->size(), PhiloxStream{seed_, static_cast<std::uint64_t>(epoch) + 1})
                          : permutation_identity();
        pos_ = 0;
        epoch_ = epoch;
    }
    /// The epoch started last and the number of samples of it handed out so far.
    std::int64_t epoch() const { return epoch_; }
    std::int64_t position() const { return pos_; }
    /// Continues `epoch` after `position` samples (resuming from a checkpoint).
    void seek(std::int64_t epoch, std::int64_t position) {
        DAM_CHECK(position >= 0 && position <= d_->size(), value_error, "BatchLoader::seek: position {} outside [0, {}]",
                  position, d_->size());
        start_epoch(epoch);
        pos_ = position;
    }
    std::int64_t batches_per_epoch() const {
        return drop_last_ ? d_->size() / batch_ : (d_->size() + batch_ - 1) / batch_;
    }
    bool has_next() const {
        const std::int64_t left = d_->size() - pos_;
        return drop_last_ ? left >= batch_ : left > 0;
    }
    Batch next() {
        DAM_CHECK(has_next(), value_error, "BatchLoader::next: the epoch is over; call start_epoch()");
        const std::int64_t b = std::min(batch_, d_->size() - pos_);
        const Shape s = d_->image_shape();
        const std::int64_t per = s.numel();
        Batch out{Tensor<float, cpu>(Shape{b, s[0], s[1], s[2]}), Tensor<std::int32_t, cpu>(Shape{b})};
        for (std::int64_t k = 0; k < b; ++k) {
            const std::int64_t i = order_[static_cast<std::size_t>(pos_ + k)];
            std::copy(d_->images.data() + i * per, d_->images.data() + (i + 1) * per, out.images.data() + k * per);
            out.labels[k] = d_->labels[static_cast<std::size_t>(i)];
        }
        pos_ += b;
        return out;
    }

private:
    std::vector<std::int64_t> permutation_identity() const {
        std::vector<std::int64_t> p(static_cast<std::size_t>(d_->size()));
        std::iota(p.begin(), p.end(), std::int64_t{0});
        return p;
    }
    const Dataset* d_;
    std::int64_t batch_;
    bool shuffle_;
    std::uint64_t seed_;
    bool drop_last_;
    std::vector<std::int64_t> order_;
    std::int64_t pos_ = 0, epoch_ = 0;
};

}  // namespace diffautoml::data
