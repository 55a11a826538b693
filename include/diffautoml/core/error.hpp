#pragma once
// Typed exceptions. Every message names the operation, what was expected, what was found, and
// what to do about it. Library code never calls exit() or abort().
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace diffautoml {

class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
/// Tensor shapes that do not fit an operation.
class shape_error : public error {
public:
    using error::error;
};
/// A value out of its allowed range, or NaN/Inf where a finite number is required.
class value_error : public error {
public:
    using error::error;
};
/// A file that cannot be opened, read or written.
class io_error : public error {
public:
    using error::error;
};
/// A file that was read but whose content is wrong (bad magic, truncated, checksum, mismatch).
class format_error : public io_error {
public:
    using io_error::io_error;
};
/// Misuse of the autograd tape (backward twice, backward on a non-scalar without a seed, ...).
class autograd_error : public error {
public:
    using error::error;
};
/// A CUDA runtime/driver call failed (used by the CUDA backend).
class cuda_error : public error {
public:
    using error::error;
};
/// A cuDNN call failed; the message names the call and the cudnnStatus_t.
class cudnn_error : public cuda_error {
public:
    using cuda_error::cuda_error;
};
/// A cuBLAS call failed; the message names the call and the cublasStatus_t.
class cublas_error : public cuda_error {
public:
    using cuda_error::cuda_error;
};

}  // namespace diffautoml

namespace diffautoml::detail {
/// fmt::format with the format string checked at run time.
template <class... A>
std::string format_runtime(fmt::string_view f, const A&... args) {
    return fmt::vformat(f, fmt::make_format_args(args...));
}
}  // namespace diffautoml::detail

/// Formats an error message. nvcc's front end cannot evaluate fmt's compile-time format-string
/// checks (consteval), so code compiled by nvcc checks the format string at run time instead.
#if defined(__CUDACC__)
#define DAM_FORMAT(...) ::diffautoml::detail::format_runtime(__VA_ARGS__)
#else
#define DAM_FORMAT(...) fmt::format(__VA_ARGS__)
#endif

/// Always-on precondition check: throws `Exc` with an fmt-formatted message.
#define DAM_CHECK(cond, Exc, ...)                         \
    do {                                                  \
        if (!(cond)) throw Exc(DAM_FORMAT(__VA_ARGS__));  \
    } while (0)

/// Debug-only assertion for hot loops.
#ifndef NDEBUG
#include <cassert>
#define DAM_DEBUG_ASSERT(cond) assert(cond)
#else
#define DAM_DEBUG_ASSERT(cond) ((void)0)
#endif

/// Functions whose arithmetic runs on both the host and the device.
#if defined(__CUDACC__)
#define DAM_HOST_DEVICE __host__ __device__
#else
#define DAM_HOST_DEVICE
#endif
