// JointSearch's sharded steps (included by joint.hpp, after the class; not a header of its own):
// a step split over data-parallel ranks (RunOptions::comm) and micro-batches (micro_batches), the
// checks that refuse a sharded run that cannot be one, and the fingerprint the ranks compare at
// the start. docs/distributed.md states the semantics.
//
// A global batch of B images is cut into S = ranks x micro_batches equal pieces, rank-major: rank
// r's micro-batch j is piece r * micro_batches + j. Every piece's loss is its mean over its images
// divided by S (1 / micro_batches before the allreduce, 1 / ranks in it), so the summed gradients
// are those of the global batch's mean loss, and batch norm sees a piece. One rank with R
// micro-batches therefore takes the steps of R ranks, up to float summation order.

namespace diffautoml::search {

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
Tensor<typename NAS::value_type> JointSearch<DA, NAS, HPO, D>::sharded_backward(const Var<T, D>& x,
                                                                               const Tensor<std::int32_t, D>& labels,
                                                                               const Tensor<std::int32_t>& host_labels) {
    const std::int64_t K = opt_.run.micro_batches, n = x.value().dim(0), m = n / K;
    Tensor<T> per_sample(Shape{n});
    double loss_sum = 0;  // the training loss summed over this rank's images
    std::int64_t right = 0;
    auto synchronised = synchronise_batch_norm();
    for (std::int64_t j = 0; j < K; ++j) {
        sample_piece(j);
        const Var<T, D> xj = K > 1 ? ops::narrow(x, 0, j * m, m) : x;
        const Tensor<std::int32_t, D> yj = K > 1 ? labels.slice_batch(j * m, (j + 1) * m) : labels;
        auto logits = net_->forward(xj);
        auto loss = hpo_->training_loss(logits, yj);
        loss_sum += static_cast<double>(on_host(loss.value()).item()) * static_cast<double>(m);
        right += correct(on_host(logits.value()), K > 1 ? host_labels.slice_batch(j * m, (j + 1) * m) : host_labels);
        {
            NoGradGuard no_grad;
            const Tensor<T> l = on_host(ops::cross_entropy(Var<T, D>(logits.value()), yj, {0.0, ops::Reduction::none}).value());
            std::copy(l.data(), l.data() + m, per_sample.data() + j * m);
        }
        hpo_->backward(K > 1 ? ops::mul_scalar(loss, 1.0 / static_cast<double>(K)) : loss, logits, yj);  // 4
        if constexpr (requires { nas_->accumulate_piece(); })
            if (!derived_ && nas_->samples_per_piece()) nas_->accumulate_piece();
    }
    synchronised.reset();
    // One allreduce: the weights' gradients, the DSNAS gates' (dL/dZ is linear in the loss; with
    // per-rank samples, alpha's: the mean of the pieces' estimates), and in `extra` (in T: float in
    // the main job) what every rank must decide alike: the loss, the correct count, a stop request, a checkpoint.
    std::vector<Var<T, D>> reduced = weights_;
    if constexpr (requires { nas_->reduced_variables(); })
        if (!derived_)
            for (const auto& v : nas_->reduced_variables()) reduced.push_back(v);
    std::vector<T> extra = {static_cast<T>(loss_sum), static_cast<T>(right), stop_flag().load() ? T(1) : T(0),
                            checkpoint_due() ? T(1) : T(0)};
    // The DA policy's terms join the same allreduce (its update() then reads the sums: da_sums_).
    da_sums_.clear();
    if constexpr (requires { da_->reduced_terms(per_sample); }) {
        da_sums_ = da_->reduced_terms(per_sample);
        for (double v : da_sums_) extra.push_back(static_cast<T>(v));
    }
    // So does the last step's hypergradient, left pending (HpoContext::defer_reduce): it is applied
    // here, before this step's weight update, which therefore uses the rates it would without deferral.
    std::vector<double> hyper;
    if constexpr (requires { hpo_->pending(); }) hyper = hpo_->pending();
    for (double v : hyper) extra.push_back(static_cast<T>(v));
    if (opt_.run.comm.size() > 1) {  // one rank in micro-batches has nothing to reduce
        opt_.run.comm.note(fmt::format("step {}", step_));
        optim::allreduce_gradients(opt_.run.comm, reduced, 1.0 / static_cast<double>(opt_.run.comm.size()),
                                   std::span<T>(extra));
        for (std::size_t k = 0; k < da_sums_.size(); ++k) da_sums_[k] = static_cast<double>(extra[4 + k]);
        for (std::size_t k = 0; k < hyper.size(); ++k) hyper[k] = static_cast<double>(extra[4 + da_sums_.size() + k]);
    }
    if constexpr (requires { hpo_->pending(); })
        if (!hyper.empty()) hpo_->apply_pending(hyper);
    const std::int64_t B = n * opt_.run.comm.size();
    const double l = static_cast<double>(extra[0]) / static_cast<double>(B);
    // Every rank sees the same sums, so every rank stops here alike.
    if (!std::isfinite(l)) diverged(fmt::format("the training loss became non-finite ({})", l));
    if (!gradients_finite()) diverged("the weight gradients became non-finite");
    epoch_.loss_sum += static_cast<double>(extra[0]);
    epoch_.correct += static_cast<std::int64_t>(std::llround(static_cast<double>(extra[1])));
    epoch_.seen += B;
    agreed_stop_ = extra[2] > T(0);
    agreed_due_ = extra[3] > T(0);
    return per_sample;
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::sharded_validation_backward() {
    auto vb = val_->next(validation_batch());  // the same global batch on every rank
    const std::int64_t K = opt_.run.micro_batches, S = opt_.run.comm.size() * K, m = vb.labels.numel() / S;
    auto synchronised = synchronise_batch_norm();
    for (std::int64_t j = 0; j < K; ++j) {
        sample_piece(j);  // the path piece j trained on this step
        const std::int64_t at = (rank() * K + j) * m;
        const Tensor<float> images = vb.images.slice_batch(at, at + m);
        const Tensor<std::int32_t> labels = vb.labels.slice_batch(at, at + m);
        auto loss = ops::cross_entropy(net_->forward(Var<T, D>(input(images))), on_device<D>(labels));
        if (loss.requires_grad()) ops::mul_scalar(loss, 1.0 / static_cast<double>(S)).backward();
    }
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::apply_deferred_hypergradient() {
    if constexpr (requires { hpo_->pending(); }) {
        if (hpo_->pending().empty()) return;  // alike on every rank: hyper steps fall on the same steps
        std::vector<double> h = hpo_->pending();
        if (opt_.run.comm.size() > 1) opt_.run.comm.allreduce(std::span<double>(h), dist::ReduceOp::sum);
        hpo_->apply_pending(h);
    }
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
std::optional<ops::SyncBatchNormScope> JointSearch<DA, NAS, HPO, D>::synchronise_batch_norm() {
    if (!opt_.run.sync_batch_norm || opt_.run.comm.size() == 1) return std::nullopt;
    return std::optional<ops::SyncBatchNormScope>(
        std::in_place, [this](std::span<double> v) { opt_.run.comm.allreduce(v, dist::ReduceOp::sum); });
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::sample_piece(std::int64_t j) {
    if constexpr (requires { nas_->sample_piece(j); })
        if (!derived_ && nas_->samples_per_piece()) nas_->sample_piece(rank() * opt_.run.micro_batches + j);
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::check_sharding() const {
    const std::int64_t R = opt_.run.comm.size(), K = opt_.run.micro_batches, S = R * K;
    bool per_rank_samples = false;
    if constexpr (requires { opt_.nas.per_rank_samples; }) per_rank_samples = opt_.nas.per_rank_samples;
    DAM_CHECK(!opt_.run.sync_batch_norm || (K == 1 && !per_rank_samples), value_error,
              "JointSearch: synchronised batch norm normalises each layer over every rank's images at once, so it "
              "needs micro_batches 1 (got {}) and the same path on every rank (per_rank_samples {}): drop "
              "--sync-bn, --micro-batches or --per-rank-samples",
              K, per_rank_samples);
    DAM_CHECK(opt_.run.batch % S == 0 && validation_batch() % S == 0, value_error,
              "JointSearch: a sharded step cuts each batch into {} ranks x {} micro-batches = {} equal pieces, but the "
              "batch ({}) or the validation batch ({}) is not a multiple of {}; change --batch, --validation-batch, "
              "the number of ranks or --micro-batches",
              R, K, S, opt_.run.batch, validation_batch(), S);
    DAM_CHECK(detail::data_parallel_v<DaPolicy> && detail::data_parallel_v<NAS> && detail::data_parallel_v<HpoPolicy>,
              value_error,
              "JointSearch: the policies {} (DA), {} (NAS) and {} (HPO) do not all run sharded ({} ranks, {} "
              "micro-batches); those that do declare data_parallel (docs/distributed.md): DA pair_policy, standard, "
              "randaugment or none; NAS dsnas or fixed; HPO hypergrad_lr_wd (one-step) or fixed",
              DaPolicy::policy_name, NAS::policy_name, HpoPolicy::policy_name, R, K);
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::check_fingerprint() {
    std::string shapes;
    for (const auto& [name, p] : net_->named_parameters()) shapes += fmt::format("{} {};", name, p.shape());
    const std::string parts[4] = {
        config_json().dump(), shapes,
        fmt::format("train {} validation {} test {} image {}", train_->size(), val_->size(), test_ ? test_->size() : -1,
                    train_->image_shape()),
        fmt::format("diffautoml {} {}", diffautoml::version, D::name)};
    static constexpr const char* what[4] = {"options (result.json's config)", "parameter shapes", "data",
                                            "library version or device"};
    const auto R = static_cast<std::size_t>(opt_.run.comm.size());
    std::vector<std::int64_t> mine(4), all(4 * R);
    for (std::size_t k = 0; k < 4; ++k)
        mine[k] = crc32_of(reinterpret_cast<const std::uint8_t*>(parts[k].data()), parts[k].size());
    opt_.run.comm.allgather(std::span<const std::int64_t>(mine), std::span<std::int64_t>(all));
    // Every rank sees the same table, so every rank refuses alike (no rank is left waiting).
    for (std::size_t r = 1; r < R; ++r)
        for (std::size_t k = 0; k < 4; ++k)
            if (all[4 * r + k] != all[k])
                throw dist::dist_error(fmt::format(
                    "JointSearch: rank {} differs from rank 0 in its {}; every rank must run the same program on the "
                    "same data with the same options (this is rank {}: {})",
                    r, what[k], rank(), parts[k].size() > 400 ? parts[k].substr(0, 400) + "..." : parts[k]));
}

}  // namespace diffautoml::search
