// JointSearch's training loop (included by joint.hpp, after the class; not a header of its own):
// run() steps the iteration of docs/algorithm.md until the planned steps are done, train_step() is
// one iteration (augment, sample a path, forward, backward, the three updates), end_epoch() logs
// and validates, fix_budget() plans the steps a time budget allows, and the divergence checks.

namespace diffautoml::search {

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
JointResult JointSearch<DA, NAS, HPO, D>::run() {
    const double start = now();
    const double offset = elapsed_before_;
    auto elapsed = [&] { return offset + now() - start; };
    last_checkpoint_ = std::chrono::steady_clock::now();
    if (!opt_.run.out_dir.empty() && rank() == 0) diffautoml::create_directories(opt_.run.out_dir);
    nas::NasContext<T, D> nctx;
    nctx.gen = &gen_;
    nctx.weights = net_->parameters();
    hpo::HpoContext<T, D> hctx;
    hctx.validation = val_.get();
    hctx.validation_batch = validation_batch();
    hctx.forward = [&](const Tensor<float>& x) { return net_->forward(Var<T, D>(input(x))); };
    data::Batch batch;
    hctx.train_loss = [&] { return hpo_->training_loss(net_->forward(Var<T, D>(train_input_)), on_device<D>(batch.labels)); };
    nctx.train_loss = [&] {
        return ops::cross_entropy(net_->forward(Var<T, D>(train_input_)), on_device<D>(batch.labels));
    };
    if constexpr (requires(const HpoPolicy& h) { h.weight_update(step_, weights_, std::vector<Tensor<T, D>>{}); })
        nctx.weight_update = [this](const std::vector<Tensor<T, D>>& g) { return hpo_->weight_update(step_, weights_, g); };
    nctx.val_loss = [&] {
        auto vb = val_->next(validation_batch());
        return ops::cross_entropy(net_->forward(Var<T, D>(input(vb.images))), on_device<D>(vb.labels));
    };
    if (sharded()) {  // joint_dist.ipp: the validation pass in pieces, the hypergradient summed over the ranks
        hctx.validation_backward = [this] { sharded_validation_backward(); };
        hctx.reduce = [this](std::span<double> v) { opt_.run.comm.allreduce(v, dist::ReduceOp::sum); };
        hctx.defer_reduce = true;  // the hypergradient rides in the next step's allreduce
    }

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
        if (!bar && opt_.run.progress && rank() == 0) {
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
        // A sharded step decided the signal and the checkpoint's time in its allreduce, so that
        // every rank stops or checkpoints at the same step.
        const bool stop = (sharded() ? agreed_stop_ : stop_flag().load()) ||
                          (opt_.run.stop_after_steps >= 0 && step_ >= opt_.run.stop_after_steps);
        const bool due = sharded() ? agreed_due_ : checkpoint_due();
        if ((stop || due) && !opt_.run.out_dir.empty() && step_ < total_steps_) {
            elapsed_before_ = elapsed();
            settle_shared_state();
            if (rank() == 0) save_checkpoint(checkpoint_path());
            last_checkpoint_ = std::chrono::steady_clock::now();
        }
        if (stop && step_ < total_steps_)
            throw interrupted(fmt::format("the search stopped at step {} of {}{}", step_, total_steps_,
                                          opt_.run.out_dir.empty() ? ""
                                                               : fmt::format("; resume with --resume (checkpoint {})",
                                                                             checkpoint_path())));
    }
    return finish(elapsed());
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::fix_budget(double seconds_so_far) {
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
    // Clocks differ between ranks: rank 0's plan is every rank's, so that all run the same steps.
    if (opt_.run.comm.size() > 1) {
        double plan[3] = {static_cast<double>(total_steps_), static_cast<double>(sched_from_step_), sched_from_t_};
        opt_.run.comm.broadcast(std::span<double>(plan), 0);
        total_steps_ = static_cast<std::int64_t>(plan[0]);
        sched_from_step_ = static_cast<std::int64_t>(plan[1]);
        sched_from_t_ = plan[2];
    }
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::train_step(const data::Batch& batch, nas::NasContext<T, D>& nctx, hpo::HpoContext<T, D>& hctx) {
    // The DA policy's fade reads step / total_steps: give it the schedule's progress.
    const auto da_step = static_cast<std::int64_t>(std::llround(progress(step_) * static_cast<double>(total_steps_)));
    da::DaContext dctx{&gen_, da_step, total_steps_};
    nctx.step = step_;
    nctx.total_steps = std::max<std::int64_t>(1, static_cast<std::int64_t>(opt_.run.search_fraction * static_cast<double>(total_steps_)));
    if constexpr (requires { hpo_->rates(step_).lr.front(); }) nctx.weight_lr = hpo_->rates(step_).lr.front();
    else nctx.weight_lr = hpo_->values().front().second * lr_factor(step_);
    hctx.step = step_;
    // A sharded step (joint_dist.ipp) takes this rank's slice of the global batch; the DA policy
    // keys its draws by the global image index and sums its terms over the ranks.
    const std::int64_t ranks = opt_.run.comm.size(), n = batch.labels.numel() / ranks, first = n * rank();
    const Tensor<float> images = ranks > 1 ? batch.images.slice_batch(first, first + n) : batch.images;
    const Tensor<std::int32_t> host_labels = ranks > 1 ? batch.labels.slice_batch(first, first + n) : batch.labels;
    if (sharded()) {
        dctx.first_image = first;
        dctx.global_images = batch.labels.numel();
        // The DA terms were summed with the gradients when the policy offers them (reduced_terms:
        // da_sums_); otherwise the policy's own collective.
        dctx.reduce = [this](std::span<double> v) {
            if constexpr (requires(const Tensor<T>& l) { da_->reduced_terms(l); }) {
                DAM_CHECK(v.size() == da_sums_.size(), value_error,
                          "JointSearch: the DA policy reduced {} terms but offered {} to the step's allreduce", v.size(),
                          da_sums_.size());
                std::copy(da_sums_.begin(), da_sums_.end(), v.begin());
            } else {
                opt_.run.comm.allreduce(v, dist::ReduceOp::sum);
            }
        };
    }
    const Tensor<std::int32_t, D> labels = on_device<D>(host_labels);
    auto x = da_->augment(input(images), dctx);                               // 1
    train_input_ = x.value();  // what nctx.train_loss sees: the batch the weight step trains on
    if (!derived_) nas_->prepare(nctx);                                       // 2
    Tensor<T> per_sample;
    if (sharded()) {
        per_sample = sharded_backward(x, labels, host_labels);               // 3, 4
    } else {
        auto logits = net_->forward(x);                                       // 3
        auto loss = hpo_->training_loss(logits, labels);
        const auto l = on_host(loss.value()).item();
        if (!std::isfinite(l)) diverged(fmt::format("the training loss became non-finite ({})", l));
        const Tensor<T> host_logits = on_host(logits.value());
        {
            NoGradGuard no_grad;
            per_sample =
                on_host(ops::cross_entropy(Var<T, D>(logits.value()), labels, {0.0, ops::Reduction::none}).value());
        }
        hpo_->backward(loss, logits, labels);                                 // 4
        // NaN inputs can give a finite loss (ReLU maps NaN to 0) but non-finite gradients: check
        // them too, before anything is updated.
        if (!gradients_finite()) diverged("the weight gradients became non-finite");
        epoch_.add(static_cast<double>(l), host_logits, batch.labels);
    }
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
    if (!derived_ && (!nas_->searching() || step_ + 1 >= nctx.total_steps)) {
        arch_ = nas_->derived();
        net_->set_architecture(arch_);
        derived_ = true;
    }
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::join_validation() {
    full_ = std::make_shared<data::Dataset>(data::concatenate(*train_, val_->data()));
    loader_ = std::make_unique<data::BatchLoader>(*full_, opt_.run.batch, true, opt_.run.seed + 5, true);
    joined_ = true;
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
[[noreturn]] void JointSearch<DA, NAS, HPO, D>::diverged(const std::string& what) const {
    throw divergence_error(fmt::format(
        "JointSearch: {} at step {} (epoch {}); nothing was updated with it{}. Try a lower --lr, a narrower "
        "learning-rate range for HPO or a smaller DA magnitude, and check the data for NaN",
        what, step_, step_ / steps_per_epoch_ + 1,
        opt_.run.out_dir.empty() ? "" : "; the last checkpoint is intact and --resume continues from it"));
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
bool JointSearch<DA, NAS, HPO, D>::gradients_finite() const {
    std::vector<Tensor<T, D>> grads;
    grads.reserve(weights_.size());
    for (const auto& p : weights_) grads.push_back(p.grad());
    return ops::all_finite(grads);
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::end_epoch(double seconds) {
    if (derived_ && search_seconds_ == 0) search_seconds_ = seconds;
    if (opt_.run.average_from < 1 && derived_ &&
        static_cast<double>(step_) >= opt_.run.average_from * static_cast<double>(total_steps_))
        average_.add(weights_);
    const auto arch = derived_ ? arch_ : nas_->derived();
    if (!derived_) net_->set_architecture(arch);
    settle_shared_state();
    // Rank 0 alone evaluates and writes the log; the others' records stay without validation figures.
    const double eval_start = now();
    const auto [val_loss, val_acc] =
        rank() == 0 ? evaluate(*net_, val_->data()) : std::pair<double, double>{NAN, NAN};
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
    if (opt_.run.progress && rank() == 0)
        fmt::print("epoch {} {} train_loss={:.4f} train_accuracy={:.4f} val_loss={:.4f} val_accuracy={:.4f}{} {} "
                   "seconds={:.0f}\n",
                   rec["epoch"].template get<std::int64_t>(), rec["phase"].template get<std::string>(),
                   rec["train_loss"].template get<double>(), rec["train_accuracy"].template get<double>(), val_loss,
                   val_acc, joined_ ? " (trained on)" : "", fmt::join(net_->choice_names(arch), ","), seconds);
    write_log();
    write_report({});
}

}  // namespace diffautoml::search
