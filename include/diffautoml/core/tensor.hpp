#pragma once
// Tensor<T, Device>: an N-d shape over contiguous storage. Views (reshape, batch slices) share
// the storage; copies are explicit (clone). Storage comes from the device's caching allocator.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

#include "allocator.hpp"
#include "device.hpp"
#include "error.hpp"
#include "parallel.hpp"
#include "rng.hpp"
#include "shape.hpp"

namespace diffautoml {

namespace backend_cpu {
// Memory primitives of the CPU device; the CUDA backend provides the same ones.
template <class T>
void fill_n(cpu, T* dst, std::int64_t n, T value) {
    std::fill(dst, dst + n, value);
}
template <class T>
void copy_n(cpu, T* dst, const T* src, std::int64_t n) {
    if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
}
/// dst (on the device) = src (host memory); on the CPU a copy.
template <class T>
void upload_n(cpu, T* dst, const T* src, std::int64_t n) {
    copy_n(cpu{}, dst, src, n);
}
/// dst (host memory) = src (on the device); on the CPU a copy.
template <class T>
void download_n(cpu, T* dst, const T* src, std::int64_t n) {
    copy_n(cpu{}, dst, src, n);
}
/// dst += src (gradient accumulation).
template <class T>
void add_n(cpu, T* dst, const T* src, std::int64_t n) {
    parallel_for(
        (n + 4095) / 4096,
        [&](std::int64_t b) {
            const std::int64_t e = std::min(n, (b + 1) * 4096);
            for (std::int64_t i = b * 4096; i < e; ++i) dst[i] += src[i];
        },
        8);
}
}  // namespace backend_cpu

template <class T, Device D = cpu>
class Tensor {
    static_assert(std::is_trivially_copyable_v<T>, "Tensor<T>: T must be a trivially copyable type");

public:
    using value_type = T;
    using device_type = D;

    Tensor() = default;
    /// Uninitialised storage of the given shape.
    explicit Tensor(const Shape& shape) : shape_(shape) {
        for (auto d : shape)
            DAM_CHECK(d >= 0, shape_error, "Tensor: shape {} has a negative dimension", shape);
        storage_ = std::make_shared<Storage<D>>(static_cast<std::size_t>(shape.numel()) * sizeof(T));
    }

    static Tensor empty(const Shape& shape) { return Tensor(shape); }
    static Tensor zeros(const Shape& shape) { return full(shape, T(0)); }
    static Tensor full(const Shape& shape, T value) {
        Tensor t(shape);
        t.fill(value);
        return t;
    }
    /// A tensor with a copy of the given host values (CPU only for now).
    static Tensor from(const Shape& shape, std::initializer_list<T> values) {
        DAM_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(), shape_error,
                  "Tensor::from: shape {} holds {} values but {} were given", shape, shape.numel(),
                  values.size());
        Tensor t(shape);
        std::copy(values.begin(), values.end(), t.data());
        return t;
    }

    bool defined() const { return storage_ != nullptr; }
    const Shape& shape() const { return shape_; }
    int rank() const { return shape_.rank(); }
    std::int64_t dim(int i) const { return shape_.dim(i); }
    std::int64_t numel() const { return shape_.numel(); }
    T* data() const { return storage_ ? static_cast<T*>(storage_->data()) + offset_ : nullptr; }
    /// True when both tensors view the same buffer.
    bool shares_storage_with(const Tensor& o) const { return storage_ == o.storage_; }

    /// Element access on the host (flat index), bounds-checked in debug builds.
    T& operator[](std::int64_t i) const {
        static_assert(std::is_same_v<D, cpu>, "Tensor::operator[] reads host memory: copy to cpu first");
        DAM_DEBUG_ASSERT(i >= 0 && i < numel());
        return data()[i];
    }
    /// The single value of a one-element tensor.
    T item() const {
        DAM_CHECK(numel() == 1, shape_error, "Tensor::item: needs one element, the shape is {}", shape_);
        return (*this)[0];
    }

    /// A view with another shape of the same size; one dimension may be -1 (inferred).
    Tensor reshape(Shape s) const {
        int infer = -1;
        std::int64_t known = 1;
        for (int i = 0; i < s.rank(); ++i) {
            if (s[i] == -1) {
                DAM_CHECK(infer < 0, shape_error, "reshape: more than one -1 in {}", s);
                infer = i;
            } else {
                known *= s[i];
            }
        }
        if (infer >= 0) {
            DAM_CHECK(known > 0 && numel() % known == 0, shape_error,
                      "reshape: cannot infer the -1 of {} from {} elements", s, numel());
            s[infer] = numel() / known;
        }
        DAM_CHECK(s.numel() == numel(), shape_error,
                  "reshape: {} holds {} elements, {} holds {}; the sizes must match", shape_, numel(),
                  s, s.numel());
        Tensor t = *this;
        t.shape_ = s;
        return t;
    }
    /// A view of rows [begin, end) along the first axis.
    Tensor slice_batch(std::int64_t begin, std::int64_t end) const {
        DAM_CHECK(rank() >= 1 && begin >= 0 && begin <= end && end <= dim(0), shape_error,
                  "slice_batch: [{}, {}) is not inside the first axis of {}", begin, end, shape_);
        const std::int64_t row = dim(0) ? numel() / dim(0) : 0;
        Tensor t = *this;
        t.shape_[0] = end - begin;
        t.offset_ += begin * row;
        return t;
    }

    Tensor clone() const {
        Tensor t(shape_);
        copy_n(D{}, t.data(), data(), numel());
        return t;
    }
    /// Copies the values of `src` (same number of elements) into this tensor's storage.
    void copy_from(const Tensor& src) const {
        DAM_CHECK(src.numel() == numel(), shape_error, "copy_from: {} into {}: sizes differ", src.shape(),
                  shape_);
        copy_n(D{}, data(), src.data(), numel());
    }
    void fill(T value) const { fill_n(D{}, data(), numel(), value); }
    void zero() const { fill(T(0)); }

private:
    Shape shape_;
    std::shared_ptr<Storage<D>> storage_;
    std::int64_t offset_ = 0;
};

// ---- random initialisation (host). The value of element i depends on (seed, stream, i) only. ----

template <class T>
void uniform_(const Tensor<T, cpu>& t, Generator& gen, double lo, double hi) {
    const PhiloxStream s = gen.next_stream();
    T* p = t.data();
    parallel_for(t.numel(), [&](std::int64_t i) { p[i] = static_cast<T>(lo + (hi - lo) * s.uniform_double(i)); },
                 1 << 14);
}
template <class T>
void normal_(const Tensor<T, cpu>& t, Generator& gen, double mean, double stddev) {
    const PhiloxStream s = gen.next_stream();
    T* p = t.data();
    parallel_for(t.numel(), [&](std::int64_t i) { p[i] = static_cast<T>(mean + stddev * s.normal(i)); }, 1 << 14);
}
namespace detail {
/// Fills a host tensor of t's shape with fill(host), then uploads it to t's device.
template <class T, Device D, class Fill>
void fill_on_host(const Tensor<T, D>& t, Fill&& fill) {
    Tensor<T, cpu> h(t.shape());
    fill(h);
    upload_n(D{}, t.data(), h.data(), t.numel());
}
}  // namespace detail
/// The values of t in host memory: t itself (shared storage) on the CPU, else a copy that waits
/// for the device's pending work. For reading results (losses, logits, small state) in code
/// written once for every device.
template <class T, Device D>
Tensor<T, cpu> on_host(const Tensor<T, D>& t) {
    if constexpr (std::is_same_v<D, cpu>) {
        return t;
    } else {
        Tensor<T, cpu> h;
        if (!t.defined()) return h;
        h = Tensor<T, cpu>(t.shape());
        download_n(D{}, h.data(), t.data(), t.numel());
        return h;
    }
}
/// The values of host tensor h on device D: h itself (shared storage) when D is the CPU, else an
/// upload in the current stream's order.
template <Device D, class T>
Tensor<T, D> on_device(const Tensor<T, cpu>& h) {
    if constexpr (std::is_same_v<D, cpu>) {
        return h;
    } else {
        Tensor<T, D> d;
        if (!h.defined()) return d;
        d = Tensor<T, D>(h.shape());
        upload_n(D{}, d.data(), h.data(), h.numel());
        return d;
    }
}
/// Copies host values into dst's storage in place (same number of elements), on any device.
template <class T, Device D>
void copy_from_host(const Tensor<T, D>& dst, const Tensor<T, cpu>& h) {
    DAM_CHECK(dst.numel() == h.numel(), shape_error, "copy_from_host: {} into {}: sizes differ", h.shape(), dst.shape());
    upload_n(D{}, dst.data(), h.data(), h.numel());
}
/// Calls write(p) with p a host pointer to room for t's elements, then makes them t's values: on
/// the CPU p is t's own storage; on a device, a host buffer uploaded afterwards. For code written
/// once for every device that reads values from a file or a byte stream.
template <class T, class Write>
void write_from_host(const Tensor<T, cpu>& t, Write&& write) {
    write(t.data());
}
template <class T, Device D, class Write>
    requires(!std::same_as<D, cpu>)
void write_from_host(const Tensor<T, D>& t, Write&& write) {
    Tensor<T, cpu> h(t.shape());
    write(h.data());
    copy_from_host(t, h);
}
/// dst = src's values (same number of elements): a copy on the device when both are on one
/// device, else through the host.
template <class T, Device D>
void copy_values(const Tensor<T, D>& dst, const Tensor<T, D>& src) {
    dst.copy_from(src);
}
template <class T, Device To, Device From>
    requires(!std::same_as<To, From>)
void copy_values(const Tensor<T, To>& dst, const Tensor<T, From>& src) {
    copy_from_host(dst, on_host(src));
}
/// On another device: the same numbers, drawn on the host and uploaded.
template <class T, Device D>
    requires(!std::same_as<D, cpu>)
void uniform_(const Tensor<T, D>& t, Generator& gen, double lo, double hi) {
    detail::fill_on_host(t, [&](const Tensor<T, cpu>& h) { uniform_(h, gen, lo, hi); });
}
template <class T, Device D>
    requires(!std::same_as<D, cpu>)
void normal_(const Tensor<T, D>& t, Generator& gen, double mean, double stddev) {
    detail::fill_on_host(t, [&](const Tensor<T, cpu>& h) { normal_(h, gen, mean, stddev); });
}
/// He/Kaiming normal initialisation for a ReLU network: std = gain / sqrt(fan_in), gain = sqrt(2).
template <class T, Device D>
void kaiming_normal_(const Tensor<T, D>& t, Generator& gen, std::int64_t fan_in, double gain = std::sqrt(2.0)) {
    DAM_CHECK(fan_in > 0, value_error, "kaiming_normal_: fan_in must be positive, got {}", fan_in);
    normal_(t, gen, 0.0, gain / std::sqrt(static_cast<double>(fan_in)));
}
/// Kaiming uniform as PyTorch's default for Linear/Conv: U(-b, b), b = gain * sqrt(3 / fan_in).
template <class T, Device D>
void kaiming_uniform_(const Tensor<T, D>& t, Generator& gen, std::int64_t fan_in, double gain = 1.0 / std::sqrt(3.0)) {
    DAM_CHECK(fan_in > 0, value_error, "kaiming_uniform_: fan_in must be positive, got {}", fan_in);
    const double b = gain * std::sqrt(3.0 / static_cast<double>(fan_in));
    uniform_(t, gen, -b, b);
}

/// Converts element type on the host (e.g. float results checked in double).
template <class To, class From>
Tensor<To, cpu> cast(const Tensor<From, cpu>& t) {
    Tensor<To, cpu> r(t.shape());
    for (std::int64_t i = 0; i < t.numel(); ++i) r[i] = static_cast<To>(t[i]);
    return r;
}

}  // namespace diffautoml
