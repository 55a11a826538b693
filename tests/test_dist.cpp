// The single-process communicator (dist/communicator.hpp): the default of every run. The MPI
// backend's collectives and failures are tested under mpirun (tests/dist/).
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/dist/communicator.hpp>

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
