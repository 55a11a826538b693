// The NCCL communicator (dist/nccl.hpp). Without a CUDA device (this project's CI machines) the
// constructor must refuse with a dist_error that says so, through both bootstraps; with one (the
// GPU machines) one rank's collectives must be what one rank's are: the identity, every type,
// host spans and device memory.
#define CATCH_CONFIG_MAIN
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/dist/nccl.hpp>

namespace {

namespace dist = diffautoml::dist;

bool has_device() {
    int count = 0;
    return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

template <class T>
void one_rank_collectives(dist::Nccl& c, std::size_t n) {
    std::vector<T> x(n);
    for (std::size_t k = 0; k < n; ++k) x[k] = static_cast<T>(static_cast<std::int64_t>(k % 97) - 40);
    const auto before = x;
    if constexpr (dist::Reducible<T>) {
        c.allreduce(std::span<T>(x), dist::ReduceOp::sum);
        CHECK(x == before);
        c.allreduce(std::span<T>(x), dist::ReduceOp::max);
        CHECK(x == before);
    }
    c.broadcast(std::span<T>(x), 0);
    CHECK(x == before);
    std::vector<T> out(n);
    c.allgather(std::span<const T>(x), std::span<T>(out));
    CHECK(out == before);
}

}  // namespace

TEST_CASE("dist::Nccl without a CUDA device: a dist_error that says so", "[dist][nccl]") {
    if (has_device()) {
        SUCCEED("a CUDA device is visible: the next case runs instead");
        return;
    }
    const dist::NcclOptions one{.rank = 0, .size = 1};
    CHECK_THROWS_AS(dist::Nccl(one), dist::dist_error);
    CHECK_THROWS_WITH(dist::Nccl(one), Catch::Contains("no CUDA device is visible") && Catch::Contains("--dist mpi"));
    dist::Local bootstrap;
    CHECK_THROWS_AS(dist::Nccl(bootstrap), dist::dist_error);
    CHECK_THROWS_WITH(dist::Nccl(bootstrap), Catch::Contains("no CUDA device is visible"));
    // Several ranks and no bootstrap: the missing device is what is reported, before the id file.
    CHECK_THROWS_AS(dist::Nccl(dist::NcclOptions{.rank = 1, .size = 2}), dist::dist_error);
}

TEST_CASE("dist::Nccl on one GPU: one rank's collectives are the identity", "[dist][nccl]") {
    if (!has_device()) {
        SUCCEED("no CUDA device: the case above checks the error instead");
        return;
    }
    dist::Nccl c(dist::NcclOptions{.rank = 0, .size = 1, .timeout_seconds = 60});
    CHECK(c.rank() == 0);
    CHECK(c.size() == 1);
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1001}, std::size_t{1} << 20}) {
        one_rank_collectives<float>(c, n);
        one_rank_collectives<double>(c, n);
        one_rank_collectives<std::int64_t>(c, n);
        one_rank_collectives<std::uint8_t>(c, n);
    }
    c.barrier();
    // In place on device memory.
    std::vector<double> h{1.5, -2.0, 4.0};
    double* d = nullptr;
    REQUIRE(cudaMalloc(&d, h.size() * sizeof(double)) == cudaSuccess);
    REQUIRE(cudaMemcpy(d, h.data(), h.size() * sizeof(double), cudaMemcpyHostToDevice) == cudaSuccess);
    c.allreduce_device(d, h.size(), dist::ReduceOp::sum);
    c.broadcast_device(d, h.size(), 0);
    std::vector<double> back(h.size());
    REQUIRE(cudaMemcpy(back.data(), d, h.size() * sizeof(double), cudaMemcpyDeviceToHost) == cudaSuccess);
    cudaFree(d);
    CHECK(back == h);
}
