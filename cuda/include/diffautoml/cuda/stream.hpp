#pragma once
// Streams. Every kernel, copy and library call of the CUDA backend runs on the calling host
// thread's current stream: the legacy default stream unless a StreamGuard says otherwise. Work on
// one stream runs in issue order; the caching allocator hands a freed block to the next request
// at once, so memory freed on one stream must not be reused on another before that stream is
// synchronised (use one stream per host thread, as the trainers do).
#include <cuda_runtime.h>

#include "error.hpp"

namespace diffautoml {

/// An owned, non-blocking CUDA stream (does not synchronise with the legacy default stream).
class Stream {
public:
    Stream() { DAM_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    Stream(Stream&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
    ~Stream() {
        if (s_) (void)cudaStreamDestroy(s_);
    }
    cudaStream_t get() const { return s_; }
    /// Waits until everything issued to the stream has finished.
    void synchronize() const { DAM_CUDA_CHECK(cudaStreamSynchronize(s_)); }

private:
    cudaStream_t s_ = nullptr;
};

namespace backend_cuda {
namespace stream_detail {
inline cudaStream_t& slot() {
    thread_local cudaStream_t s = nullptr;  // nullptr: the legacy default stream
    return s;
}
}  // namespace stream_detail

/// The stream this host thread's CUDA work goes to.
inline cudaStream_t current_stream() { return stream_detail::slot(); }

/// Waits for this thread's current stream.
inline void synchronize() { DAM_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }
}  // namespace backend_cuda

/// Makes a stream current for this host thread for the guard's lifetime, then restores the one
/// that was current before.
class StreamGuard {
public:
    explicit StreamGuard(cudaStream_t s) : prev_(backend_cuda::stream_detail::slot()) { backend_cuda::stream_detail::slot() = s; }
    explicit StreamGuard(const Stream& s) : StreamGuard(s.get()) {}
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;
    ~StreamGuard() { backend_cuda::stream_detail::slot() = prev_; }

private:
    cudaStream_t prev_;
};

}  // namespace diffautoml
