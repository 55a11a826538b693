// JointSearch's final pass and outputs (included by joint.hpp, after the class): derive the
// network, recalibrate batch norm, evaluate (the test set once), and write model.bin,
// architecture.json, result.json, log.jsonl and report.html.

namespace diffautoml::search {

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
std::pair<double, double> JointSearch<DA, NAS, HPO, D>::evaluate(nn::Module<T, D>& net, const data::Dataset& d) {
    NoGradGuard no_grad;
    net.eval();
    data::BatchLoader loader(d, 1000, false, 0);
    std::int64_t c = 0;
    double loss = 0;
    while (loader.has_next()) {
        auto b = loader.next();
        const auto z = net.forward(Var<T, D>(input(b.images)));
        c += correct(on_host(z.value()), b.labels);
        loss += static_cast<double>(
            on_host(ops::cross_entropy(z, on_device<D>(b.labels), {0.0, ops::Reduction::sum}).value()).item());
    }
    net.train();
    return {loss / static_cast<double>(d.size()), static_cast<double>(c) / static_cast<double>(d.size())};
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::write_report(const nlohmann::json& result) const {
    if (opt_.run.out_dir.empty() || rank() != 0) return;
    nlohmann::json r = result;
    if (r.is_null()) r = {{"config", config_json()}};
    write_text_atomic(opt_.run.out_dir + "/report.html", html_report(log_, r));
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::write_log() const {
    if (opt_.run.out_dir.empty() || rank() != 0) return;
    std::string s;
    for (const auto& r : log_) s += r.dump() + "\n";
    write_file_atomic(opt_.run.out_dir + "/log.jsonl", std::vector<std::uint8_t>(s.begin(), s.end()));
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
JointResult JointSearch<DA, NAS, HPO, D>::finish(double seconds) {
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
                                   [&] { return input(calib.next().images); });
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
    // The result and model.bin live on the host (float networks: a double search is a test's).
    std::shared_ptr<nas::Supernet<T, cpu>> host_model;
    if constexpr (std::is_same_v<T, float>) host_model = nas::derived_on_host<Space>(derived, arch_);
    res.wall_seconds = seconds;
    res.search_seconds = search_seconds_ > 0 ? search_seconds_ : seconds;
    res.steps = step_;
    res.architecture = arch_;
    res.architecture_names = net_->choice_names(arch_);
    res.hyperparameters = detail::values_json(*hpo_);
    res.da_policy = detail::policy_json(da_->summary(10));
    if constexpr (std::is_same_v<T, float>) res.model = host_model;
    // Every rank ends with the same model (the final pass is replicated); rank 0 writes the files.
    if (!opt_.run.out_dir.empty() && rank() == 0) {
        const nlohmann::json extra = {{"config", config_json()},
                                      {"hyperparameters", res.hyperparameters},
                                      {"da_policy", res.da_policy},
                                      {"pixels", {{"mean", opt_.run.pixels.mean}, {"std", opt_.run.pixels.std}}}};
        if (host_model) nas::save_derived(opt_.run.out_dir + "/model.bin", *host_model, extra);
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

}  // namespace diffautoml::search
