// The MPI communicator's collectives, run by ctest under mpirun with 2 and 3 ranks
// (tests/CMakeLists.txt): every element type, sum and max, sizes 0, 1, odd and 2^20, against the
// values each rank can compute for the others. Every rank runs every case; any failing rank fails
// the job.
#define CATCH_CONFIG_RUNNER
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/dist/mpi.hpp>
#include <diffautoml/nn/layers.hpp>
#include <diffautoml/optim/data_parallel.hpp>

namespace {

diffautoml::dist::Mpi* comm = nullptr;

/// Rank r's k-th value: small whole numbers, so that float sums are exact in any order.
template <class T>
T value(int r, std::size_t k) {
    return static_cast<T>(static_cast<std::int64_t>((k * 7 + static_cast<std::size_t>(r) * 13) % 101) - 50);
}

template <class T>
void check_allreduce(std::size_t n) {
    using diffautoml::dist::ReduceOp;
    const int R = comm->size(), me = comm->rank();
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
        std::vector<T> x(n);
        for (std::size_t k = 0; k < n; ++k) x[k] = value<T>(me, k);
        comm->allreduce(std::span<T>(x), op);
        std::size_t wrong = 0;
        for (std::size_t k = 0; k < n; ++k) {
            T want = value<T>(0, k);
            for (int r = 1; r < R; ++r) want = op == ReduceOp::sum ? T(want + value<T>(r, k)) : std::max(want, value<T>(r, k));
            wrong += x[k] != want;
        }
        INFO("rank " << me << " of " << R << ", " << n << " values, " << (op == ReduceOp::sum ? "sum" : "max"));
        CHECK(wrong == 0);
    }
}

template <class T>
void check_broadcast_and_gather(std::size_t n) {
    const int R = comm->size(), me = comm->rank(), root = R - 1;
    std::vector<T> x(n);
    for (std::size_t k = 0; k < n; ++k) x[k] = value<T>(me, k);
    comm->broadcast(std::span<T>(x), root);
    std::size_t wrong = 0;
    for (std::size_t k = 0; k < n; ++k) wrong += x[k] != value<T>(root, k);
    INFO("rank " << me << " of " << R << ", " << n << " values");
    CHECK(wrong == 0);
    std::vector<T> in(n), out(n * static_cast<std::size_t>(R));
    for (std::size_t k = 0; k < n; ++k) in[k] = value<T>(me, k);
    comm->allgather(std::span<const T>(in), std::span<T>(out));
    wrong = 0;
    for (int r = 0; r < R; ++r)
        for (std::size_t k = 0; k < n; ++k) wrong += out[static_cast<std::size_t>(r) * n + k] != value<T>(r, k);
    CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("MPI allreduce: float, double and int64, sum and max, sizes 0, 1, odd and 2^20", "[dist][mpi]") {
    REQUIRE(comm->size() >= 2);
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1001}, std::size_t{1} << 20}) {
        check_allreduce<float>(n);
        check_allreduce<double>(n);
        check_allreduce<std::int64_t>(n);
    }
}

TEST_CASE("MPI broadcast and allgather: every type, bytes too", "[dist][mpi]") {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1001}, std::size_t{1} << 20}) {
        check_broadcast_and_gather<float>(n);
        check_broadcast_and_gather<double>(n);
        check_broadcast_and_gather<std::int64_t>(n);
        check_broadcast_and_gather<std::uint8_t>(n);
    }
    comm->barrier();
}

TEST_CASE("MPI communicator: bad arguments are errors on the rank that gives them", "[dist][mpi]") {
    std::vector<double> x(3), out(2);
    CHECK_THROWS_WITH(comm->broadcast(std::span<double>(x), comm->size()), Catch::Contains("root rank"));
    CHECK_THROWS_WITH(comm->allgather(std::span<const double>(x), std::span<double>(out)),
                      Catch::Contains("the output holds 2 values"));
    comm->barrier();
}

TEST_CASE("data-parallel helpers: gradients summed and scaled, buffers averaged, state broadcast", "[dist][mpi]") {
    using namespace diffautoml;
    const int R = comm->size(), me = comm->rank();
    // Three parameters: p0 has a gradient on every rank, p1 on rank 1 only, p2 on none.
    std::vector<Var<double>> ps{Var<double>(Tensor<double>::zeros(Shape{1001}), true),
                                Var<double>(Tensor<double>::zeros(Shape{3}), true),
                                Var<double>(Tensor<double>::zeros(Shape{5}), true)};
    auto fill = [&](std::int64_t n) {
        Tensor<double> t(Shape{n});
        for (std::int64_t k = 0; k < n; ++k) t[k] = value<double>(me, static_cast<std::size_t>(k));
        return t;
    };
    ps[0].grad() = fill(1001);
    if (me == 1) ps[1].grad() = fill(3);
    optim::allreduce_gradients(*comm, ps, 1.0 / R);
    std::size_t wrong = 0;
    for (std::int64_t k = 0; k < 1001; ++k) {
        double sum = 0;
        for (int r = 0; r < R; ++r) sum += value<double>(r, static_cast<std::size_t>(k));
        wrong += ps[0].grad()[k] != sum * (1.0 / R);
    }
    REQUIRE(ps[1].grad().defined());
    for (std::int64_t k = 0; k < 3; ++k) wrong += ps[1].grad()[k] != value<double>(1, static_cast<std::size_t>(k)) * (1.0 / R);
    INFO("rank " << me << " of " << R);
    CHECK(wrong == 0);
    CHECK_FALSE(ps[2].grad().defined());

    // Batch-norm running statistics: each rank's own, then their mean everywhere; then rank R-1's
    // weights and buffers everywhere.
    nn::BatchNorm2d<double> bn(6);
    std::size_t at = 0;
    for (const auto& [name, b] : bn.named_buffers())
        for (std::int64_t k = 0; k < b.numel(); ++k) b[k] = value<double>(me, at++);
    optim::average_buffers(*comm, bn);
    at = 0;
    wrong = 0;
    for (const auto& [name, b] : bn.named_buffers())
        for (std::int64_t k = 0; k < b.numel(); ++k, ++at) {
            double sum = 0;
            for (int r = 0; r < R; ++r) sum += value<double>(r, at);
            wrong += b[k] != sum * (1.0 / R);
        }
    CHECK(wrong == 0);
    for (const auto& p : bn.parameters()) p.value().fill(static_cast<double>(me));
    optim::broadcast_state(*comm, bn, R - 1);
    wrong = 0;
    for (const auto& p : bn.parameters())
        for (std::int64_t k = 0; k < p.numel(); ++k) wrong += p.value()[k] != static_cast<double>(R - 1);
    CHECK(wrong == 0);
    comm->barrier();
}

int main(int argc, char** argv) {
    diffautoml::dist::Mpi mpi({.timeout_seconds = 60});
    comm = &mpi;
    return Catch::Session().run(argc, argv);
}
