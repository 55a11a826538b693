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
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/progress.hpp"
#include "../core/state.hpp"
#include "../da.hpp"
#include "../hpo.hpp"
#include "../nas.hpp"
#include "../nn/serialize.hpp"
#include "../optim/averaging.hpp"
#include "../optim/epoch.hpp"
#include "budget.hpp"
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
    static_assert(std::is_same_v<T, float>, "JointSearch: the joint search trains float networks (NAS::value_type)");
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
    }

public:
    /// Whether this is a choice run (no test set).
    bool choice_run() const { return test_ == nullptr; }

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

    /// Loads out_dir/checkpoint.bin; false when there is none.
    bool resume() {
        const std::string path = checkpoint_path();
        if (opt_.run.out_dir.empty() || !std::filesystem::exists(path)) return false;
        load_checkpoint(path);
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
    JointResult run() {
        const double start = now();
        const double offset = elapsed_before_;
        auto elapsed = [&] { return offset + now() - start; };
        auto last_ckpt = std::chrono::steady_clock::now();
        if (!opt_.run.out_dir.empty()) diffautoml::create_directories(opt_.run.out_dir);
        nas::NasContext<T, D> nctx;
        nctx.gen = &gen_;
        nctx.weights = net_->parameters();
        hpo::HpoContext<T, D> hctx;
        hctx.validation = val_.get();
        hctx.validation_batch = validation_batch();
        hctx.forward = [&](const Tensor<float>& x) { return net_->forward(Var<T, D>(on_device<D>(x))); };
        data::Batch batch;
        hctx.train_loss = [&] { return hpo_->training_loss(net_->forward(Var<T, D>(train_input_)), on_device<D>(batch.labels)); };
        nctx.train_loss = [&] {
            return ops::cross_entropy(net_->forward(Var<T, D>(train_input_)), on_device<D>(batch.labels));
        };
        if constexpr (requires(const HpoPolicy& h) { h.weight_update(step_, weights_, std::vector<Tensor<T, D>>{}); })
            nctx.weight_update = [this](const std::vector<Tensor<T, D>>& g) { return hpo_->weight_update(step_, weights_, g); };
        nctx.val_loss = [&] {
            auto vb = val_->next(validation_batch());
            return ops::cross_entropy(net_->forward(Var<T, D>(on_device<D>(vb.images))), on_device<D>(vb.labels));
        };

        std::unique_ptr<ProgressBar> bar;
        while (step_ < total_steps_) {
            const std::int64_t epoch = step_ / steps_per_epoch_, in_epoch = step_ % steps_per_epoch_;
            if (in_epoch == 0 && !joined_ && derived_ &&
                static_cast<double>(step_) >= opt_.run.join_validation * static_cast<double>(total_steps_)) {
                join_validation();
                loader_->start_epoch(epoch);
                if (opt_.run.minutes > 0 && opt_.run.retime_after_join) plan_.begin(BudgetPlan::joined, step_, elapsed());
            }
            if (in_epoch == 0 && loader_->position() != 0) loader_->start_epoch(epoch);
            hctx.frozen = joined_;
            if (!bar && opt_.run.progress) {
                const std::int64_t epoch_steps = std::min(steps_per_epoch_, total_steps_ - epoch * steps_per_epoch_);
                bar = std::make_unique<ProgressBar>(epoch_steps, fmt::format("epoch {:2}/{}", epoch + 1, epochs_planned()));
            }
            batch = loader_->next();
            train_step(batch, nctx, hctx);
            ++step_;
            if (opt_.run.minutes > 0 && step_ == kBudgetWarmup) plan_.skip_warmup(step_, elapsed());
            if (opt_.run.minutes > 0 && step_ == kBudgetWarmup + 30 && !budget_fixed_) fix_budget(elapsed());
            if (bar)
                bar->update(step_ - epoch * steps_per_epoch_, epoch_.seen, epoch_.text());
            if (step_ % steps_per_epoch_ == 0 || step_ == total_steps_) {
                if (bar) bar->finish(epoch_.seen, "");
                bar.reset();
                end_epoch(elapsed());
                // Within the warm-up nothing is timed yet: the plan waits for the 30 timed steps.
                if (opt_.run.minutes > 0 && step_ < total_steps_ && step_ > kBudgetWarmup + 10) fix_budget(elapsed());
            }
            const bool stop = stop_flag().load() || (opt_.run.stop_after_steps >= 0 && step_ >= opt_.run.stop_after_steps);
            const bool due = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_ckpt).count() >
                             opt_.run.checkpoint_minutes * 60;
            if ((stop || due) && !opt_.run.out_dir.empty() && step_ < total_steps_) {
                elapsed_before_ = elapsed();
                save_checkpoint(checkpoint_path());
                last_ckpt = std::chrono::steady_clock::now();
            }
            if (stop && step_ < total_steps_)
                throw interrupted(fmt::format("the search stopped at step {} of {}{}", step_, total_steps_,
                                              opt_.run.out_dir.empty() ? ""
                                                                   : fmt::format("; resume with --resume (checkpoint {})",
                                                                                 checkpoint_path())));
        }
        return finish(elapsed());
    }

    // ---- checkpoints ---------------------------------------------------------------------------

    static constexpr char kMagic[8] = {'D', 'A', 'M', 'C', 'K', 'P', 'T', '1'};

    void save_checkpoint(const std::string& path) const { write_file_atomic(path, checkpoint_bytes()); }

    /// The checkpoint file's bytes: "DAMCKPT1" | u64 body length | u32 CRC-32 of the body | body.
    std::vector<std::uint8_t> checkpoint_bytes() const {
        ByteWriter body;
        body.put_string(config_json().dump());
        const auto model = nn::serialize_model(*net_);
        body.put<std::uint64_t>(model.size());
        body.put_bytes(model.data(), model.size());
        da_->save_state(body);
        nas_->save_state(body);
        hpo_->save_state(body);
        val_->save_state(body);
        put_generator(body, gen_);
        for (std::int64_t v : {step_, total_steps_, loader_->epoch(), loader_->position(), epoch_.seen, epoch_.correct,
                               static_cast<std::int64_t>(derived_), static_cast<std::int64_t>(budget_fixed_),
                               static_cast<std::int64_t>(joined_), sched_from_step_})
            body.put<std::int64_t>(v);
        plan_.save_state(body);
        body.put(sched_from_t_);
        body.put(epoch_.loss_sum);
        body.put(elapsed_before_);
        body.put(search_seconds_);
        put_ints(body, arch_);
        average_.save_state(body);
        body.put<std::uint64_t>(log_.size());
        for (const auto& r : log_) body.put_string(r.dump());
        ByteWriter file;
        file.put_bytes(kMagic, 8);
        file.put<std::uint64_t>(body.bytes.size());
        file.put<std::uint32_t>(crc32_of(body.bytes.data(), body.bytes.size()));
        file.put_bytes(body.bytes.data(), body.bytes.size());
        return std::move(file.bytes);
    }

    void load_checkpoint(const std::string& path) { load_checkpoint_bytes(read_file(path), "checkpoint '" + path + "'"); }

    /// Restores the state saved by checkpoint_bytes(); `what` names the source in messages. Throws
    /// format_error for anything that is not a checkpoint of this configuration (and nothing else:
    /// tests/fuzz feeds it arbitrary bytes).
    void load_checkpoint_bytes(const std::vector<std::uint8_t>& bytes, const std::string& what) {
        // The magic's last byte is the format version: a file from another version is named as such,
        // not as a foreign file.
        DAM_CHECK(bytes.size() >= 8 && std::equal(kMagic, kMagic + 7, bytes.begin()), format_error,
                  "{}: not a diffautoml checkpoint (bad magic); delete it or point --out elsewhere", what);
        DAM_CHECK(bytes[7] == static_cast<std::uint8_t>(kMagic[7]), format_error,
                  "{}: written in checkpoint format version '{}', this build reads version '{}'; resume it with the "
                  "build that wrote it, or delete it to start over",
                  what, static_cast<char>(bytes[7]), kMagic[7]);
        DAM_CHECK(bytes.size() >= 20, format_error,
                  "{}: {} bytes, shorter than a checkpoint's header; the file is truncated: delete it to start over",
                  what, bytes.size());
        ByteReader head(bytes.data() + 8, bytes.size() - 8, what);
        const auto n = head.get<std::uint64_t>();
        const auto crc = head.get<std::uint32_t>();
        DAM_CHECK(n == head.remaining(), format_error,
                  "{}: {} bytes of state expected, {} present; the file is truncated or corrupt: delete it to start "
                  "over (or restore a copy)",
                  what, n, head.remaining());
        const std::uint8_t* p = bytes.data() + 20;
        DAM_CHECK(crc32_of(p, n) == crc, format_error,
                  "{}: checksum mismatch, the file is corrupt; delete it to start over (or restore a copy)", what);
        ByteReader r(p, n, what);
        const auto saved = nlohmann::json::parse(r.get_string(), nullptr, false);
        DAM_CHECK(!saved.is_discarded() && saved == config_json(), format_error,
                  "{}: it was written by a different configuration ({}); this run is {}. Use the same options or "
                  "another --out",
                  what, saved.is_discarded() ? std::string("unreadable") : saved.dump(), config_json().dump());
        const auto msize = r.get<std::uint64_t>();
        const auto* m = r.get_bytes(msize);
        nn::deserialize_model(*net_, std::vector<std::uint8_t>(m, m + msize), what);
        da_->load_state(r);
        nas_->load_state(r);
        hpo_->load_state(r);
        val_->load_state(r);
        get_generator(r, gen_, what);
        step_ = r.get<std::int64_t>();
        total_steps_ = r.get<std::int64_t>();
        const auto e = r.get<std::int64_t>(), pos = r.get<std::int64_t>();
        epoch_.seen = r.get<std::int64_t>();
        epoch_.correct = r.get<std::int64_t>();
        derived_ = r.get<std::int64_t>() != 0;
        budget_fixed_ = r.get<std::int64_t>() != 0;
        if (r.get<std::int64_t>() != 0 && !joined_) join_validation();
        sched_from_step_ = r.get<std::int64_t>();
        plan_.load_state(r);
        sched_from_t_ = r.get<double>();
        loader_->seek(e, pos);
        epoch_.loss_sum = r.get<double>();
        elapsed_before_ = r.get<double>();
        search_seconds_ = r.get<double>();
        arch_.clear();
        get_ints(r, arch_, what);
        if (derived_) net_->set_architecture(arch_);
        average_.load_state(r);
        log_.clear();
        const auto records = r.get<std::uint64_t>();
        for (std::uint64_t k = 0; k < records; ++k) {
            auto record = nlohmann::json::parse(r.get_string(), nullptr, false);
            DAM_CHECK(!record.is_discarded(), format_error, "{}: log record {} is not valid JSON; the file is corrupt",
                      what, k);
            log_.push_back(std::move(record));
        }
        DAM_CHECK(r.remaining() == 0, format_error, "{}: {} unexpected bytes at the end", what, r.remaining());
    }

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
    void fix_budget(double seconds_so_far) {
        budget_fixed_ = true;
        const double budget = opt_.run.minutes * 60 * 0.97 - final_pass_reserve(final_pass_images(), seconds_per_eval_image(seconds_so_far));
        if (derived_) plan_.begin(BudgetPlan::derived, step_, seconds_so_far);
        const double t = progress(step_);
        const std::int64_t planned = total_steps_;
        total_steps_ = plan_.replan(step_, seconds_so_far, budget, total_steps_, opt_.run.epochs * steps_per_epoch_);
        // After the join a new count bends the schedules from where they are (schedule_progress):
        // the growth would otherwise raise the learning rate by half and the share of augmented
        // images with it (the first measured run, docs/results.md).
        if (opt_.run.retime_after_join && joined_ && total_steps_ != planned) {
            sched_from_step_ = step_;
            sched_from_t_ = t;
        }
    }
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

    void train_step(const data::Batch& batch, nas::NasContext<T, D>& nctx, hpo::HpoContext<T, D>& hctx) {
        // The DA policy's fade reads step / total_steps: give it the schedule's progress.
        const auto da_step = static_cast<std::int64_t>(std::llround(progress(step_) * static_cast<double>(total_steps_)));
        da::DaContext dctx{&gen_, da_step, total_steps_};
        nctx.step = step_;
        nctx.total_steps = std::max<std::int64_t>(1, static_cast<std::int64_t>(opt_.run.search_fraction * static_cast<double>(total_steps_)));
        if constexpr (requires { hpo_->rates(step_).lr.front(); }) nctx.weight_lr = hpo_->rates(step_).lr.front();
        else nctx.weight_lr = hpo_->values().front().second * lr_factor(step_);
        hctx.step = step_;
        const Tensor<std::int32_t, D> labels = on_device<D>(batch.labels);
        auto x = da_->augment(on_device<D>(batch.images), dctx);                 // 1
        train_input_ = x.value();  // what nctx.train_loss sees: the batch the weight step trains on
        if (!derived_) nas_->prepare(nctx);                                       // 2
        auto logits = net_->forward(x);                                           // 3
        auto loss = hpo_->training_loss(logits, labels);
        const float l = on_host(loss.value()).item();
        if (!std::isfinite(l)) diverged(fmt::format("the training loss became non-finite ({})", l));
        Tensor<T> per_sample;
        const Tensor<T> host_logits = on_host(logits.value());
        {
            NoGradGuard no_grad;
            per_sample =
                on_host(ops::cross_entropy(Var<T, D>(logits.value()), labels, {0.0, ops::Reduction::none}).value());
        }
        hpo_->backward(loss, logits, labels);                                     // 4
        // NaN inputs can give a finite loss (ReLU maps NaN to 0) but non-finite gradients: check
        // them too, before anything is updated.
        if (!gradients_finite()) diverged("the weight gradients became non-finite");
        if constexpr (requires { da_->needs_unrolled_gradient(); })
            if (da_->needs_unrolled_gradient()) {
                const optim::UpdateFn<T, D> update =
                    nctx.weight_update ? nctx.weight_update : [lr = nctx.weight_lr](const std::vector<Tensor<T, D>>& g) {
                        NoGradGuard no_grad;
                        std::vector<Tensor<T, D>> u;
                        for (const auto& t : g) u.push_back(ops::mul_scalar(Var<T, D>(t), lr).value());
                        return u;
                    };
                dctx.unrolled_image_gradient = da::unrolled_image_gradient<T, D>(
                    weights_, update, nctx.val_loss,
                    [&](const Var<T, D>& xv) { return hpo_->training_loss(net_->forward(xv), labels); }, x.value());
            }
        da_->update(per_sample, dctx);                                            // 5: pi
        if (!derived_) nas_->update(nctx);                                        //    alpha
        hpo_->step(hctx);                                                         //    w, then 6: eta, lambda
        epoch_.add(static_cast<double>(l), host_logits, batch.labels);
        if (!derived_ && (!nas_->searching() || step_ + 1 >= nctx.total_steps)) {
            arch_ = nas_->derived();
            net_->set_architecture(arch_);
            derived_ = true;
        }
    }

    /// The validation slice joins the training images; batches come from all of them from here on.
    void join_validation() {
        full_ = std::make_shared<data::Dataset>(data::concatenate(*train_, val_->data()));
        loader_ = std::make_unique<data::BatchLoader>(*full_, opt_.run.batch, true, opt_.run.seed + 5, true);
        joined_ = true;
    }

    [[noreturn]] void diverged(const std::string& what) const {
        throw divergence_error(fmt::format(
            "JointSearch: {} at step {} (epoch {}); nothing was updated with it{}. Try a lower --lr, a narrower "
            "learning-rate range for HPO or a smaller DA magnitude, and check the data for NaN",
            what, step_, step_ / steps_per_epoch_ + 1,
            opt_.run.out_dir.empty() ? "" : "; the last checkpoint is intact and --resume continues from it"));
    }
    /// Whether every weight gradient is finite. On a GPU: one sum of 0 * g over all of them (NaN
    /// exactly when some value is NaN or Inf), read back once.
    bool gradients_finite() const {
        if constexpr (std::is_same_v<D, cpu>) {
            for (const auto& p : weights_) {
                if (!p.grad().defined()) continue;
                const T* g = p.grad().data();
                bool ok = true;
                for (std::int64_t i = 0; i < p.grad().numel(); ++i) ok &= std::isfinite(g[i]);
                if (!ok) return false;
            }
            return true;
        } else {
            NoGradGuard no_grad;
            Var<T, D> total;
            for (const auto& p : weights_) {
                if (!p.grad().defined()) continue;
                auto z = ops::sum(ops::mul_scalar(Var<T, D>(p.grad()), 0.0));
                total = total.defined() ? ops::add(total, z) : z;
            }
            return !total.defined() || std::isfinite(static_cast<double>(on_host(total.value())[0]));
        }
    }

    static std::int64_t correct(const Tensor<T>& z, const Tensor<std::int32_t>& labels) {
        return ops::count_correct(z, labels);
    }

    /// Loss and accuracy of `net` on `d` in evaluation mode.
    static std::pair<double, double> evaluate(nn::Module<T, D>& net, const data::Dataset& d) {
        NoGradGuard no_grad;
        net.eval();
        data::BatchLoader loader(d, 1000, false, 0);
        std::int64_t c = 0;
        double loss = 0;
        while (loader.has_next()) {
            auto b = loader.next();
            const auto z = net.forward(Var<T, D>(on_device<D>(b.images)));
            c += correct(on_host(z.value()), b.labels);
            loss += static_cast<double>(
                on_host(ops::cross_entropy(z, on_device<D>(b.labels), {0.0, ops::Reduction::sum}).value()).item());
        }
        net.train();
        return {loss / static_cast<double>(d.size()), static_cast<double>(c) / static_cast<double>(d.size())};
    }

    void end_epoch(double seconds) {
        if (derived_ && search_seconds_ == 0) search_seconds_ = seconds;
        if (opt_.run.average_from < 1 && derived_ &&
            static_cast<double>(step_) >= opt_.run.average_from * static_cast<double>(total_steps_))
            average_.add(weights_);
        const auto arch = derived_ ? arch_ : nas_->derived();
        if (!derived_) net_->set_architecture(arch);
        const double eval_start = now();
        const auto [val_loss, val_acc] = evaluate(*net_, val_->data());
        eval_seconds_per_image_ = (now() - eval_start) / static_cast<double>(val_->size());
        nlohmann::json probs = nlohmann::json::object();
        const auto p = nas_->probabilities();
        for (std::size_t d = 0; d < p.size(); ++d) probs[net_->decisions()[d].name] = p[d];
        nlohmann::json rec = {{"epoch", step_ / steps_per_epoch_ + (step_ % steps_per_epoch_ ? 1 : 0)},
                              {"step", step_},
                              {"phase", derived_ ? "train" : "search"},
                              {"train_loss", epoch_.loss()},
                              {"train_accuracy", epoch_.accuracy()},
                              {"val_loss", val_loss},
                              {"val_accuracy", val_acc},
                              {"val_in_training", joined_},
                              {"tau", nullptr},
                              {"lr_factor", lr_factor(step_)},
                              {"architecture_probabilities", probs},
                              {"derived", net_->choice_names(arch)},
                              {"da_top", detail::policy_json(da_->summary(10))},
                              {"hyperparameters", detail::values_json(*hpo_)},
                              {"averaged_weights", average_.count()},
                              {"wall_seconds", seconds}};
        if constexpr (requires { nas_->temperature(); }) rec["tau"] = nas_->temperature();
        if constexpr (requires { da_->probabilities(); }) rec["da_probabilities"] = da_->probabilities();
        if constexpr (requires { da_->options().ops; }) {
            std::vector<std::string> names;
            for (da::Op op : da_->options().ops) names.emplace_back(da::op_name(op));
            rec["da_op_names"] = names;
        }
        log_.push_back(rec);
        epoch_.reset();
        if (opt_.run.progress)
            fmt::print("epoch {} {} train_loss={:.4f} train_accuracy={:.4f} val_loss={:.4f} val_accuracy={:.4f}{} {} "
                       "seconds={:.0f}\n",
                       rec["epoch"].template get<std::int64_t>(), rec["phase"].template get<std::string>(),
                       rec["train_loss"].template get<double>(), rec["train_accuracy"].template get<double>(), val_loss,
                       val_acc, joined_ ? " (trained on)" : "", fmt::join(net_->choice_names(arch), ","), seconds);
        write_log();
        write_report({});
    }

    /// report.html from the records so far and, at the end, the result.
    void write_report(const nlohmann::json& result) const {
        if (opt_.run.out_dir.empty()) return;
        nlohmann::json r = result;
        if (r.is_null()) r = {{"config", config_json()}};
        write_text_atomic(opt_.run.out_dir + "/report.html", html_report(log_, r));
    }

    void write_log() const {
        if (opt_.run.out_dir.empty()) return;
        std::string s;
        for (const auto& r : log_) s += r.dump() + "\n";
        write_file_atomic(opt_.run.out_dir + "/log.jsonl", std::vector<std::uint8_t>(s.begin(), s.end()));
    }

    JointResult finish(double seconds) {
        if (!derived_) {
            arch_ = nas_->derived();
            derived_ = true;
        }
        // The derived network with fresh batch-norm statistics: of the last weights, then (with
        // weight averaging) of their average, which becomes the model.
        auto derive_recalibrated = [&] {
            auto net = nas::derive<Space>(*net_, arch_);
            const auto calib_batch = std::min<std::int64_t>(256, training_images().size());
            data::BatchLoader calib(training_images(), calib_batch, true, opt_.run.seed + 3, true);
            calib.start_epoch(0);
            nn::recalibrate_batch_norm(*net, std::min(opt_.run.recalibration_batches, calib.batches_per_epoch()),
                                       [&] { return on_device<D>(calib.next().images); });
            return net;
        };
        auto derived = derive_recalibrated();
        JointResult res;
        // The test set once (a final run), the validation slice while it is held out.
        auto measure = [&](nn::Module<T, D>& net) {
            if (test_) res.test_accuracy = evaluate(net, *test_).second;
            if (!joined_) res.val_accuracy = evaluate(net, val_->data()).second;
        };
        measure(*derived);
        if (average_.count() > 0) {
            res.test_accuracy_last = res.test_accuracy;
            res.val_accuracy_last = res.val_accuracy;
            res.averaged = average_.count();
            std::vector<Tensor<T>> last;  // the supernet keeps its last weights (run() may be called again)
            for (const auto& p : weights_) last.push_back(on_host(p.value()).clone());
            average_.copy_to(weights_);
            derived = derive_recalibrated();
            for (std::size_t i = 0; i < weights_.size(); ++i) copy_from_host(weights_[i].value(), last[i]);
            measure(*derived);
        }
        std::shared_ptr<nas::Supernet<T, cpu>> host_model;  // the result and model.bin live on the host
        if constexpr (std::is_same_v<D, cpu>) host_model = derived;
        else host_model = nas::derive_on<Space, cpu>(*derived, arch_);
        res.wall_seconds = seconds;
        res.search_seconds = search_seconds_ > 0 ? search_seconds_ : seconds;
        res.steps = step_;
        res.architecture = arch_;
        res.architecture_names = net_->choice_names(arch_);
        res.hyperparameters = detail::values_json(*hpo_);
        res.da_policy = detail::policy_json(da_->summary(10));
        res.model = host_model;
        if (!opt_.run.out_dir.empty()) {
            const nlohmann::json extra = {{"config", config_json()},
                                          {"hyperparameters", res.hyperparameters},
                                          {"da_policy", res.da_policy},
                                          {"pixels", {{"mean", opt_.run.pixels.mean}, {"std", opt_.run.pixels.std}}}};
            nas::save_derived(opt_.run.out_dir + "/model.bin", *host_model, extra);
            write_text_atomic(opt_.run.out_dir + "/architecture.json", nas::architecture_json(*net_, arch_).dump(2) + "\n");
            auto number = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
            nlohmann::json result = {{"test_accuracy", number(res.test_accuracy)},
                                           {"val_accuracy", number(res.val_accuracy)},
                                           {"run", test_ ? "final" : "choice"},
                                           {"seed_role", opt_.run.seed >= headline_seed ? "headline" : "choice"},
                                           {"host", host_json()},
                                           {"device", std::string(D::name)},
                                           {"wall_seconds", res.wall_seconds},
                                           {"search_seconds", res.search_seconds},
                                           {"search_cost_cpu_minutes", res.wall_seconds * num_threads() / 60.0},
                                           {"steps", res.steps},
                                           {"architecture", res.architecture_names},
                                           {"macs", net_->path_macs(arch_)},
                                           {"hyperparameters", res.hyperparameters},
                                           {"da_policy", res.da_policy},
                                           {"config", config_json()}};
            if (res.averaged > 0) {
                result["test_accuracy_last"] = number(res.test_accuracy_last);
                result["val_accuracy_last"] = number(res.val_accuracy_last);
                result["averaged_weights"] = res.averaged;
            }
            write_text_atomic(opt_.run.out_dir + "/result.json", result.dump(2) + "\n");
            write_report(result);
            std::filesystem::remove(checkpoint_path());
        }
        return res;
    }

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
};

}  // namespace diffautoml::search
