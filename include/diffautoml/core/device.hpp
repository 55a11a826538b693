#pragma once
// Devices are policy types. Kernels live in one namespace per device and are found by
// argument-dependent lookup on the device tag, so a front-door op written once as
// `conv2d_forward(D{}, ...)` reaches `backend_cpu::` or `backend_cuda::` with the same signature.
#include <concepts>
#include <string_view>

namespace diffautoml {

namespace backend_cpu {
/// The host CPU: Eigen for dense math, OpenMP for threads.
struct cpu {
    static constexpr std::string_view name = "cpu";
};
}  // namespace backend_cpu

namespace backend_cuda {
/// An NVIDIA GPU. Declared here so that types can name it; its kernels come with the CUDA backend.
struct cuda {
    static constexpr std::string_view name = "cuda";
};
}  // namespace backend_cuda

using backend_cpu::cpu;
using backend_cuda::cuda;

/// Device: a tag type with a printable name. Kernels for it are declared in its own namespace.
template <class D>
concept Device = requires {
    { D::name } -> std::convertible_to<std::string_view>;
};

/// Whether device D's backend is part of this translation unit: true for the CPU, whose memory
/// primitives are in core/ and kernels in ops/cpu/; a device backend's memory header sets it for
/// its device (cuda/include/diffautoml/cuda/memory.hpp for cuda). Storage<D> asserts it, so that a
/// Tensor or Var on a device whose backend is missing stops the build with a message naming the
/// header instead of a failed lookup deep inside an op.
template <class D>
inline constexpr bool backend_included = false;
template <>
inline constexpr bool backend_included<cpu> = true;

namespace detail {
template <class P>
struct device_of {
    using type = cpu;
};
template <class P>
    requires requires { typename P::device_type; }
struct device_of<P> {
    using type = typename P::device_type;
};
}  // namespace detail
/// The device a policy or module type works on: its device_type, or the CPU when it names none.
template <class P>
using device_of_t = typename detail::device_of<P>::type;

/// Element types the differentiable ops support.
template <class T>
concept Real = std::same_as<T, float> || std::same_as<T, double>;

}  // namespace diffautoml
