#pragma once
// The communicator of a data-parallel run (docs/distributed.md): the Communicator concept that
// every backend satisfies, the single-process backend Local (the default: one rank, every
// collective the identity), and the error type of a failed collective or a failed rank.
//
// A collective is called by every rank in the same order with the same sizes. In place:
//     allreduce(span<T>, op)        sum or max over the ranks, T = float, double or int64
//     broadcast(span<T>, root)      root's values to every rank, T = those and bytes
//     allgather(in, out)            out (size() * in.size()) = every rank's in, in rank order
//     barrier()
//     abort(code, message)          ends every rank of the job with `code`, the message on stderr
// A backend that cannot complete a collective throws dist_error naming the rank, the collective
// and the cause; the caller ends the job with abort() (what JointSearch does), so that no rank
// waits for ever on one that has left.
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "../core/error.hpp"

namespace diffautoml::dist {

enum class ReduceOp { sum, max };

/// A collective failed, or another rank did: the message names the rank and the cause.
class dist_error : public error {
public:
    using error::error;
};

/// The element types a collective reduces (broadcast and allgather also move bytes).
template <class T>
concept Reducible = std::same_as<T, float> || std::same_as<T, double> || std::same_as<T, std::int64_t>;
template <class T>
concept Movable = Reducible<T> || std::same_as<T, std::uint8_t>;

template <class C>
concept Communicator = requires(C& c, const C& cc, std::span<float> f, std::span<double> d, std::span<std::int64_t> i,
                                std::span<std::uint8_t> b, std::span<const double> cd) {
    { C::backend_name } -> std::convertible_to<std::string_view>;
    { cc.rank() } -> std::same_as<int>;
    { cc.size() } -> std::same_as<int>;
    c.allreduce(f, ReduceOp::sum);
    c.allreduce(d, ReduceOp::max);
    c.allreduce(i, ReduceOp::sum);
    c.broadcast(d, 0);
    c.broadcast(b, 0);
    c.broadcast(i, 0);
    c.allgather(cd, d);
    c.barrier();
    c.abort(1, std::string_view{});
};

namespace detail {
inline void check_root(int root, int size, const char* who) {
    DAM_CHECK(root >= 0 && root < size, value_error, "{}: root rank {} is not one of the {} ranks", who, root, size);
}
template <class T>
void check_gather(std::span<const T> in, std::span<T> out, int size, const char* who) {
    DAM_CHECK(out.size() == in.size() * static_cast<std::size_t>(size), shape_error,
              "{}: the output holds {} values, but {} ranks of {} need {}", who, out.size(), size, in.size(),
              in.size() * static_cast<std::size_t>(size));
}
}  // namespace detail

/// One process, no transport: the default communicator of a run.
class Local {
public:
    static constexpr std::string_view backend_name = "local";
    int rank() const { return 0; }
    int size() const { return 1; }
    template <Reducible T>
    void allreduce(std::span<T>, ReduceOp) {}
    template <Movable T>
    void broadcast(std::span<T>, int root) {
        detail::check_root(root, 1, "dist::Local::broadcast");
    }
    template <Movable T>
    void allgather(std::span<const T> in, std::span<T> out) {
        detail::check_gather(in, out, 1, "dist::Local::allgather");
        std::copy(in.begin(), in.end(), out.begin());
    }
    void barrier() {}
    [[noreturn]] void abort(int code, std::string_view message) {
        std::fprintf(stderr, "diffautoml: %.*s\n", static_cast<int>(message.size()), message.data());
        std::fflush(stderr);
        std::_Exit(code == 0 ? 1 : code);
    }
};

static_assert(Communicator<Local>);

}  // namespace diffautoml::dist
