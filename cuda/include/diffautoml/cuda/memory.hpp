#pragma once
// Device memory (host code, for g++ and nvcc alike): the caching allocator of the cuda device
// (the same interface as the CPU one in core/allocator.hpp, over cudaMalloc), so Tensor<T, cuda>
// has storage; host <-> device copies; the device count. The memory kernels (fill_n, add_n) are
// in memory.cuh.
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include <diffautoml/core/tensor.hpp>

#include "error.hpp"
#include "stream.hpp"

namespace diffautoml {

/// How many CUDA devices this process sees (0 when there is no driver or no GPU).
inline int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky "no device" status
        return 0;
    }
    return n;
}

/// Device memory from cudaMalloc (256-byte aligned by the runtime).
struct CudaMemory {
    static constexpr std::size_t alignment = 256;
    static void* allocate(std::size_t bytes) {
        void* p = nullptr;
        if (cudaMalloc(&p, bytes) != cudaSuccess) {
            (void)cudaGetLastError();  // clear the error; the allocator retries after releasing its cache
            return nullptr;
        }
        return p;
    }
    static void free(void* p) { (void)cudaFree(p); }
    [[noreturn]] static void fail(std::size_t bytes) {
        throw cuda_error(DAM_FORMAT("cudaMalloc of {} bytes failed (out of device memory) even after the caching "
                                     "allocator released its cache; use a smaller batch",
                                     bytes));
    }
};

template <>
class CachingAllocator<cuda> : public BasicCachingAllocator<CudaMemory> {};
template <>
inline constexpr bool backend_included<cuda> = true;

namespace backend_cuda {
/// Host -> device copy in the current stream's order. The host buffer may be reused on return:
/// from pageable memory the runtime stages the data before cudaMemcpyAsync returns.
inline void upload(void* dst, const void* src, std::size_t bytes) {
    if (bytes > 0) DAM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, current_stream()));
}
/// Device -> host copy after all earlier work of the current stream; waits for it.
inline void download(void* dst, const void* src, std::size_t bytes) {
    if (bytes == 0) return;
    DAM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, current_stream()));
    DAM_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}
/// dst (device) = src (host), in the current stream's order (the tensor layer's upload primitive).
template <class T>
void upload_n(cuda, T* dst, const T* src, std::int64_t n) {
    if (n > 0) upload(dst, src, static_cast<std::size_t>(n) * sizeof(T));
}
/// dst (host) = src (device), after all earlier work of the current stream (the tensor layer's
/// download primitive).
template <class T>
void download_n(cuda, T* dst, const T* src, std::int64_t n) {
    if (n > 0) download(dst, src, static_cast<std::size_t>(n) * sizeof(T));
}
}  // namespace backend_cuda

/// A device copy of a host tensor (same shape).
template <class T>
Tensor<T, cuda> to_device(const Tensor<T, cpu>& h) {
    Tensor<T, cuda> d(h.shape());
    backend_cuda::upload(d.data(), h.data(), static_cast<std::size_t>(h.numel()) * sizeof(T));
    return d;
}
/// A host copy of a device tensor (waits for the current stream).
template <class T>
Tensor<T, cpu> to_host(const Tensor<T, cuda>& d) {
    Tensor<T, cpu> h(d.shape());
    backend_cuda::download(h.data(), d.data(), static_cast<std::size_t>(d.numel()) * sizeof(T));
    return h;
}

/// A device buffer of n values (kernel scratch, labels, draws), freed with its owner.
template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    explicit DeviceArray(std::int64_t n) : n_(n) {
        if (n > 0) p_ = static_cast<T*>(default_allocator<cuda>().allocate(bytes()));
    }
    explicit DeviceArray(const std::vector<T>& host) : DeviceArray(static_cast<std::int64_t>(host.size())) {
        backend_cuda::upload(p_, host.data(), bytes());
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    DeviceArray(DeviceArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        if (this != &o) {
            default_allocator<cuda>().deallocate(p_, bytes());
            p_ = o.p_, n_ = o.n_;
            o.p_ = nullptr, o.n_ = 0;
        }
        return *this;
    }
    ~DeviceArray() { default_allocator<cuda>().deallocate(p_, bytes()); }

    T* data() const { return p_; }
    std::int64_t size() const { return n_; }
    std::vector<T> to_host() const {
        std::vector<T> h(static_cast<std::size_t>(n_));
        backend_cuda::download(h.data(), p_, bytes());
        return h;
    }

private:
    std::size_t bytes() const { return static_cast<std::size_t>(n_) * sizeof(T); }
    T* p_ = nullptr;
    std::int64_t n_ = 0;
};

}  // namespace diffautoml
