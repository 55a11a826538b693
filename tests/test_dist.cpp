// The single-process communicator (dist/communicator.hpp): the default of every run. The MPI
// backend's collectives and failures are tested under mpirun (tests/dist/).
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/dist/communicator.hpp>
#include <diffautoml/optim/data_parallel.hpp>

#include "test_helpers.hpp"

using namespace diffautoml;

TEST_CASE("dist::Local: one rank, collectives are the identity, bad arguments are errors", "[dist]") {
    dist::Local c;
    static_assert(dist::Communicator<dist::Local>);
    CHECK(c.rank() == 0);
    CHECK(c.size() == 1);
    std::vector<double> x{1.5, -2.0, 3.25};
    c.allreduce(std::span<double>(x), dist::ReduceOp::sum);
    CHECK(x == std::vector<double>{1.5, -2.0, 3.25});
    std::vector<std::int64_t> k{7, -9};
    c.allreduce(std::span<std::int64_t>(k), dist::ReduceOp::max);
    CHECK(k == std::vector<std::int64_t>{7, -9});
    std::vector<std::uint8_t> bytes{1, 2, 3};
    c.broadcast(std::span<std::uint8_t>(bytes), 0);
    CHECK(bytes == std::vector<std::uint8_t>{1, 2, 3});
    std::vector<double> out(3);
    c.allgather(std::span<const double>(x), std::span<double>(out));
    CHECK(out == x);
    dam_test::require_throws_with<value_error>([&] { c.broadcast(std::span<double>(x), 1); },
                                               {"root rank 1", "not one of the 1 ranks"});
    std::vector<double> small(2);
    dam_test::require_throws_with<shape_error>([&] { c.allgather(std::span<const double>(x), std::span<double>(small)); },
                                               {"the output holds 2 values", "need 3"});
    c.barrier();
}

TEST_CASE("data-parallel helpers on one rank: gradients scaled, buffers and state unchanged", "[dist]") {
    dist::Local c;
    nn::BatchNorm2d<double> bn(4);
    const auto a = dam_test::randn(Shape{2, 4, 3, 3}, 5);
    ops::sum(bn(a)).backward();  // gradients for weight and bias; running statistics move
    const auto params = bn.parameters();
    std::vector<Tensor<double>> grads, buffers;
    for (const auto& p : params) grads.push_back(p.grad().clone());
    for (const auto& [name, b] : bn.named_buffers()) buffers.push_back(b.clone());
    auto undefined = Var<double>(Tensor<double>::zeros(Shape{3}), true);  // a parameter no path reached
    std::vector<Var<double>> all = params;
    all.push_back(undefined);
    optim::allreduce_gradients(c, all, 0.5);
    for (std::size_t i = 0; i < params.size(); ++i)
        for (std::int64_t k = 0; k < grads[i].numel(); ++k) CHECK(params[i].grad()[k] == grads[i][k] * 0.5);
    CHECK_FALSE(undefined.grad().defined());
    optim::average_buffers(c, bn);
    optim::broadcast_state(c, bn, 0);
    std::size_t i = 0;
    for (const auto& [name, b] : bn.named_buffers()) {
        for (std::int64_t k = 0; k < b.numel(); ++k) CHECK(b[k] == buffers[i][k]);
        ++i;
    }
}
