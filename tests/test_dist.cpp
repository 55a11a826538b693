// The single-process communicator (dist/communicator.hpp): the default of every run, and
// dist::Group over any communicator. The MPI backend's collectives and failures are tested under
// mpirun (tests/dist/).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/dist/communicator.hpp>
#include <diffautoml/dist/group.hpp>
#include <diffautoml/optim/data_parallel.hpp>
#include <diffautoml/version.hpp>

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
    std::vector<double> extra{3.5, -1.0};  // summed over the ranks with the gradients, not scaled
    optim::allreduce_gradients(c, all, 0.5, std::span<double>(extra));
    for (std::size_t i = 0; i < params.size(); ++i)
        for (std::int64_t k = 0; k < grads[i].numel(); ++k) CHECK(params[i].grad()[k] == grads[i][k] * 0.5);
    CHECK_FALSE(undefined.grad().defined());
    CHECK(extra == std::vector<double>{3.5, -1.0});
    optim::average_buffers(c, bn);
    optim::broadcast_state(c, bn, 0);
    std::size_t i = 0;
    for (const auto& [name, b] : bn.named_buffers()) {
        for (std::int64_t k = 0; k < b.numel(); ++k) CHECK(b[k] == buffers[i][k]);
        ++i;
    }
}

namespace {
/// A communicator of rank 2 of 3 that records its calls and answers as if the other ranks held
/// the values 10 (sum) and their rank (gather).
struct Recorder {
    static constexpr std::string_view backend_name = "recorder";
    std::vector<std::string> calls;
    int rank() const { return 2; }
    int size() const { return 3; }
    template <dist::Reducible T>
    void allreduce(std::span<T> x, dist::ReduceOp op) {
        calls.push_back(op == dist::ReduceOp::sum ? "allreduce sum" : "allreduce max");
        for (auto& v : x) v = op == dist::ReduceOp::sum ? T(v + 20) : std::max(v, T(10));
    }
    template <dist::Movable T>
    void broadcast(std::span<T> x, int root) {
        calls.push_back("broadcast " + std::to_string(root));
        for (auto& v : x) v = T(root);
    }
    template <dist::Movable T>
    void allgather(std::span<const T> in, std::span<T> out) {
        calls.push_back("allgather");
        for (std::size_t k = 0; k < out.size(); ++k) out[k] = k / in.size() == 2 ? in[k % in.size()] : T(k / in.size());
    }
    void barrier() { calls.push_back("barrier"); }
    void note(std::string what) { calls.push_back("note " + what); }
    [[noreturn]] void abort(int, std::string_view) { std::abort(); }
};
}  // namespace

TEST_CASE("dist::Group: one type over any communicator, every collective forwarded", "[dist]") {
    static_assert(dist::Communicator<Recorder> && dist::Communicator<dist::Group>);
    dist::Group local;
    CHECK(local.rank() == 0);
    CHECK(local.size() == 1);
    CHECK(local.backend() == "local");
    local.note("step 1");  // Local keeps no note: nothing happens

    auto rec = std::make_shared<Recorder>();
    dist::Group g(rec);
    const dist::Group copy = g;  // copies share the backend
    CHECK(copy.rank() == 2);
    CHECK(copy.size() == 3);
    CHECK(g.backend() == "recorder");
    std::vector<float> f{1, 2};
    g.allreduce(std::span<float>(f), dist::ReduceOp::sum);
    CHECK(f == std::vector<float>{21, 22});
    std::vector<std::int64_t> k{3, 30};
    g.allreduce(std::span<std::int64_t>(k), dist::ReduceOp::max);
    CHECK(k == std::vector<std::int64_t>{10, 30});
    std::vector<std::uint8_t> bytes{7, 8};
    g.broadcast(std::span<std::uint8_t>(bytes), 1);
    CHECK(bytes == std::vector<std::uint8_t>{1, 1});
    std::vector<double> in{5, 6}, out(6);
    g.allgather(std::span<const double>(in), std::span<double>(out));
    CHECK(out == std::vector<double>{0, 0, 1, 1, 5, 6});
    g.barrier();
    g.note("step 12");
    CHECK(rec->calls == std::vector<std::string>{"allreduce sum", "allreduce max", "broadcast 1", "allgather", "barrier",
                                                 "note step 12"});
    dam_test::require_throws_with<value_error>([] { dist::Group(std::shared_ptr<Recorder>()); },
                                               {"the communicator is null"});
}

TEST_CASE("the library's version is CMake's project version", "[dist]") {
    // The ranks of a data-parallel run compare it (JointSearch's fingerprint).
    CHECK(diffautoml::version == DAM_PROJECT_VERSION);
}
