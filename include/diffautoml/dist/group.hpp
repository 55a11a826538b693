#pragma once
// dist::Group: any Communicator behind one type. A trainer keeps a Group (JointSearch's
// RunOptions::comm), so that it is not a template over its transport: the backend is chosen where
// the program starts (dist::Local by default, dist::Mpi under mpirun) and every collective is one
// virtual call on top of the backend's own. A Group is a Communicator itself; copies share the
// backend.
//
//     auto comm = diffautoml::dist::Group(std::make_shared<diffautoml::dist::Mpi>());
//     options.run.comm = comm;   // JointSearch then runs data-parallel over the ranks
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "communicator.hpp"

namespace diffautoml::dist {

class Group {
public:
    static constexpr std::string_view backend_name = "group";

    /// One process: dist::Local.
    Group() : Group(std::make_shared<Local>()) {}
    /// Shares `comm` (the group keeps it alive).
    template <Communicator C>
        requires(!std::same_as<C, Group>)
    explicit Group(std::shared_ptr<C> comm) : impl_(std::make_shared<Model<C>>(std::move(comm))) {
        DAM_CHECK(impl_->ok(), value_error, "dist::Group: the communicator is null");
    }

    int rank() const { return impl_->rank(); }
    int size() const { return impl_->size(); }
    /// The backend's name ("local", "mpi").
    std::string_view backend() const { return impl_->backend(); }

    template <Reducible T>
    void allreduce(std::span<T> x, ReduceOp op) {
        impl_->allreduce(x, op);
    }
    template <Movable T>
    void broadcast(std::span<T> x, int root) {
        impl_->broadcast(x, root);
    }
    template <Movable T>
    void allgather(std::span<const T> in, std::span<T> out) {
        impl_->allgather(in, out);
    }
    void barrier() { impl_->barrier(); }
    [[noreturn]] void abort(int code, std::string_view message) {
        impl_->abort(code, message);
        std::_Exit(code == 0 ? 1 : code);  // not reached: the compiler does not carry [[noreturn]] through a virtual call
    }
    /// What this rank is doing (e.g. "step 12"), for backends whose failure messages say it (Mpi).
    void note(std::string_view what) { impl_->note(what); }

private:
    struct Interface {
        virtual ~Interface() = default;
        virtual bool ok() const = 0;
        virtual int rank() const = 0;
        virtual int size() const = 0;
        virtual std::string_view backend() const = 0;
        virtual void allreduce(std::span<float>, ReduceOp) = 0;
        virtual void allreduce(std::span<double>, ReduceOp) = 0;
        virtual void allreduce(std::span<std::int64_t>, ReduceOp) = 0;
        virtual void broadcast(std::span<float>, int) = 0;
        virtual void broadcast(std::span<double>, int) = 0;
        virtual void broadcast(std::span<std::int64_t>, int) = 0;
        virtual void broadcast(std::span<std::uint8_t>, int) = 0;
        virtual void allgather(std::span<const float>, std::span<float>) = 0;
        virtual void allgather(std::span<const double>, std::span<double>) = 0;
        virtual void allgather(std::span<const std::int64_t>, std::span<std::int64_t>) = 0;
        virtual void allgather(std::span<const std::uint8_t>, std::span<std::uint8_t>) = 0;
        virtual void barrier() = 0;
        [[noreturn]] virtual void abort(int, std::string_view) = 0;
        virtual void note(std::string_view) = 0;
    };

    template <class C>
    struct Model final : Interface {
        explicit Model(std::shared_ptr<C> c) : c(std::move(c)) {}
        bool ok() const override { return c != nullptr; }
        int rank() const override { return c->rank(); }
        int size() const override { return c->size(); }
        std::string_view backend() const override { return C::backend_name; }
        void allreduce(std::span<float> x, ReduceOp op) override { c->allreduce(x, op); }
        void allreduce(std::span<double> x, ReduceOp op) override { c->allreduce(x, op); }
        void allreduce(std::span<std::int64_t> x, ReduceOp op) override { c->allreduce(x, op); }
        void broadcast(std::span<float> x, int root) override { c->broadcast(x, root); }
        void broadcast(std::span<double> x, int root) override { c->broadcast(x, root); }
        void broadcast(std::span<std::int64_t> x, int root) override { c->broadcast(x, root); }
        void broadcast(std::span<std::uint8_t> x, int root) override { c->broadcast(x, root); }
        void allgather(std::span<const float> in, std::span<float> out) override { c->allgather(in, out); }
        void allgather(std::span<const double> in, std::span<double> out) override { c->allgather(in, out); }
        void allgather(std::span<const std::int64_t> in, std::span<std::int64_t> out) override {
            c->allgather(in, out);
        }
        void allgather(std::span<const std::uint8_t> in, std::span<std::uint8_t> out) override {
            c->allgather(in, out);
        }
        void barrier() override { c->barrier(); }
        [[noreturn]] void abort(int code, std::string_view message) override {
            c->abort(code, message);
            std::_Exit(code == 0 ? 1 : code);  // for a backend whose abort() the compiler does not know ends
        }
        void note(std::string_view what) override {
            if constexpr (requires { c->note(std::string(what)); }) c->note(std::string(what));
        }
        std::shared_ptr<C> c;
    };

    std::shared_ptr<Interface> impl_;
};

static_assert(Communicator<Group>);

}  // namespace diffautoml::dist
