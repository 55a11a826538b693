#pragma once
// Binary state of training components for checkpoints: tensors (possibly not yet allocated),
// scalars and vectors, written and read back in the same order by each component's
// save_state()/load_state(). Reading into an existing tensor copies in place, so parameters keep
// the storage their Var shares.
#include <cstring>
#include <string>
#include <vector>

#include "io.hpp"
#include "tensor.hpp"

namespace diffautoml {

template <class T, Device D>
void put_tensor(ByteWriter& w, const Tensor<T, D>& td) {
    w.put<std::uint8_t>(td.defined() ? 1 : 0);
    if (!td.defined()) return;
    const Tensor<T, cpu> t = on_host(td);  // a device tensor is copied to the host first
    w.put<std::uint32_t>(static_cast<std::uint32_t>(t.rank()));
    for (int i = 0; i < t.rank(); ++i) w.put<std::int64_t>(t.dim(i));
    w.put_bytes(t.data(), static_cast<std::size_t>(t.numel()) * sizeof(T));
}

/// Reads a tensor written by put_tensor into t: in place when t is allocated (the shapes must
/// match), else into a new tensor; an unallocated saved tensor leaves t unallocated.
template <class T, Device D>
void get_tensor(ByteReader& r, Tensor<T, D>& t, const std::string& what) {
    const auto defined = r.get<std::uint8_t>();
    DAM_CHECK(defined <= 1, format_error, "{}: corrupt state (bad tensor flag {})", what, int(defined));
    if (!defined) {
        t = Tensor<T, D>();
        return;
    }
    const auto rank = r.get<std::uint32_t>();
    DAM_CHECK(rank <= static_cast<std::uint32_t>(Shape::max_rank), format_error, "{}: corrupt state (tensor rank {})", what, rank);
    // The values must fit in what is left of the file: checked dimension by dimension, before any
    // allocation and before the product can overflow, so a corrupt header cannot reserve memory.
    Shape s;
    std::int64_t count = 1;
    for (std::uint32_t i = 0; i < rank; ++i) {
        const auto d = r.get<std::int64_t>();
        DAM_CHECK(d >= 0, format_error, "{}: corrupt state (dimension {})", what, d);
        s.push_back(d);
        DAM_CHECK(d == 0 || count <= static_cast<std::int64_t>(r.remaining() / sizeof(T)) / d, format_error,
                  "{}: corrupt state (a tensor of shape {}... needs more bytes than the {} left in the file)", what, s,
                  r.remaining());
        count *= d;
    }
    DAM_CHECK(count <= static_cast<std::int64_t>(r.remaining() / sizeof(T)), format_error,
              "{}: corrupt state (a tensor of shape {} needs more bytes than the {} left in the file)", what, s,
              r.remaining());
    if (t.defined()) {
        DAM_CHECK(t.shape() == s, format_error,
                  "{}: the saved tensor has shape {} but this run's has {}; the checkpoint belongs to another "
                  "configuration",
                  what, s, t.shape());
    } else {
        t = Tensor<T, D>(s);
    }
    const std::size_t bytes = static_cast<std::size_t>(s.numel()) * sizeof(T);
    write_from_host(t, [&](T* p) { r.copy_bytes(p, bytes); });
}

inline void put_doubles(ByteWriter& w, const std::vector<double>& v) {
    w.put<std::uint64_t>(v.size());
    w.put_bytes(v.data(), v.size() * sizeof(double));
}
/// Reads a vector written by put_doubles; its length must equal v's unless v is empty.
inline void get_doubles(ByteReader& r, std::vector<double>& v, const std::string& what) {
    const auto n = r.get<std::uint64_t>();
    DAM_CHECK(v.empty() || n == v.size(), format_error,
              "{}: the saved state has {} values but this run has {}; the checkpoint belongs to another configuration",
              what, n, v.size());
    DAM_CHECK(n <= r.remaining() / sizeof(double), format_error,
              "{}: corrupt state (a list of {} values needs more bytes than the {} left in the file)", what, n,
              r.remaining());
    v.resize(static_cast<std::size_t>(n));
    r.copy_bytes(v.data(), v.size() * sizeof(double));
}

inline void put_ints(ByteWriter& w, const std::vector<std::int64_t>& v) {
    w.put<std::uint64_t>(v.size());
    w.put_bytes(v.data(), v.size() * sizeof(std::int64_t));
}
inline void get_ints(ByteReader& r, std::vector<std::int64_t>& v, const std::string& what) {
    const auto n = r.get<std::uint64_t>();
    DAM_CHECK(v.empty() || n == v.size(), format_error,
              "{}: the saved state has {} entries but this run has {}; the checkpoint belongs to another configuration",
              what, n, v.size());
    DAM_CHECK(n <= r.remaining() / sizeof(std::int64_t), format_error,
              "{}: corrupt state (a list of {} entries needs more bytes than the {} left in the file)", what, n,
              r.remaining());
    v.resize(static_cast<std::size_t>(n));
    r.copy_bytes(v.data(), v.size() * sizeof(std::int64_t));
}

/// Saves (seed, offset) of a generator; loading checks the seed.
inline void put_generator(ByteWriter& w, const Generator& g) {
    w.put<std::uint64_t>(g.seed());
    w.put<std::uint64_t>(g.offset());
}
inline void get_generator(ByteReader& r, Generator& g, const std::string& what) {
    const auto seed = r.get<std::uint64_t>();
    DAM_CHECK(seed == g.seed(), format_error, "{}: the checkpoint was made with seed {}, this run uses {}; pass --seed {}",
              what, seed, g.seed(), seed);
    g.set_offset(r.get<std::uint64_t>());
}

}  // namespace diffautoml
