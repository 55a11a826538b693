// JointSearch's checkpoint body (included by joint.hpp, after the class): everything a resumed run
// needs to continue exactly as an uninterrupted one, inside checkpoint.hpp's framing.

namespace diffautoml::search {

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
std::vector<std::uint8_t> JointSearch<DA, NAS, HPO, D>::checkpoint_bytes() const {
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
    return frame_checkpoint(body.bytes);
}

template <template <class...> class DA, class NAS, template <class...> class HPO, Device D>
void JointSearch<DA, NAS, HPO, D>::load_checkpoint_bytes(const std::vector<std::uint8_t>& bytes, const std::string& what) {
    ByteReader r = open_checkpoint(bytes, what);
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

}  // namespace diffautoml::search
