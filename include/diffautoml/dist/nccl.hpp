#pragma once
// The NCCL backend of the Communicator concept (communicator.hpp): one rank a GPU. Needs <nccl.h>
// and the CUDA runtime (NCCL ships with the CUDA toolkit; link the diffautoml::nccl target, which
// exists when CMake finds both). Host code: the host compiler builds it, nvcc is not needed.
//
// Collectives run on the communicator's own CUDA stream:
//  - the Communicator calls take host spans, staged through one device buffer (what JointSearch
//    passes today, docs/distributed.md);
//  - allreduce_device / broadcast_device work in place on device memory.
// Each call waits for its stream. With Options::timeout_seconds > 0, a collective that has waited
// that long for the other ranks ends the job, printing the rank and what it was doing (note()),
// as dist::Mpi's watchdog does.
//
// Bootstrap (NCCL's unique id made by rank 0 and given to every rank):
//  - over another communicator (dist::Mpi under mpirun): Nccl(bootstrap, options);
//  - through a file, for launchers that set RANK / WORLD_SIZE / LOCAL_RANK (or mpirun without
//    MPI_Init: OMPI_COMM_WORLD_*): Nccl(options) with options.id_file or $DAM_NCCL_ID_FILE, a path
//    that every rank sees and that is fresh for each job.
// Without a CUDA device the constructor throws dist_error saying so; with several ranks on the
// bootstrap communicator every rank throws alike.
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "../core/io.hpp"
#include "communicator.hpp"

namespace diffautoml::dist {

struct NcclOptions {
    /// This process's rank and the number of ranks (-1: from RANK and WORLD_SIZE, else
    /// OMPI_COMM_WORLD_RANK and _SIZE). With a bootstrap communicator, its rank and size.
    int rank = -1, size = -1;
    /// The GPU of this rank (-1: LOCAL_RANK, else OMPI_COMM_WORLD_LOCAL_RANK, else rank modulo the
    /// visible devices).
    int device = -1;
    /// File bootstrap: where rank 0 writes NCCL's unique id ("": $DAM_NCCL_ID_FILE).
    std::string id_file{};
    /// How long the other ranks wait for the id file, in seconds.
    double bootstrap_seconds = 120;
    /// End the job when one collective has waited this long for the other ranks (0: never).
    double timeout_seconds = 0;
};

namespace detail {
template <class T>
ncclDataType_t nccl_type() {
    if constexpr (std::is_same_v<T, float>) return ncclFloat32;
    else if constexpr (std::is_same_v<T, double>) return ncclFloat64;
    else if constexpr (std::is_same_v<T, std::int64_t>) return ncclInt64;
    else return ncclUint8;
}
inline int env_int(const char* a, const char* b, int fallback) {
    for (const char* name : {a, b})
        if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
    return fallback;
}
/// The number of visible CUDA devices, or a dist_error saying why there is none.
inline int nccl_devices(int rank) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        throw dist_error(fmt::format(
            "dist::Nccl: rank {}: no CUDA device is visible ({}); NCCL runs one rank a GPU. On CPUs use dist::Mpi "
            "(--dist mpi)",
            rank, e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount reports 0 devices"));
    return count;
}
}  // namespace detail

class Nccl {
public:
    static constexpr std::string_view backend_name = "nccl";
    using Options = NcclOptions;

    /// Bootstraps over `bootstrap` (e.g. dist::Mpi): its rank and size, rank 0's unique id
    /// broadcast. Every rank first says whether it has a device, so that all refuse alike.
    template <Communicator C>
    explicit Nccl(C& bootstrap, Options o = {}) : opt_(std::move(o)) {
        rank_ = bootstrap.rank();
        size_ = bootstrap.size();
        std::string why;
        try {
            pick_device();
        } catch (const dist_error& e) {
            why = e.what();
        }
        std::int64_t missing = why.empty() ? 0 : 1;
        bootstrap.allreduce(std::span<std::int64_t>(&missing, 1), ReduceOp::sum);
        if (missing > 0)
            throw dist_error(why.empty() ? fmt::format("dist::Nccl: {} of the {} ranks have no CUDA device; NCCL runs "
                                                       "one rank a GPU",
                                                       missing, size_)
                                         : why);
        ncclUniqueId id{};
        if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        std::span<std::uint8_t> bytes(reinterpret_cast<std::uint8_t*>(&id), sizeof(id));
        bootstrap.broadcast(bytes, 0);
        init(id);
    }

    /// Bootstraps through a file (see the header's comment).
    explicit Nccl(Options o = {}) : opt_(std::move(o)) {
        rank_ = opt_.rank >= 0 ? opt_.rank : detail::env_int("RANK", "OMPI_COMM_WORLD_RANK", 0);
        size_ = opt_.size >= 0 ? opt_.size : detail::env_int("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", 1);
        DAM_CHECK(size_ >= 1 && rank_ >= 0 && rank_ < size_, value_error,
                  "dist::Nccl: rank {} of {} ranks is not a rank (RANK / WORLD_SIZE)", rank_, size_);
        pick_device();
        ncclUniqueId id{};
        if (size_ == 1) {
            check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        } else {
            std::string path = opt_.id_file;
            if (path.empty())
                if (const char* v = std::getenv("DAM_NCCL_ID_FILE")) path = v;
            DAM_CHECK(!path.empty(), value_error,
                      "dist::Nccl: {} ranks need a bootstrap: a communicator (dist::Mpi), or an id file that every "
                      "rank sees (NcclOptions::id_file or $DAM_NCCL_ID_FILE)",
                      size_);
            if (rank_ == 0) {
                check(ncclGetUniqueId(&id), "ncclGetUniqueId");
                const auto* p = reinterpret_cast<const std::uint8_t*>(&id);
                write_file_atomic(path, std::vector<std::uint8_t>(p, p + sizeof(id)));
                id_file_ = path;
            } else {
                read_id(path, id);
            }
        }
        init(id);
    }

    Nccl(const Nccl&) = delete;
    Nccl& operator=(const Nccl&) = delete;
    ~Nccl() {
        if (comm_) ncclCommDestroy(comm_);
        if (buffer_) cudaFree(buffer_);
        if (stream_) cudaStreamDestroy(stream_);
        if (!id_file_.empty()) {
            std::error_code ec;
            std::filesystem::remove(id_file_, ec);
        }
    }

    int rank() const { return rank_; }
    int size() const { return size_; }
    int device() const { return device_; }
    cudaStream_t stream() const { return stream_; }
    /// What this rank is doing (e.g. "step 12"), for the messages of failures and timeouts.
    void note(std::string what) { note_ = std::move(what); }

    template <Reducible T>
    void allreduce(std::span<T> x, ReduceOp op) {
        if (x.empty()) return;
        T* d = staging<T>(x.size());
        to_device(d, x.data(), x.size());
        allreduce_device(d, x.size(), op);
        to_host(x.data(), d, x.size());
    }
    template <Movable T>
    void broadcast(std::span<T> x, int root) {
        detail::check_root(root, size_, "dist::Nccl::broadcast");
        if (x.empty()) return;
        T* d = staging<T>(x.size());
        to_device(d, x.data(), x.size());
        broadcast_device(d, x.size(), root);
        to_host(x.data(), d, x.size());
    }
    template <Movable T>
    void allgather(std::span<const T> in, std::span<T> out) {
        detail::check_gather(in, out, size_, "dist::Nccl::allgather");
        if (in.empty()) return;
        T* d = staging<T>(out.size());
        T* mine = d + static_cast<std::size_t>(rank_) * in.size();
        to_device(mine, in.data(), in.size());
        check(ncclAllGather(mine, d, in.size(), detail::nccl_type<T>(), comm_, stream_), "allgather");
        wait("allgather");
        to_host(out.data(), d, out.size());
    }
    void barrier() {
        std::int64_t x = 0;
        allreduce(std::span<std::int64_t>(&x, 1), ReduceOp::sum);
    }
    [[noreturn]] void abort(int code, std::string_view message) {
        std::fprintf(stderr, "diffautoml: rank %d of %d: %.*s\n", rank_, size_, static_cast<int>(message.size()),
                     message.data());
        std::fflush(stderr);
        if (comm_) ncclCommAbort(comm_);
        std::_Exit(code == 0 ? 1 : code);  // the launcher sees a rank end badly and ends the others
    }

    /// In place on device memory `data` (n values), on stream(); returns when it is done.
    template <Reducible T>
    void allreduce_device(T* data, std::size_t n, ReduceOp op) {
        check(ncclAllReduce(data, data, n, detail::nccl_type<T>(), op == ReduceOp::sum ? ncclSum : ncclMax, comm_,
                            stream_),
              "allreduce");
        wait("allreduce");
    }
    template <Movable T>
    void broadcast_device(T* data, std::size_t n, int root) {
        detail::check_root(root, size_, "dist::Nccl::broadcast_device");
        check(ncclBroadcast(data, data, n, detail::nccl_type<T>(), root, comm_, stream_), "broadcast");
        wait("broadcast");
    }

private:
    void pick_device() {
        const int count = detail::nccl_devices(rank_);
        device_ = opt_.device >= 0 ? opt_.device : detail::env_int("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", rank_);
        device_ = opt_.device >= 0 ? device_ : device_ % count;
        DAM_CHECK(device_ < count, value_error, "dist::Nccl: rank {}: device {} is not one of the {} visible devices",
                  rank_, device_, count);
        cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    }
    void init(const ncclUniqueId& id) {
        cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
        check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    }
    void read_id(const std::string& path, ncclUniqueId& id) {
        const auto start = std::chrono::steady_clock::now();
        for (;;) {
            std::error_code ec;
            if (std::filesystem::file_size(path, ec) == sizeof(id) && !ec) {
                const auto bytes = read_file(path);
                std::copy(bytes.begin(), bytes.end(), reinterpret_cast<std::uint8_t*>(&id));
                return;
            }
            const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (waited > opt_.bootstrap_seconds)
                throw dist_error(fmt::format("dist::Nccl: rank {} of {}: rank 0's id file {} did not appear within {} s; "
                                             "is rank 0 running, and does every rank see that path?",
                                             rank_, size_, path, opt_.bootstrap_seconds));
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    template <class T>
    T* staging(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        if (bytes > capacity_) {
            if (buffer_) cuda_check(cudaFree(buffer_), "cudaFree");
            buffer_ = nullptr;
            cuda_check(cudaMalloc(&buffer_, bytes), "cudaMalloc");
            capacity_ = bytes;
        }
        return static_cast<T*>(buffer_);
    }
    template <class T>
    void to_device(T* d, const T* h, std::size_t n) {
        cuda_check(cudaMemcpyAsync(d, h, n * sizeof(T), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    }
    template <class T>
    void to_host(T* h, const T* d, std::size_t n) {
        cuda_check(cudaMemcpyAsync(h, d, n * sizeof(T), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
        wait("copy to the host");
    }
    /// Waits for the stream: a device error or an asynchronous NCCL error is a dist_error, and
    /// past the timeout the job ends.
    void wait(const char* what) {
        const auto start = std::chrono::steady_clock::now();
        for (int polls = 0;; ++polls) {
            const cudaError_t q = cudaStreamQuery(stream_);
            if (q == cudaSuccess) return;
            if (q != cudaErrorNotReady) cuda_check(q, what);
            ncclResult_t async = ncclSuccess;
            ncclCommGetAsyncError(comm_, &async);
            if (async != ncclSuccess && async != ncclInProgress) check(async, what);
            const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (opt_.timeout_seconds > 0 && waited > opt_.timeout_seconds) {
                std::fprintf(stderr,
                             "diffautoml: rank %d of %d: %s%s%s has waited %.0f s for the other ranks (timeout %.0f s): "
                             "a rank has stopped or hangs; ending the job\n",
                             rank_, size_, what, note_.empty() ? "" : " at ", note_.c_str(), waited, opt_.timeout_seconds);
                std::fflush(stderr);
                ncclCommAbort(comm_);
                comm_ = nullptr;
                std::_Exit(124);
            }
            if (polls < 1000) std::this_thread::yield();
            else std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }
    void check(ncclResult_t rc, const char* what) const {
        if (rc == ncclSuccess || rc == ncclInProgress) return;
        throw dist_error(fmt::format("dist::Nccl: rank {} of {}: {} failed{}: {}{}", rank_, size_, what,
                                     note_.empty() ? "" : " (" + note_ + ")", ncclGetErrorString(rc),
                                     comm_ ? fmt::format(" ({})", ncclGetLastError(comm_)) : std::string()));
    }
    void cuda_check(cudaError_t rc, const char* what) const {
        if (rc != cudaSuccess)
            throw dist_error(fmt::format("dist::Nccl: rank {} of {}: {} failed{}: {}", rank_, size_, what,
                                         note_.empty() ? "" : " (" + note_ + ")", cudaGetErrorString(rc)));
    }

    Options opt_;
    int rank_ = 0, size_ = 1, device_ = 0;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    void* buffer_ = nullptr;
    std::size_t capacity_ = 0;
    std::string note_, id_file_;
};

static_assert(Communicator<Nccl>);

}  // namespace diffautoml::dist
