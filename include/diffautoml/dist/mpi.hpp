#pragma once
// The MPI backend of the Communicator concept (communicator.hpp): CPU ranks launched by mpirun,
// one process a rank. Needs <mpi.h> (Debian: libopenmpi-dev; link the diffautoml::mpi target).
// Collectives run on MPI_COMM_WORLD (or a communicator given) with MPI_ERRORS_RETURN, so that a
// failed call becomes a dist_error naming the rank, the collective and MPI's reason.
//
// A rank that never reaches a collective would leave the others waiting for ever: with
// Options::timeout_seconds > 0 a watchdog thread ends the whole job when one collective has waited
// that long, printing the rank, the collective and what the caller was doing (note()). A rank that
// dies is reported by mpirun, which then ends the others.
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "communicator.hpp"

namespace diffautoml::dist {

namespace detail {
template <class T>
MPI_Datatype mpi_type() {
    if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
    else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
    else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
    else return MPI_UINT8_T;
}
inline MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::sum ? MPI_SUM : MPI_MAX; }
}  // namespace detail

struct MpiOptions {
    /// End the job when one collective has waited this long for the other ranks (0: never).
    double timeout_seconds = 0;
};

class Mpi {
public:
    static constexpr std::string_view backend_name = "mpi";
    using Options = MpiOptions;

    /// Initialises MPI if nobody has (and then finalises it when destroyed).
    explicit Mpi(Options o = {}, MPI_Comm comm = MPI_COMM_WORLD) : opt_(o) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (!initialized) {
            int provided = 0;
            if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
                throw dist_error("dist::Mpi: MPI_Init_thread failed; is this program started by mpirun?");
            owned_ = true;
        }
        DAM_CHECK(o.timeout_seconds >= 0, value_error, "dist::Mpi: timeout_seconds must be >= 0, got {}", o.timeout_seconds);
        MPI_Comm_dup(comm, &comm_);
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
        if (opt_.timeout_seconds > 0) watchdog_ = std::thread([this] { watch(); });
    }
    Mpi(const Mpi&) = delete;
    Mpi& operator=(const Mpi&) = delete;
    ~Mpi() {
        if (watchdog_.joinable()) {
            {
                std::lock_guard<std::mutex> lock(mu_);
                stop_ = true;
            }
            cv_.notify_all();
            watchdog_.join();
        }
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) {
            MPI_Comm_free(&comm_);
            if (owned_) MPI_Finalize();
        }
    }

    int rank() const { return rank_; }
    int size() const { return size_; }
    /// What this rank is doing (e.g. "step 12"), for the messages of failures and timeouts.
    void note(std::string what) {
        std::lock_guard<std::mutex> lock(mu_);
        note_ = std::move(what);
    }

    template <Reducible T>
    void allreduce(std::span<T> x, ReduceOp op) {
        chunked(x.size(), "allreduce", [&](std::size_t at, int n) {
            return MPI_Allreduce(MPI_IN_PLACE, x.data() + at, n, detail::mpi_type<T>(), detail::mpi_op(op), comm_);
        });
    }
    template <Movable T>
    void broadcast(std::span<T> x, int root) {
        detail::check_root(root, size_, "dist::Mpi::broadcast");
        chunked(x.size(), "broadcast", [&](std::size_t at, int n) {
            return MPI_Bcast(x.data() + at, n, detail::mpi_type<T>(), root, comm_);
        });
    }
    template <Movable T>
    void allgather(std::span<const T> in, std::span<T> out) {
        detail::check_gather(in, out, size_, "dist::Mpi::allgather");
        DAM_CHECK(in.size() <= static_cast<std::size_t>(INT_MAX), value_error,
                  "dist::Mpi::allgather: {} values a rank are more than one MPI call moves ({})", in.size(), INT_MAX);
        call("allgather", [&] {
            return MPI_Allgather(in.data(), static_cast<int>(in.size()), detail::mpi_type<T>(), out.data(),
                                 static_cast<int>(in.size()), detail::mpi_type<T>(), comm_);
        });
    }
    void barrier() {
        call("barrier", [&] { return MPI_Barrier(comm_); });
    }
    [[noreturn]] void abort(int code, std::string_view message) {
        std::fprintf(stderr, "diffautoml: rank %d of %d: %.*s\n", rank_, size_, static_cast<int>(message.size()),
                     message.data());
        std::fflush(stderr);
        MPI_Abort(comm_, code == 0 ? 1 : code);
        std::_Exit(code == 0 ? 1 : code);  // MPI_Abort does not return; this is for the compiler
    }

private:
    /// Runs f() (an MPI call) under the watchdog; a failure becomes a dist_error.
    template <class F>
    void call(const char* what, F&& f) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            busy_ = what;
            since_ = std::chrono::steady_clock::now();
        }
        const int rc = f();
        {
            std::lock_guard<std::mutex> lock(mu_);
            busy_ = nullptr;
        }
        if (rc != MPI_SUCCESS) {
            char text[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, text, &len);
            throw dist_error(fmt::format("dist::Mpi: rank {} of {}: {} failed{}: {}", rank_, size_, what,
                                         note_.empty() ? "" : " (" + note_ + ")", std::string(text, static_cast<std::size_t>(len))));
        }
    }
    /// One MPI call per INT_MAX / 2 elements (MPI counts are int).
    template <class F>
    void chunked(std::size_t n, const char* what, F&& f) {
        constexpr std::size_t step = static_cast<std::size_t>(INT_MAX / 2);
        if (n == 0) return call(what, [&] { return f(std::size_t{0}, 0); });
        for (std::size_t at = 0; at < n; at += step)
            call(what, [&] { return f(at, static_cast<int>(std::min(step, n - at))); });
    }
    void watch() {
        std::unique_lock<std::mutex> lock(mu_);
        while (!stop_) {
            cv_.wait_for(lock, std::chrono::milliseconds(100));
            if (stop_ || !busy_) continue;
            const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - since_).count();
            if (waited < opt_.timeout_seconds) continue;
            std::fprintf(stderr,
                         "diffautoml: rank %d of %d: %s%s%s has waited %.0f s for the other ranks (timeout %.0f s): a rank "
                         "has stopped or hangs; ending the job\n",
                         rank_, size_, busy_, note_.empty() ? "" : " at ", note_.c_str(), waited, opt_.timeout_seconds);
            std::fflush(stderr);
            std::_Exit(124);  // mpirun sees a rank end badly and ends the others
        }
    }

    Options opt_;
    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1;
    bool owned_ = false;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    const char* busy_ = nullptr;
    std::chrono::steady_clock::time_point since_{};
    std::string note_;
    std::thread watchdog_;
};

static_assert(Communicator<Mpi>);

}  // namespace diffautoml::dist
