#pragma once
// A caching allocator: freed tensor buffers go to a free list keyed by size and are handed out
// again, so a steady-state training step (same shapes every step) takes no memory from the
// system. The CUDA backend provides the same interface over cudaMalloc.
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "device.hpp"
#include "error.hpp"

namespace diffautoml {

struct AllocatorStats {
    std::size_t system_allocations = 0;  ///< buffers obtained from the system
    std::size_t cache_hits = 0;          ///< requests served from the free lists
    std::size_t bytes_in_use = 0;
    std::size_t bytes_cached = 0;        ///< held in free lists, ready for reuse
    std::size_t peak_bytes_in_use = 0;
};

/// Free lists keyed by size over a source of raw memory. Source provides `alignment`,
/// `allocate(bytes)` (nullptr on failure), `free(p)` and `[[noreturn]] fail(bytes)` (the error
/// when memory stays short after the cache was given back). The CPU and CUDA allocators are this
/// over aligned_alloc and cudaMalloc.
template <class Source>
class BasicCachingAllocator {
public:
    static constexpr std::size_t alignment = Source::alignment;

    void* allocate(std::size_t bytes) {
        const std::size_t size = round_up(bytes);
        std::lock_guard lock(mutex_);
        auto it = free_.find(size);
        if (it != free_.end() && !it->second.empty()) {
            void* p = it->second.back();
            it->second.pop_back();
            ++stats_.cache_hits;
            stats_.bytes_cached -= size;
            note_in_use(size);
            return p;
        }
        void* p = Source::allocate(size);
        if (!p) {
            release_locked();  // give cached memory back and retry once
            p = Source::allocate(size);
        }
        if (!p) Source::fail(size);
        ++stats_.system_allocations;
        note_in_use(size);
        return p;
    }

    void deallocate(void* p, std::size_t bytes) noexcept {
        if (!p) return;
        const std::size_t size = round_up(bytes);
        std::lock_guard lock(mutex_);
        stats_.bytes_in_use -= size;
        stats_.bytes_cached += size;
        try {
            free_[size].push_back(p);
        } catch (...) {
            stats_.bytes_cached -= size;
            Source::free(p);
        }
    }

    /// Returns every cached buffer to the system.
    void release_cache() {
        std::lock_guard lock(mutex_);
        release_locked();
    }

    AllocatorStats stats() const {
        std::lock_guard lock(mutex_);
        return stats_;
    }
    void reset_peak() {
        std::lock_guard lock(mutex_);
        stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }

private:
    static std::size_t round_up(std::size_t b) {
        b = b == 0 ? alignment : b;
        return (b + alignment - 1) / alignment * alignment;
    }
    void note_in_use(std::size_t size) {
        stats_.bytes_in_use += size;
        if (stats_.bytes_in_use > stats_.peak_bytes_in_use)
            stats_.peak_bytes_in_use = stats_.bytes_in_use;
    }
    void release_locked() {
        for (auto& [size, list] : free_)
            for (void* p : list) Source::free(p);
        free_.clear();
        stats_.bytes_cached = 0;
    }

    mutable std::mutex mutex_;
    std::unordered_map<std::size_t, std::vector<void*>> free_;
    AllocatorStats stats_;
};

/// Host memory, 64-byte aligned (a cache line; AVX-512 loads).
struct HostMemory {
    static constexpr std::size_t alignment = 64;
    static void* allocate(std::size_t bytes) { return std::aligned_alloc(alignment, bytes); }
    static void free(void* p) { std::free(p); }
    [[noreturn]] static void fail(std::size_t) { throw std::bad_alloc(); }
};

template <Device D>
class CachingAllocator;

template <>
class CachingAllocator<cpu> : public BasicCachingAllocator<HostMemory> {};

/// The process-wide allocator of a device. Never destroyed, so tensors with static storage
/// duration can still give their memory back at exit.
template <Device D>
CachingAllocator<D>& default_allocator() {
    static auto* a = new CachingAllocator<D>();
    return *a;
}

/// A reference-counted buffer owned through std::shared_ptr; returns itself to the cache.
template <Device D>
class Storage {
    static_assert(backend_included<D>,
                  "Tensor<T, D> / Var<T, D>: no backend of device D in this translation unit. For cuda, "
                  "#include <diffautoml/cuda/backend.hpp> (from cuda/include) after the library's headers and "
                  "link diffautoml::cuda_backend; see docs/design.md, 'Devices and the op front door'");

public:
    explicit Storage(std::size_t bytes) : bytes_(bytes), data_(default_allocator<D>().allocate(bytes)) {}
    ~Storage() { default_allocator<D>().deallocate(data_, bytes_); }
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    void* data() const { return data_; }
    std::size_t bytes() const { return bytes_; }

private:
    std::size_t bytes_;
    void* data_;
};

}  // namespace diffautoml
