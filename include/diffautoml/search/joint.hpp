#pragma once
// The joint search: JointSearch<DA, NAS, HPO> runs docs/algorithm.md's iteration
//   1. sample augmentations (DA)            2. sample an architecture (NAS prepare)
//   3. forward, per-sample losses            4. one backward pass
//   5. DA update, alpha update, weight update (the HPO policy's differentiable SGD step)
//   6. hypergradient step on a clean validation batch
// then, once every layer is fixed (or the search share of the budget is spent), keeps training
// the derived architecture with the same weights while DA and HPO stay active; finally batch-norm
// statistics are recomputed on the derived path and the test set is evaluated. State is
// checkpointed atomically every few minutes and on request (SIGINT/SIGTERM in the binary), and a
// run resumes from its checkpoint to the same result as an uninterrupted one.
// This header holds the class: its types, construction, options record and the small members;
// the long member functions follow it by responsibility in joint_loop.ipp (the training loop),
// joint_dist.ipp (a step sharded over data-parallel ranks or micro-batches), joint_state.ipp (the
// checkpoint body; the file's framing is checkpoint.hpp's) and joint_finish.ipp (the final pass
// and the output files).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/io.hpp"
#include "../core/progress.hpp"
#include "../core/state.hpp"
#include "../da.hpp"
#include "../hpo.hpp"
#include "../nas.hpp"
#include "../nn/serialize.hpp"
#include "../optim/averaging.hpp"
#include "../optim/data_parallel.hpp"
#include "../optim/epoch.hpp"
#include "../version.hpp"
#include "budget.hpp"
#include "checkpoint.hpp"
#include "errors.hpp"
#include "make.hpp"
#include "options.hpp"
#include "report.hpp"

namespace diffautoml::search {

/// Something a policy type lacks, named at compile time.
template <class P>
concept Checkpointable = requires(P& p, const P& cp, ByteWriter& w, ByteReader& r) {
    cp.save_state(w);
    p.load_state(r);
};

namespace detail {
/// HPO<T> on the CPU, HPO<T, D> on another device (the policy must take a device parameter there).
template <template <class...> class P, class T, class D>
struct bind_device {
    using type = P<T, D>;
};
template <template <class...> class P, class T>
struct bind_device<P, T, cpu> {
    using type = P<T>;
};
/// Whether policy P runs sharded, over data-parallel ranks or micro-batches (it declares
/// `static constexpr bool data_parallel = true`; docs/distributed.md).
template <class P>
inline constexpr bool data_parallel_v = requires { requires P::data_parallel; };
}  // namespace detail

/// DA<T> and HPO<T> are policy templates (e.g. da::PairPolicyDA, hpo::HypergradLrWd), NAS a NAS
/// policy type with its search space and device (e.g. nas::DSNAS<nas::ShuffleSpace> on the CPU,
/// nas::DSNAS<nas::ShuffleSpace, float, cuda> on a GPU); T = float. D is the device the network
/// trains on (NAS's); there the HPO policy is HPO<T, D> and the DA policy augments device batches,
/// while data loading, the policies' small state and the logs stay on the host.
template <template <class...> class DA, class NAS, template <class...> class HPO, Device D = device_of_t<NAS>>
class JointSearch {
public:
    using T = typename NAS::value_type;
    using Space = typename NAS::space_type;
    using DaPolicy = DA<T>;
    using HpoPolicy = typename detail::bind_device<HPO, T, D>::type;
    using device_type = D;
    static_assert(std::is_same_v<T, float> || (std::is_same_v<T, double> && std::is_same_v<D, cpu>),
                  "JointSearch: the joint search trains float networks (NAS::value_type) on any device, or double "
                  "ones on the CPU (for tests that compare runs to 1e-9; such a run writes no model.bin)");
    static_assert(std::is_same_v<D, device_of_t<NAS>>,
                  "JointSearch: D must be the NAS policy's device (e.g. nas::DSNAS<Space, float, cuda> for cuda)");
    static_assert(da::DaPolicy<DaPolicy>,
                  "JointSearch: the DA policy does not satisfy da::DaPolicy (augment(images, ctx) -> Var, "
                  "update(losses, ctx), summary(k), searching(), policy_name); see docs/da.md");
    static_assert(!da::DaPolicy<DaPolicy> || da::DaPolicy<DaPolicy, D>,
                  "JointSearch: the DA policy cannot augment batches on this device (augment(Tensor<T, D>, ctx) -> "
                  "Var<T, D>); PairPolicyDA and NoAugment can on every device, see docs/search.md");
    static_assert(nas::SearchSpace<Space>,
                  "JointSearch: NAS::space_type is not a nas::SearchSpace (name, Options with in_channels, classes "
                  "and image, default_options(), build<T, D>(options, gen)); see docs/nas.md");
    static_assert(nas::NasPolicy<NAS, D>,
                  "JointSearch: the NAS policy does not satisfy nas::NasPolicy (space_type, prepare, update, "
                  "probabilities, derived, searching, policy_name); see docs/nas.md");
    static_assert(hpo::HpoPolicy<HpoPolicy, D>,
                  "JointSearch: the HPO policy does not satisfy hpo::HpoPolicy (training_loss, backward, step, values, "
                  "policy_name); see docs/hpo.md");
    static_assert(Checkpointable<DaPolicy> && Checkpointable<NAS> && Checkpointable<HpoPolicy>,
                  "JointSearch: every policy needs save_state(ByteWriter&) const and load_state(ByteReader&) so that "
                  "a run can be checkpointed and resumed");

    /// What the search is asked to do: each policy's options and the run's (search/options.hpp).
    using Options = JointOptions<options_of_t<DaPolicy>, options_of_t<NAS>, options_of_t<HpoPolicy>>;

    /// How the policies are made once the network exists. An empty factory makes the policy from
    /// its own options (Options::da, nas, hpo) with the constructor search/make.hpp names.
    struct Factories {
        std::function<std::unique_ptr<DaPolicy>(const Options&)> da;
        std::function<std::unique_ptr<NAS>(nas::Supernet<T, D>&, const Options&, std::int64_t steps_per_epoch)> nas;
        std::function<std::unique_ptr<HpoPolicy>(const std::vector<optim::ParamGroup<T, D>>&, const Options&,
                                                 std::function<double(std::int64_t)> lr_factor)>
            hpo;
    };

    /// A final run: `train` must be a training set (the validation slice is held out of it); `test`
    /// is only evaluated at the end.
    JointSearch(const data::Dataset& train, const data::Dataset& test, Options o, Factories f = {},
                typename Space::Options space = Space::default_options())
        : JointSearch(train, &test, std::move(o), std::move(f), space) {}
    /// A choice run (docs/protocol.md): no test set; the validation slice stays held out to the end
    /// (join_validation must be 1) and the result is the derived network's accuracy on it.
    JointSearch(const data::Dataset& train, Options o, Factories f = {},
                typename Space::Options space = Space::default_options())
        : JointSearch(train, static_cast<const data::Dataset*>(nullptr), std::move(o), std::move(f), space) {}

private:
    JointSearch(const data::Dataset& train, const data::Dataset* test, Options o, Factories f,
                typename Space::Options space)
        : opt_(std::move(o)), test_(test), gen_(opt_.run.seed) {
        DAM_CHECK(test_ || opt_.run.join_validation == 1, value_error,
                  "JointSearch: a choice run (no test set) reports the held-out validation accuracy, so the slice "
                  "must stay held out: set join_validation = 1 (got {})",
                  opt_.run.join_validation);
        DAM_CHECK(opt_.run.epochs >= 1 && opt_.run.batch >= 1, value_error, "JointSearch: epochs {} and batch {} must be >= 1",
                  opt_.run.epochs, opt_.run.batch);
        DAM_CHECK(opt_.run.search_fraction > 0 && opt_.run.search_fraction <= 1, value_error,
                  "JointSearch: search_fraction {} must be in (0, 1]", opt_.run.search_fraction);
        DAM_CHECK(opt_.run.weight_decay >= 0 && opt_.run.lr > 0 && std::isfinite(opt_.run.lr) &&
                      std::isfinite(opt_.run.weight_decay),
                  value_error,
                  "JointSearch: the initial learning rate {} must be > 0 and the weight decay {} >= 0 (RunOptions::lr "
                  "and weight_decay; --lr and --wd)",
                  opt_.run.lr, opt_.run.weight_decay);
        DAM_CHECK(opt_.run.join_validation > 0 && opt_.run.join_validation <= 1, value_error,
                  "JointSearch: join_validation must be in (0, 1] (a share of the steps; 1 = never), got {}",
                  opt_.run.join_validation);
        DAM_CHECK(opt_.run.average_from >= 0 && opt_.run.average_from <= 1, value_error,
                  "JointSearch: average_from must be in [0, 1] (a share of the steps; 1 = no weight averaging), got {}",
                  opt_.run.average_from);
        DAM_CHECK(opt_.run.micro_batches >= 1, value_error, "JointSearch: micro_batches must be >= 1, got {}",
                  opt_.run.micro_batches);
        DAM_CHECK(opt_.run.minutes >= 0 && opt_.run.checkpoint_minutes > 0, value_error,
                  "JointSearch: minutes {} must be >= 0 and checkpoint_minutes {} > 0", opt_.run.minutes,
                  opt_.run.checkpoint_minutes);
        data::check_finite(train, "JointSearch: the training set");
        if (test_) data::check_finite(*test_, "JointSearch: the test set");
        const std::int64_t n_val = validation_images(opt_.run.validation, train.size());
        DAM_CHECK(train.size() >= n_val + opt_.run.batch, value_error,
                  "JointSearch: {} training images are too few for a validation slice of {} and a batch of {}; lower "
                  "the batch size or the validation share",
                  train.size(), n_val, opt_.run.batch);
        auto [rest, val] = hpo::hold_out(train, n_val, opt_.run.seed ^ 0x5a17u);
        train_ = std::make_shared<data::Dataset>(std::move(rest));
        val_ = std::make_unique<hpo::ValidationSet>(std::move(val));
        space.classes = train.classes;
        space.in_channels = train.image_shape()[0];
        space.image = train.image_shape()[1];
        space_ = space;
        net_ = Space::template build<T, D>(space, gen_);
        loader_ = std::make_unique<data::BatchLoader>(*train_, opt_.run.batch, true, opt_.run.seed + 1, true);
        steps_per_epoch_ = loader_->batches_per_epoch();
        total_steps_ = opt_.run.epochs * steps_per_epoch_;
        da_ = f.da ? f.da(opt_) : make_da<DaPolicy>(opt_.da, opt_.run);
        nas_ = f.nas ? f.nas(*net_, opt_, steps_per_epoch_)
                     : make_nas<NAS>(*net_, opt_.nas, nas::Schedule{steps_per_epoch_, total_steps_});
        auto groups = optim::decay_groups(net_->named_parameters(), opt_.run.lr, opt_.run.weight_decay);
        auto factor = [this](std::int64_t step) { return lr_factor(step); };
        hpo_ = f.hpo ? f.hpo(groups, opt_, factor) : make_hpo<HpoPolicy>(groups, opt_.hpo, factor);
        loader_->start_epoch(0);
        weights_ = net_->parameters();
        if (sharded()) check_sharding();
        if (opt_.run.comm.size() > 1) {
            check_fingerprint();
            optim::broadcast_state(opt_.run.comm, *net_, 0);  // the same start everywhere, whatever the seed did
        }
    }

public:
    /// Whether this is a choice run (no test set).
    bool choice_run() const { return test_ == nullptr; }
    /// Whether a step runs in pieces: over data-parallel ranks (RunOptions::comm) or micro-batches.
    bool sharded() const { return opt_.run.comm.size() > 1 || opt_.run.micro_batches > 1; }
    /// This process's rank (0 in a one-process run); rank 0 writes the checkpoints and outputs.
    int rank() const { return opt_.run.comm.rank(); }

    JointSearch(const JointSearch&) = delete;  // the HPO policy calls back into this object
    JointSearch& operator=(const JointSearch&) = delete;

    /// Warm-up then cosine decay of the learning rate (a factor on the HPO policy's value).
    double lr_factor(std::int64_t step) const {
        const double warm = opt_.run.warmup_epochs * static_cast<double>(steps_per_epoch_);
        if (warm > 0 && static_cast<double>(step) < warm) return (static_cast<double>(step) + 1) / warm;
        return 0.5 * (1 + std::cos(3.14159265358979323846 * progress(step)));
    }

    /// Per-epoch records (also written to out_dir/log.jsonl).
    const std::vector<nlohmann::json>& log() const { return log_; }
    nas::Supernet<T, D>& net() { return *net_; }
    DaPolicy& da_policy() { return *da_; }
    NAS& nas_policy() { return *nas_; }
    HpoPolicy& hpo_policy() { return *hpo_; }
    std::int64_t step() const { return step_; }
    std::int64_t total_steps() const { return total_steps_; }
    std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
    /// The size of the validation slice for `option` (RunOptions::validation) of `n` training images.
    static std::int64_t validation_images(double option, std::int64_t n) {
        DAM_CHECK(std::isfinite(option) && option > 0 && (option < 1 || option == std::floor(option)), value_error,
                  "JointSearch: validation must be a share of the training set in (0, 1) or a whole number of images, "
                  "got {}",
                  option);
        const auto k = option < 1 ? std::llround(option * static_cast<double>(n)) : std::llround(option);
        DAM_CHECK(k >= 1 && k < n, value_error,
                  "JointSearch: a validation slice of {} ({} of {} training images) leaves nothing to train on or "
                  "holds no image; choose a share in (0, 1) or a count below {}",
                  k, option, n, n);
        return static_cast<std::int64_t>(k);
    }
    /// The images of the validation slice.
    std::int64_t validation_size() const { return val_->size(); }
    /// The validation batch: RunOptions::validation_batch, at most the slice.
    std::int64_t validation_batch() const { return std::min(opt_.run.validation_batch, val_->size()); }
    /// Whether the validation images have joined training (RunOptions::join_validation).
    bool validation_joined() const { return joined_; }
    /// The images training batches are drawn from now: the training set less the validation
    /// slice, or all of it once the slice has joined.
    const data::Dataset& training_images() const { return joined_ ? *full_ : *train_; }

    /// A description of the configuration; a checkpoint resumes only into the same one.
    nlohmann::json config_json() const {
        nlohmann::json c = run_json(opt_.run);
        c["space"] = std::string(Space::name);
        c["space_options"] = space_.to_json();
        c["da"] = std::string(DaPolicy::policy_name);
        c["nas"] = std::string(NAS::policy_name);
        c["hpo"] = std::string(HpoPolicy::policy_name);
        c["da_options"] = detail::options_json(detail::with_pixels(opt_.da, opt_.run.pixels));
        c["nas_options"] = detail::options_json(opt_.nas);
        c["hpo_options"] = detail::options_json(opt_.hpo);
        c["validation_images"] = val_->size();
        c["train_images"] = train_->size();
        return c;
    }

    std::string checkpoint_path() const { return opt_.run.out_dir + "/checkpoint.bin"; }

    /// Loads out_dir/checkpoint.bin; false when there is none. With several ranks, rank 0 reads it
    /// and sends it to every rank: a run checkpointed with N ranks resumes with M.
    bool resume() {
        const std::string path = checkpoint_path();
        if (opt_.run.comm.size() == 1) {
            if (opt_.run.out_dir.empty() || !std::filesystem::exists(path)) return false;
            load_checkpoint(path);
            return true;
        }
        std::vector<std::uint8_t> bytes;
        std::int64_t size = -1;
        if (rank() == 0 && !opt_.run.out_dir.empty() && std::filesystem::exists(path)) {
            bytes = read_file(path);
            size = static_cast<std::int64_t>(bytes.size());
        }
        opt_.run.comm.broadcast(std::span<std::int64_t>(&size, 1), 0);
        if (size < 0) return false;
        bytes.resize(static_cast<std::size_t>(size));
        opt_.run.comm.broadcast(std::span<std::uint8_t>(bytes), 0);
        load_checkpoint_bytes(bytes, "checkpoint '" + path + "' (read by rank 0)");
        return true;
    }

    /// What a finished run of this same configuration left in out_dir/result.json, or null when
    /// there is none: no file, a checkpoint beside it (a run in progress), an unreadable file, or
    /// one written by another configuration. Drivers that run many searches (diffautoml-ablation)
    /// use it to skip the runs that already finished when they are started again.
    nlohmann::json finished_result() const {
        const std::string path = opt_.run.out_dir + "/result.json";
        if (opt_.run.out_dir.empty() || !std::filesystem::exists(path) || std::filesystem::exists(checkpoint_path()))
            return nullptr;
        const auto bytes = read_file(path);
        auto r = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
        if (r.is_discarded() || !r.is_object() || !r.contains("test_accuracy") || !r.contains("config") ||
            r["config"] != config_json())
            return nullptr;
        return r;
    }

    /// Runs (or continues) the search to the end: training, derive, BN recalibration, test.
    JointResult run();

    // ---- checkpoints ---------------------------------------------------------------------------

    void save_checkpoint(const std::string& path) const { write_file_atomic(path, checkpoint_bytes()); }

    /// The checkpoint file's bytes: "DAMCKPT1" | u64 body length | u32 CRC-32 of the body | body.
    std::vector<std::uint8_t> checkpoint_bytes() const;

    void load_checkpoint(const std::string& path) { load_checkpoint_bytes(read_file(path), "checkpoint '" + path + "'"); }

    /// Restores the state saved by checkpoint_bytes(); `what` names the source in messages. Throws
    /// format_error for anything that is not a checkpoint of this configuration (and nothing else:
    /// tests/fuzz feeds it arbitrary bytes).
    void load_checkpoint_bytes(const std::vector<std::uint8_t>& bytes, const std::string& what);

private:
    std::int64_t epochs_planned() const { return (total_steps_ + steps_per_epoch_ - 1) / steps_per_epoch_; }

    /// With a time budget: the number of steps that fit, keeping 3% of the budget and the time the
    /// final recalibration and test pass will take (final_pass_reserve, from the epoch-end
    /// validation's time per image once there is one). Called after 30 steps timed past the warm-up
    /// and again after each epoch (epoch-end validation included). Until the architecture is fixed the time per step is the average so
    /// far, and the count only shrinks. From the first epoch end after it is fixed, the derived
    /// network alone is timed, and at the next epoch end the count may grow once (up to `epochs`):
    /// the derived network's steps cost less than the supernet's, and a plan made from search steps
    /// left 20 of 55 minutes unused in one run (docs/results.md, label smoothing). With
    /// retime_after_join the steps after the join are timed on their own and may grow the count
    /// once more: they skip the hypergradient's validation passes (BudgetPlan).
    void fix_budget(double seconds_so_far);
    static constexpr std::int64_t kBudgetWarmup = 10;  ///< steps not timed by the budget plan

    /// Seconds on the run's clock (RunOptions::clock, else a steady clock).
    double now() const {
        if (opt_.run.clock) return opt_.run.clock();
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    }

    /// The images the final pass runs forward: recalibration batches and the test set, twice with
    /// weight averaging.
    std::int64_t final_pass_images() const {
        const std::int64_t n = training_images().size(), b = std::min<std::int64_t>(256, n);
        const std::int64_t calib = std::min(opt_.run.recalibration_batches, n / b) * b;
        const std::int64_t held = joined_ || opt_.run.join_validation < 1 ? 0 : val_->size();
        return (calib + (test_ ? test_->size() : 0) + held) * (opt_.run.average_from < 1 ? 2 : 1);
    }
    /// Seconds per image of an evaluation pass: measured at the last epoch end, else bounded by a
    /// training step's time per image so far.
    double seconds_per_eval_image(double seconds_so_far) const {
        if (eval_seconds_per_image_ >= 0) return eval_seconds_per_image_;
        return seconds_so_far / static_cast<double>(std::max<std::int64_t>(1, step_ * opt_.run.batch));
    }

    /// How far the run is through its cosine and fade schedules at `step`.
    double progress(std::int64_t step) const {
        return schedule_progress(step, sched_from_step_, sched_from_t_, std::max<std::int64_t>(1, total_steps_));
    }

    void train_step(const data::Batch& batch, nas::NasContext<T, D>& nctx, hpo::HpoContext<T, D>& hctx);
    /// A sharded step's forward and backward passes (joint_dist.ipp): this rank's slice `x` in
    /// micro-batches, then one allreduce of the gradients with the loss, the correct count and the
    /// flags. Returns the slice's per-sample losses.
    Tensor<T> sharded_backward(const Var<T, D>& x, const Tensor<std::int32_t, D>& labels,
                               const Tensor<std::int32_t>& host_labels);
    /// HpoContext::validation_backward of a sharded step: this rank's pieces of a validation batch.
    void sharded_validation_backward();
    /// With DSNAS's per_rank_samples: the path of this rank's micro-batch j (the global piece
    /// rank * micro_batches + j) on the supernet's gates; otherwise nothing.
    void sample_piece(std::int64_t j);
    /// With RunOptions::sync_batch_norm on several ranks, the scope in which batch norm sums its
    /// statistics over them (ops::batchnorm2d_sync); otherwise none.
    std::optional<ops::SyncBatchNormScope> synchronise_batch_norm();
    /// Refuses a sharded run that cannot be one (batch sizes, policies), naming why.
    void check_sharding() const;
    /// Refuses ranks that differ in options, parameter shapes, data or library, naming the difference.
    void check_fingerprint();
    /// Before evaluation, checkpoints and export: a deferred hypergradient step applied (summed
    /// over the ranks: joint_dist.ipp), and with several ranks the batch-norm running statistics
    /// averaged over them.
    void settle_shared_state() {
        apply_deferred_hypergradient();
        if (opt_.run.comm.size() > 1) optim::average_buffers(opt_.run.comm, *net_);
    }
    /// A sharded step's hypergradient is left pending (HpoContext::defer_reduce) and summed with
    /// the next step's allreduce; where no step follows (an epoch's end, a checkpoint), this sums
    /// and applies it alone.
    void apply_deferred_hypergradient();
    bool checkpoint_due() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_).count() >
               opt_.run.checkpoint_minutes * 60;
    }

    /// The validation slice joins the training images; batches come from all of them from here on.
    void join_validation();

    [[noreturn]] void diverged(const std::string& what) const;
    /// Whether every weight gradient is finite (ops::all_finite: one read-back on a GPU).
    bool gradients_finite() const;

    /// Dataset images (float, on the host) as the network's input: on its device, in its precision.
    static Tensor<T, D> input(const Tensor<float>& x) {
        if constexpr (std::is_same_v<T, float>) return on_device<D>(x);
        else return cast<T>(x);
    }

    static std::int64_t correct(const Tensor<T>& z, const Tensor<std::int32_t>& labels) {
        return ops::count_correct(z, labels);
    }

    /// Loss and accuracy of `net` on `d` in evaluation mode.
    static std::pair<double, double> evaluate(nn::Module<T, D>& net, const data::Dataset& d);

    void end_epoch(double seconds);

    /// report.html from the records so far and, at the end, the result.
    void write_report(const nlohmann::json& result) const;

    void write_log() const;

    JointResult finish(double seconds);

    Options opt_;
    const data::Dataset* test_;
    Generator gen_;
    typename Space::Options space_;
    std::shared_ptr<data::Dataset> train_;
    std::shared_ptr<data::Dataset> full_;  ///< train_ and the validation slice, once joined
    std::unique_ptr<hpo::ValidationSet> val_;
    std::shared_ptr<nas::Supernet<T, D>> net_;
    std::unique_ptr<data::BatchLoader> loader_;
    std::int64_t steps_per_epoch_ = 0, total_steps_ = 0, step_ = 0;
    std::unique_ptr<DaPolicy> da_;
    std::unique_ptr<NAS> nas_;
    std::unique_ptr<HpoPolicy> hpo_;
    std::vector<Var<T, D>> weights_;
    Tensor<T, D> train_input_;  ///< the (augmented) images of the current training step
    std::vector<std::int64_t> arch_;
    bool derived_ = false, budget_fixed_ = false;
    double elapsed_before_ = 0, search_seconds_ = 0;
    double eval_seconds_per_image_ = -1;  ///< measured at the last epoch end (-1: not yet)
    BudgetPlan plan_;                     ///< with a time budget: the phases' timing marks
    std::int64_t sched_from_step_ = 0;    ///< the schedules run linearly from this step ...
    double sched_from_t_ = 0;             ///< ... and progress to the end (schedule_progress)
    bool joined_ = false;                 ///< the validation slice has joined training
    optim::WeightAverage<T, D> average_;  ///< RunOptions::average_from
    optim::EpochTotals epoch_;  ///< the running training loss and accuracy of the current epoch (checkpointed)
    std::vector<nlohmann::json> log_;
    std::chrono::steady_clock::time_point last_checkpoint_{};
    bool agreed_stop_ = false, agreed_due_ = false;  ///< a sharded step's flags, decided by every rank together
    std::vector<double> da_sums_;  ///< a sharded step's DA terms summed over the ranks (PairPolicyDA::reduced_terms)
};

}  // namespace diffautoml::search

// The member functions too long for the class body, by responsibility.
#include "joint_dist.ipp"
#include "joint_finish.ipp"
#include "joint_loop.ipp"
#include "joint_state.ipp"
