#pragma once
// The Google Benchmark harness of the kernel microbenchmarks (conv_matmul, augment): each case is
// two benchmarks, `NAME/ours` and `NAME/pytorch`, timed the same way (one call at a time, the
// clock around the call only, any cache eviction before it untimed: manual time); the peer's
// calls go to a long-lived `torch_ops.py --serve` process. Repetitions (5 by default) of all
// benchmarks run in random interleaved order, so both sides see the same drift of the machine; a
// summary at the end gives each side's median with its range and the ratio of the medians.
//
// Command line: --threads T (2), --no-peer, the program's own options (key value), and Google
// Benchmark's (--benchmark_filter=REGEX, --benchmark_repetitions=N, --benchmark_format=json, ...).
// With --benchmark_format=json, stdout holds only the JSON; the peer's line and the summary go to
// stderr.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <diffautoml/diffautoml.hpp>

#include "peer.hpp"

namespace dam_bench {

/// One op's work: `before` untimed, then `call` timed, per iteration. `units` of `counter` per
/// call ("GFLOPS" for FLOP, "GB/s" for bytes; "" for none: the summary then compares times).
struct Case {
    std::string name;       ///< e.g. conv2d_fwd:small.block1_3x3_32
    std::string peer_args;  ///< the request line for torch_ops.py; empty: no peer for this case
    double units = 0;
    const char* counter = "";
    std::function<void()> before, call;
};

inline void run_ours(benchmark::State& state, const Case& c) {
    using Clock = std::chrono::steady_clock;
    for (int i = 0; i < 2; ++i) c.before(), c.call();
    for (auto _ : state) {
        c.before();
        const auto t = Clock::now();
        c.call();
        state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t).count());
    }
    if (*c.counter) state.counters[c.counter] = benchmark::Counter(c.units / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

inline void run_peer(benchmark::State& state, const Case& c, PeerServer& peer) {
    for (auto _ : state) state.SetIterationTime(peer.request(c.peer_args, "seconds"));
    if (*c.counter) state.counters[c.counter] = benchmark::Counter(c.units / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

/// Forwards every report to the reporter Google Benchmark would have used and keeps each
/// benchmark's median, min and max (of its rate counter, or of its time in microseconds).
class SummaryReporter : public benchmark::BenchmarkReporter {
public:
    explicit SummaryReporter(std::unique_ptr<benchmark::BenchmarkReporter> inner) : inner_(std::move(inner)) {}
    bool ReportContext(const Context& context) override { return inner_->ReportContext(context); }
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& r : runs) {
            if (r.run_type != Run::RT_Aggregate) continue;
            const std::string name = r.run_name.function_name;
            if (r.aggregate_name == "median") time_medians_[name] = r.GetAdjustedRealTime();
            bool rate = false;
            for (const auto& [counter, value] : r.counters)
                if (counter == "GFLOPS" || counter == "GB/s") {
                    stats_[name][r.aggregate_name] = value;
                    units_[name] = counter == "GFLOPS" ? "gflops" : "gbs";
                    rate = true;
                }
            if (!rate) {
                stats_[name][r.aggregate_name] = r.GetAdjustedRealTime();  // in the benchmark's unit (us)
                units_[name] = "us";
            }
        }
        inner_->ReportRuns(runs);
    }
    void Finalize() override { inner_->Finalize(); }
    /// Each benchmark's median time per call, in microseconds.
    const std::map<std::string, double>& time_medians() const { return time_medians_; }

    /// One line per case: `op=NAME ours_UNIT=MEDIAN [MIN, MAX] pytorch_UNIT=... ratio=...`, the
    /// ratio being ours over the peer's for rates and the peer's over ours for times (> 1: we are faster).
    void print_summary(std::FILE* out) const {
        for (const auto& [name, s] : stats_) {
            if (!name.ends_with("/ours")) continue;
            const std::string op = name.substr(0, name.size() - 5);
            const std::string unit = units_.at(name);
            const auto peer = stats_.find(op + "/pytorch");
            const auto range = [](const std::map<std::string, double>& m) {
                return fmt::format("{:.1f} [{:.1f}, {:.1f}]", m.at("median"), m.at("min"), m.at("max"));
            };
            const double ratio = peer == stats_.end() ? 0
                                 : unit == "us"      ? peer->second.at("median") / s.at("median")
                                                     : s.at("median") / peer->second.at("median");
            fmt::print(out, "op={} ours_{}={} pytorch_{}={} ratio={}\n", op, unit, range(s), unit,
                       peer == stats_.end() ? "nan" : range(peer->second),
                       peer == stats_.end() ? "nan" : fmt::format("{:.2f}", ratio));
        }
    }

private:
    std::unique_ptr<benchmark::BenchmarkReporter> inner_;
    std::map<std::string, std::map<std::string, double>> stats_;
    std::map<std::string, std::string> units_;
    std::map<std::string, double> time_medians_;
};

inline double stat_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
inline double stat_max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

/// The command line of a kernel benchmark.
struct Options {
    int threads = 2;
    bool peer = true;
    std::string format = "console";
    std::map<std::string, std::string> own;  ///< the program's own `--key value` options
    std::FILE* text = stdout;                ///< where human-readable lines go
};

/// Parses our options, the program's own (`own_keys`, each taking a value, with their defaults in
/// `defaults`), and hands the rest to Google Benchmark with our defaults (5 interleaved repetitions).
inline Options parse(const char* program, int argc, char** argv, const std::map<std::string, std::string>& defaults = {}) {
    Options o;
    o.own = defaults;
    std::vector<std::string> args = {argv[0], "--benchmark_repetitions=5", "--benchmark_enable_random_interleaving=true",
                                     "--benchmark_min_time=0.2"};
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (k == "--threads" && i + 1 < argc) o.threads = std::stoi(argv[++i]);
        else if (k == "--no-peer") o.peer = false;
        else if (defaults.count(k) && i + 1 < argc) o.own[k] = argv[++i];
        else if (k.starts_with("--benchmark_format=")) {
            o.format = k.substr(19);
            if (o.format != "json" && o.format != "console")
                throw diffautoml::value_error(fmt::format("{}: {}: console or json", program, k));
            args.push_back(k);
        } else if (k.starts_with("--benchmark_")) args.push_back(k);
        else {
            std::string own;
            for (const auto& [key, value] : defaults) own += fmt::format(", {} X ({})", key, value);
            throw diffautoml::value_error(fmt::format("{}: unknown option '{}' (options: --threads T, --no-peer{}, "
                                                      "--benchmark_*; --benchmark_list_tests lists the benchmarks)",
                                                      program, k, own));
        }
    }
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    int cargc = static_cast<int>(cargv.size());
    benchmark::Initialize(&cargc, cargv.data());
    o.text = o.format == "console" ? stdout : stderr;
    return o;
}

/// The peer server with OpenBLAS as its BLAS (Debian's libopenblas0-pthread, selected for its
/// process only) and the given threads; its first line (BLAS, oneDNN ISA) is printed.
inline std::unique_ptr<PeerServer> start_peer(const Options& o) {
    if (!o.peer) return nullptr;
    auto peer = std::make_unique<PeerServer>(fmt::format(
        "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS={0} OMP_NUM_THREADS={0} "
        "/usr/bin/python3 '{1}/torch_ops.py' --serve {0}",
        o.threads, DAM_BENCH_DIR));
    fmt::print(o.text, "{}\n", peer->hello());
    std::fflush(o.text);
    return peer;
}

/// Registers every case (and its peer twin when it has one and a peer runs), runs them, prints the
/// summary, and returns each benchmark's median time per call in microseconds.
inline std::map<std::string, double> run(const Options& o, const std::vector<Case>& cases, PeerServer* peer) {
    for (const auto& c : cases) {
        benchmark::RegisterBenchmark((c.name + "/ours").c_str(), [&c](benchmark::State& s) { run_ours(s, c); })
            ->UseManualTime()->Unit(benchmark::kMicrosecond)->ComputeStatistics("min", stat_min)->ComputeStatistics("max", stat_max);
        if (peer && !c.peer_args.empty())
            benchmark::RegisterBenchmark((c.name + "/pytorch").c_str(), [&c, peer](benchmark::State& s) { run_peer(s, c, *peer); })
                ->UseManualTime()->Unit(benchmark::kMicrosecond)->ComputeStatistics("min", stat_min)->ComputeStatistics("max", stat_max);
    }
    std::unique_ptr<benchmark::BenchmarkReporter> inner;
    if (o.format == "json") inner = std::make_unique<benchmark::JSONReporter>();
    else inner = std::make_unique<benchmark::ConsoleReporter>();
    SummaryReporter reporter(std::move(inner));
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    fmt::print(o.text, "\nmedian [min, max] of each side's repetitions, interleaved; ratio > 1: ours is faster "
                       "(rates: ours / pytorch; times: pytorch / ours)\n");
    reporter.print_summary(o.text);
    return reporter.time_medians();
}

}  // namespace dam_bench
