#pragma once
// A small fixed-capacity shape: no heap allocation per tensor.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "error.hpp"

namespace diffautoml {

class Shape {
public:
    static constexpr int max_rank = 6;

    Shape() = default;
    Shape(std::initializer_list<std::int64_t> dims) {
        DAM_CHECK(dims.size() <= max_rank, shape_error, "Shape: rank {} exceeds the maximum of {}",
                  dims.size(), max_rank);
        for (auto d : dims) push_back(d);
    }
    template <class It>
    Shape(It first, It last) {
        for (; first != last; ++first) push_back(static_cast<std::int64_t>(*first));
    }

    void push_back(std::int64_t d) {
        DAM_CHECK(rank_ < max_rank, shape_error, "Shape: rank exceeds the maximum of {}", max_rank);
        // -1 is allowed as the "infer this dimension" marker of reshape; tensors reject it.
        DAM_CHECK(d >= -1, shape_error, "Shape: dimension {} is negative ({})", rank_, d);
        dims_[rank_++] = d;
    }
    int rank() const { return rank_; }
    std::int64_t operator[](int i) const { return dims_[i]; }
    std::int64_t& operator[](int i) { return dims_[i]; }
    /// Dimension i, counting from the end when i is negative.
    std::int64_t dim(int i) const {
        int j = i < 0 ? rank_ + i : i;
        DAM_CHECK(j >= 0 && j < rank_, shape_error, "Shape{}: axis {} out of range", str(), i);
        return dims_[j];
    }
    std::int64_t numel() const {
        std::int64_t n = 1;
        for (int i = 0; i < rank_; ++i) n *= dims_[i];
        return n;
    }
    const std::int64_t* begin() const { return dims_.data(); }
    const std::int64_t* end() const { return dims_.data() + rank_; }

    friend bool operator==(const Shape& a, const Shape& b) {
        if (a.rank_ != b.rank_) return false;
        for (int i = 0; i < a.rank_; ++i)
            if (a.dims_[i] != b.dims_[i]) return false;
        return true;
    }
    std::string str() const {
        std::string s = "(";
        for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
        return s + (rank_ == 1 ? ",)" : ")");
    }

private:
    std::array<std::int64_t, max_rank> dims_{};
    int rank_ = 0;
};

}  // namespace diffautoml

/// \cond  fmt's formatter: a specialisation of a foreign template, not part of the API reference.
template <>
struct fmt::formatter<diffautoml::Shape> : fmt::formatter<std::string> {
    auto format(const diffautoml::Shape& s, fmt::format_context& ctx) const {
        return fmt::formatter<std::string>::format(s.str(), ctx);
    }
};
/// \endcond
