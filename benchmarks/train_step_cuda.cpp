// GPU training-step benchmark: the reference networks `small` and `mbv2` (nn/reference_nets.hpp)
// trained as Var<float, cuda> (forward, backward, SGD with Nesterov momentum 0.9 and weight decay
// 5e-4, batch 128 by default) on random Fashion-MNIST-shaped data, timed over --steps steps after
// 10 warm-ups, then the same networks in PyTorch on the same GPU in the same run
// (torch_train_step_gpu.py). Prints img/s for both and the ratio. Without a GPU it says so and
// exits 0. The data are random because the GPU machines do not have the dataset; the speed of a
// step does not depend on the pixel values.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include <diffautoml/cuda/backend.hpp>
#include <diffautoml/diffautoml.hpp>

#include "../examples/cli.hpp"
#include "peer.hpp"

using namespace diffautoml;

namespace {

double measure(const std::string& name, std::int64_t batch, int steps) {
    Generator gen(0);
    auto net = name == "small" ? nn::small_net<float, cuda>(gen) : nn::mbv2_net<float, cuda>(gen);
    optim::SGD<float, cuda> opt({{net->parameters(), 0.05, 5e-4, "all"}}, {0.9, true, 0.0});
    Tensor<float> xh(Shape{batch, 1, 28, 28});
    normal_(xh, gen, 0.0, 1.0);
    Tensor<std::int32_t> yh(Shape{batch});
    for (std::int64_t i = 0; i < batch; ++i) yh[i] = static_cast<std::int32_t>(i % 10);
    const Tensor<float, cuda> x = to_device(xh);
    const Tensor<std::int32_t, cuda> y = to_device(yh);
    auto step = [&]() {
        opt.zero_grad();
        auto loss = ops::cross_entropy(net->forward(Var<float, cuda>(x)), y);
        loss.backward();
        opt.step();
    };
    for (int i = 0; i < 10; ++i) step();
    backend_cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) step();
    backend_cuda::synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto st = default_allocator<cuda>().stats();
    std::fprintf(stderr, "net=%s params=%lld steps=%d seconds=%.3f device_peak_MiB=%.1f\n", name.c_str(),
                 static_cast<long long>(net->parameter_count()), steps, dt, st.peak_bytes_in_use / 1048576.0);
    return static_cast<double>(steps * batch) / dt;
}

}  // namespace

int main(int argc, char** argv) try {
    std::int64_t batch = 128;
    int steps = 200;
    bool peer = true;
    std::string script = DAM_BENCH_DIR "/torch_train_step_gpu.py";
    dam_cli::Cli cli("train_step_cuda", "train_step_cuda: a training step of the reference networks on the GPU against PyTorch's.");
    cli.group("options")
        .option("--batch", batch, "training batch size")
        .option("--steps", steps, "timed steps")
        .option("--peer", script, "the PyTorch peer script")
        .flag("--no-peer", peer, "do not run the PyTorch peer", false);
    cli.parse(argc, argv);
    if (cuda_device_count() == 0) {
        std::printf("no CUDA device visible: nothing to measure\n");
        return 0;
    }
    cudaDeviceProp p{};
    DAM_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    std::printf("device: %s\n", p.name);
    for (const std::string net : {"small", "mbv2"}) {
        const double ours = measure(net, batch, steps);
        std::optional<double> theirs;
        if (peer)
            theirs = dam_bench::run_and_read(
                fmt::format("python3 '{}' --net {} --batch {} --steps {}", script, net, batch, steps), "train_img_per_s");
        const std::string ratio = theirs ? fmt::format("{:.2f}", ours / *theirs) : "nan";
        std::printf("net=%s batch=%lld ours_img_per_s=%.0f pytorch_img_per_s=%s ratio=%s\n", net.c_str(),
                    static_cast<long long>(batch), ours, dam_bench::fmt_opt(theirs).c_str(), ratio.c_str());
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "train_step_cuda: %s\n", e.what());
    return 1;
}
