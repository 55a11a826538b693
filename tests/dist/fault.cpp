// A job in which one rank fails (tests/CMakeLists.txt runs it under mpirun): rank 1 throws, is
// killed, or hangs at step 3 of a loop of allreduces. The job must end within ctest's timeout
// with a message that names the rank and the step (the killed rank: mpirun names it).
//   dam_dist_fault throw|kill|hang
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <diffautoml/dist/mpi.hpp>

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    diffautoml::dist::Mpi comm({.timeout_seconds = 3});
    std::int64_t step = 0;
    try {
        for (step = 0; step < 10; ++step) {
            comm.note("step " + std::to_string(step));
            if (comm.rank() == 1 && step == 3) {
                if (mode == "throw") throw std::runtime_error("a deliberate failure");
                if (mode == "kill") std::raise(SIGKILL);
                if (mode == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
            }
            std::vector<float> g(1000, 1.0f);
            comm.allreduce(std::span<float>(g), diffautoml::dist::ReduceOp::sum);
        }
    } catch (const std::exception& e) {
        comm.abort(1, "step " + std::to_string(step) + ": " + e.what());
    }
    std::printf("rank %d: finished\n", comm.rank());
    return 0;
}
