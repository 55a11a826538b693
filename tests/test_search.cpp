// The joint search on a tiny synthetic task: one end-to-end run leaves the log, model, result
// and report; a run interrupted mid-epoch and resumed from its checkpoint reaches exactly the
// result of an uninterrupted one; divergence and corrupt checkpoints are clear errors.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>

#include <catch2/catch.hpp>
#include <diffautoml/diffautoml.hpp>

#include "search_fixtures.hpp"
#include "test_helpers.hpp"

using namespace dam_test;
namespace fs = std::filesystem;

namespace {

using Joint = search::JointSearch<da::PairPolicyDA, nas::DSNAS<nas::ShuffleSpace>, hpo::HypergradLrWd>;
// The device is the NAS policy's; naming it explicitly gives the same type.
static_assert(std::is_same_v<Joint::device_type, cpu> &&
              std::is_same_v<Joint, search::JointSearch<da::PairPolicyDA, nas::DSNAS<nas::ShuffleSpace>, hpo::HypergradLrWd, cpu>>);

std::string fresh_dir(const std::string& name) {
    const auto p = fs::temp_directory_path() / ("dam_search_" + name);
    fs::remove_all(p);
    return p.string();
}

std::vector<std::uint8_t> read_bytes(const std::string& p) { return read_file(p); }

/// The two runs logged the same records, wall time aside.
void same_logs_but_time(const Joint& a, const Joint& b) {
    REQUIRE(a.log().size() == b.log().size());
    for (std::size_t e = 0; e < a.log().size(); ++e) {
        auto x = a.log()[e], y = b.log()[e];
        x.erase("wall_seconds");
        y.erase("wall_seconds");
        CHECK(x == y);
    }
}

/// The two runs ended with the same result: test accuracy, architecture, hyperparameters, DA
/// policy and the model's bytes.
template <class Result>
void same_result(const Result& b, const Result& a) {
    CHECK(b.test_accuracy == a.test_accuracy);
    CHECK(b.architecture == a.architecture);
    CHECK(b.hyperparameters == a.hyperparameters);
    CHECK(b.da_policy == a.da_policy);
    CHECK(nn::serialize_model(*b.model) == nn::serialize_model(*a.model));
}

}  // namespace

TEST_CASE("joint search end to end: log, model, result, and a model file that reproduces the accuracy", "[search]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    const std::string out = fresh_dir("e2e");
    Joint js(train, test, tiny_options(out), {}, tiny_space());
    REQUIRE(js.steps_per_epoch() == (400 - 64) / 16);
    const auto res = js.run();
    INFO("test accuracy " << res.test_accuracy);
    CHECK(res.test_accuracy > 0.6);  // chance is 1/3
    CHECK(res.steps == 2 * js.steps_per_epoch());
    REQUIRE(js.log().size() == 2);
    for (const auto& r : js.log())
        for (const char* k : {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "architecture_probabilities",
                              "da_top", "hyperparameters", "wall_seconds", "derived", "phase", "tau"})
            CHECK(r.contains(k));
    CHECK(js.log()[0]["phase"] == "search");
    CHECK(js.log()[1]["phase"] == "train");  // the search share (60% = 25 of 42 steps) ended during epoch 2
    CHECK(js.log()[1]["da_top"].size() == 10);
    CHECK(js.log()[1]["hyperparameters"].contains("lr"));

    std::ifstream log(out + "/log.jsonl");
    std::string line;
    int lines = 0;
    while (std::getline(log, line)) {
        CHECK(nlohmann::json::parse(line)["epoch"] == lines + 1);
        ++lines;
    }
    CHECK(lines == 2);
    const auto result = nlohmann::json::parse(std::ifstream(out + "/result.json"));
    CHECK(result["test_accuracy"].get<double>() == res.test_accuracy);
    CHECK(result["architecture"] == res.architecture_names);
    CHECK(nlohmann::json::parse(std::ifstream(out + "/architecture.json")).contains("layers"));
    CHECK_FALSE(fs::exists(out + "/checkpoint.bin"));  // a finished run leaves no checkpoint

    // The report is one self-contained page with the curves, heat maps and tables.
    std::ifstream rin(out + "/report.html");
    const std::string html((std::istreambuf_iterator<char>(rin)), std::istreambuf_iterator<char>());
    for (const char* part : {"<!DOCTYPE html>", "Accuracy", "Loss", "Hyperparameters (log scale)",
                             "Architecture probabilities per layer and epoch", "DA pair probabilities",
                             "Most likely augmentation pairs", "<polyline", "stage1.layer1"})
        CHECK(html.find(part) != std::string::npos);
    CHECK(html.find(fmt::format("{:.4f}", res.test_accuracy)) != std::string::npos);
    // The epochs that ran and the cap, told apart.
    CHECK(html.find("<th class=\"l\">epochs run</th><td class=\"l\">2</td>") != std::string::npos);
    CHECK(html.find("<th class=\"l\">epoch cap</th><td class=\"l\">2</td>") != std::string::npos);
    CHECK(html.find("<script") == std::string::npos);
    // No external resources: every URL is the SVG namespace.
    for (auto at = html.find("http"); at != std::string::npos; at = html.find("http", at + 1))
        CHECK(html.compare(at, 26, "http://www.w3.org/2000/svg") == 0);

    // model.bin rebuilds the derived network: the same predictions, so the same accuracy.
    auto loaded = nas::load_derived<float>(out + "/model.bin");
    NoGradGuard no_grad;
    loaded.net->eval();
    res.model->eval();
    const auto a = loaded.net->forward(Var<float>(test.images)).value();
    const auto b = res.model->forward(Var<float>(test.images)).value();
    for (std::int64_t k = 0; k < a.numel(); ++k) REQUIRE(a[k] == b[k]);

    // The finished run is recognised by the same configuration only (how diffautoml-ablation
    // skips the runs it already has), and not while a checkpoint says a run is in progress.
    const auto done = Joint(train, test, tiny_options(out), {}, tiny_space()).finished_result();
    REQUIRE(done.is_object());
    CHECK(done["test_accuracy"].get<double>() == res.test_accuracy);
    auto other = tiny_options(out);
    other.run.seed += 1;
    CHECK(Joint(train, test, other, {}, tiny_space()).finished_result().is_null());
    write_text_atomic(out + "/checkpoint.bin", "in progress");
    CHECK(Joint(train, test, tiny_options(out), {}, tiny_space()).finished_result().is_null());
    fs::remove(out + "/checkpoint.bin");
    write_text_atomic(out + "/result.json", "{\"test_accuracy\": ");
    CHECK(Joint(train, test, tiny_options(out), {}, tiny_space()).finished_result().is_null());
    CHECK(Joint(train, test, tiny_options(""), {}, tiny_space()).finished_result().is_null());
}

TEST_CASE("joint search composes the other policies: DADA (validation objective), DARTS second order, GDAS, SNAS, "
          "BaydinHD", "[search]") {
    const auto train = bars(320, 1, data::Split::train), test = bars(60, 2, data::Split::test);
    SECTION("DADA + DARTS (second order) + BaydinHD: the run's decay and schedule reach Baydin") {
        using S = search::JointSearch<da::DADA, nas::DARTS<nas::ShuffleSpace>, hpo::BaydinHD>;
        auto o = tiny_options<S>("");
        o.run.epochs = 1;
        o.nas = nas::DARTSOptions{3e-3, 0.5, 1e-3, true};  // made from its options: no factory
        S s(train, test, o, {}, tiny_space());
        CHECK(s.nas_policy().options().second_order);
        const auto before = s.da_policy().magnitudes().value().clone();
        const auto r = s.run();
        CHECK(r.test_accuracy >= 0.0);
        CHECK(r.steps == s.steps_per_epoch());
        // DADA learned from the unrolled validation loss: its magnitudes moved.
        double moved = 0;
        for (std::int64_t k = 0; k < before.numel(); ++k) moved += std::abs(s.da_policy().magnitudes().value()[k] - before[k]);
        CHECK(moved > 0);
        const auto rates = s.hpo_policy().rates(3);
        REQUIRE(rates.wd.size() == 2);
        CHECK(std::max(rates.wd[0], rates.wd[1]) == o.run.weight_decay);
        CHECK(rates.lr[0] == Approx(s.hpo_policy().values()[0].second * s.lr_factor(3)));
    }
    SECTION("GDAS (bilevel) and SNAS") {
        using G = search::JointSearch<da::NoAugment, nas::GDAS<nas::ShuffleSpace>, hpo::FixedSchedule>;
        using N = search::JointSearch<da::NoAugment, nas::SNAS<nas::ShuffleSpace>, hpo::HypergradLrWd>;
        auto og = tiny_options<G>("");
        auto on = tiny_options<N>("");
        og.run.epochs = on.run.epochs = 1;
        G gdas(train, test, og, {}, tiny_space());
        CHECK(gdas.run().steps == gdas.steps_per_epoch());
        CHECK(gdas.nas_policy().temperature() < 10.0);
        N snas(train, test, on, {}, tiny_space());
        CHECK(snas.run().steps == snas.steps_per_epoch());
    }
}

TEST_CASE("joint search: a resumed run equals an uninterrupted one", "[search]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    const std::string a_dir = fresh_dir("resume_a"), b_dir = fresh_dir("resume_b");
    Joint a(train, test, tiny_options(a_dir), {}, tiny_space());
    const auto ra = a.run();

    auto ob = tiny_options(b_dir);
    ob.run.stop_after_steps = 13;  // mid-epoch 1, during the search phase
    {
        Joint b(train, test, ob, {}, tiny_space());
        require_throws_with<search::interrupted>([&] { b.run(); }, {"stopped at step 13", "--resume"});
    }
    REQUIRE(fs::exists(b_dir + "/checkpoint.bin"));
    ob.run.stop_after_steps = 27;  // again, in epoch 2 (after the search phase ended)
    {
        Joint b(train, test, ob, {}, tiny_space());
        REQUIRE(b.resume());
        CHECK(b.step() == 13);
        require_throws_with<search::interrupted>([&] { b.run(); }, {"stopped at step 27"});
    }
    ob.run.stop_after_steps = -1;
    Joint b(train, test, ob, {}, tiny_space());
    REQUIRE(b.resume());
    const auto rb = b.run();
    same_result(rb, ra);
    same_logs_but_time(a, b);
}

TEST_CASE("joint search: the validation slice joins training at join_validation, the hyperparameters freeze, and "
          "a run resumed across the join equals an uninterrupted one", "[search]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    auto options = [](const std::string& dir, double join) {
        auto o = tiny_options(dir);
        o.run.epochs = 3;                 // 21 steps an epoch
        o.run.search_fraction = 0.3;      // the architecture is fixed by step 19
        o.hpo.every = 1;
        o.run.join_validation = join;     // 0.3 of 63 steps: the join is due at the start of epoch 2
        o.run.minutes = 1e4;              // a budget that never binds, so the runs stay deterministic, but
        o.run.retime_after_join = true;   // the plan is remade (and checkpointed) through every phase
        return o;
    };
    // Without the join the hypergradient moves the hyperparameters in every epoch.
    Joint held(train, test, options(fresh_dir("join_none"), 1.0), {}, tiny_space());
    held.run();
    CHECK_FALSE(held.validation_joined());
    CHECK(held.training_images().size() == 400 - 64);
    REQUIRE(held.log().size() == 3);
    CHECK(held.log()[0]["hyperparameters"] != held.log()[1]["hyperparameters"]);
    CHECK(held.log()[1]["hyperparameters"] != held.log()[2]["hyperparameters"]);
    for (const auto& r : held.log()) CHECK(r["val_in_training"] == false);

    const std::string a_dir = fresh_dir("join_a"), b_dir = fresh_dir("join_b");
    Joint a(train, test, options(a_dir, 0.3), {}, tiny_space());
    const auto ra = a.run();
    CHECK(a.validation_joined());
    CHECK(a.training_images().size() == 400);
    REQUIRE(a.log().size() == 3);
    CHECK(a.log()[0]["val_in_training"] == false);
    CHECK(a.log()[1]["val_in_training"] == true);
    CHECK(a.log()[2]["val_in_training"] == true);
    // Frozen from the start of epoch 2: the values logged after epochs 1, 2 and 3 are the same,
    // and the result reports them.
    CHECK(a.log()[1]["hyperparameters"] == a.log()[0]["hyperparameters"]);
    CHECK(a.log()[2]["hyperparameters"] == a.log()[0]["hyperparameters"]);
    CHECK(ra.hyperparameters == a.log()[0]["hyperparameters"]);
    CHECK(a.config_json().at("join_validation") == 0.3);
    CHECK(a.config_json().at("retime_after_join") == true);
    CHECK(a.total_steps() == 63);  // grown to the cap, epochs x steps, and no further
    std::ifstream rin(a_dir + "/report.html");
    const std::string html((std::istreambuf_iterator<char>(rin)), std::istreambuf_iterator<char>());
    CHECK(html.find("validation (trained on)") != std::string::npos);
    CHECK(html.find("train (+val)") != std::string::npos);

    // Interrupted at the epoch end just before the join, then just after it.
    auto ob = options(b_dir, 0.3);
    for (const std::int64_t stop : {21, 30}) {
        ob.run.stop_after_steps = stop;
        Joint b(train, test, ob, {}, tiny_space());
        if (stop != 21) {
            REQUIRE(b.resume());
            CHECK_FALSE(b.validation_joined());  // the checkpoint at step 21 is before the join
        }
        require_throws_with<search::interrupted>([&] { b.run(); }, {fmt::format("stopped at step {}", stop)});
        CHECK(b.validation_joined() == (stop == 30));
    }
    ob.run.stop_after_steps = -1;
    Joint b(train, test, ob, {}, tiny_space());
    REQUIRE(b.resume());
    CHECK(b.validation_joined());
    CHECK(b.training_images().size() == 400);
    const auto rb = b.run();
    CHECK(rb.test_accuracy == ra.test_accuracy);
    CHECK(rb.hyperparameters == ra.hyperparameters);
    CHECK(nn::serialize_model(*rb.model) == nn::serialize_model(*ra.model));
    same_logs_but_time(a, b);

    for (const double bad : {0.0, 1.5, std::nan("")})
        require_throws_with<value_error>([&] { Joint(train, test, options("", bad), {}, tiny_space()); },
                                         {"join_validation must be in (0, 1]"});
}

TEST_CASE("joint search: weight averaging makes the model the mean of the epoch-end weights, evaluates the last "
          "weights too, and resumes exactly", "[search]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    auto options = [](const std::string& dir, double from) {
        auto o = tiny_options(dir);
        o.run.epochs = 3;              // 21 steps an epoch, 63 in all
        o.run.search_fraction = 0.3;   // the architecture is fixed by step 18
        o.run.join_validation = 1.0;
        o.run.average_from = from;     // 0.3: the epoch ends at steps 21, 42 and 63 are averaged
        return o;
    };
    using Named = std::map<std::string, Tensor<float>>;
    auto weights_of = [](const nas::Supernet<float>& net) {
        Named m;
        for (auto& [name, p] : net.named_parameters()) m.emplace(name, p.value().clone());
        return m;
    };

    // The same run without averaging, stopped at the first two epoch ends: its weights there and
    // at the end are what the averaged run must average (averaging does not change the training).
    const std::string c_dir = fresh_dir("avg_plain");
    std::vector<Named> states;
    auto oc = options(c_dir, 1.0);
    for (const std::int64_t stop : {21, 42}) {
        oc.run.stop_after_steps = stop;
        Joint c(train, test, oc, {}, tiny_space());
        if (stop != 21) REQUIRE(c.resume());
        CHECK_THROWS_AS(c.run(), search::interrupted);
        states.push_back(weights_of(c.net()));
    }
    oc.run.stop_after_steps = -1;
    Joint c(train, test, oc, {}, tiny_space());
    REQUIRE(c.resume());
    const auto rc = c.run();
    states.push_back(weights_of(c.net()));
    CHECK(rc.averaged == 0);
    CHECK(std::isnan(rc.test_accuracy_last));
    CHECK_FALSE(nlohmann::json::parse(std::ifstream(c_dir + "/result.json")).contains("test_accuracy_last"));

    const std::string a_dir = fresh_dir("avg_a");
    Joint a(train, test, options(a_dir, 0.3), {}, tiny_space());
    const auto ra = a.run();
    CHECK(ra.averaged == 3);
    CHECK(ra.test_accuracy_last == rc.test_accuracy);  // the last weights are the plain run's
    REQUIRE(a.log().size() == 3);
    for (std::size_t e = 0; e < 3; ++e) CHECK(a.log()[e]["averaged_weights"] == static_cast<int>(e + 1));
    // The supernet keeps its last weights; the model holds their mean over the three epoch ends.
    const auto last = weights_of(a.net());
    for (const auto& [name, w] : last)
        for (std::int64_t k = 0; k < w.numel(); ++k) REQUIRE(w[k] == states[2].at(name)[k]);
    std::int64_t compared = 0, moved = 0;
    for (auto& [name, p] : ra.model->named_parameters()) {
        const auto& v = p.value();
        for (std::int64_t k = 0; k < v.numel(); ++k, ++compared) {
            const double mean = (static_cast<double>(states[0].at(name)[k]) + states[1].at(name)[k] + states[2].at(name)[k]) / 3;
            REQUIRE(v[k] == Approx(mean).margin(1e-6));
            moved += std::abs(states[2].at(name)[k] - mean) > 1e-4;
        }
    }
    CHECK(compared == ra.model->parameter_count());
    CHECK(moved > compared / 2);  // the mean is not the last weights
    // The averaged model is the one evaluated, written and reported, with the last weights' figure beside it.
    const auto result = nlohmann::json::parse(std::ifstream(a_dir + "/result.json"));
    CHECK(result["test_accuracy"].get<double>() == ra.test_accuracy);
    CHECK(result["test_accuracy_last"].get<double>() == ra.test_accuracy_last);
    CHECK(result["averaged_weights"] == 3);
    CHECK(a.config_json().at("average_from") == 0.3);
    auto loaded = nas::load_derived<float>(a_dir + "/model.bin");
    CHECK(nn::serialize_model(*loaded.net) == nn::serialize_model(*ra.model));
    {
        NoGradGuard no_grad;
        ra.model->eval();
        const auto z = ra.model->forward(Var<float>(test.images)).value();
        const std::int64_t classes = z.shape()[1];
        std::int64_t right = 0;
        for (std::int64_t i = 0; i < test.size(); ++i) {
            const float* row = z.data() + i * classes;
            right += std::max_element(row, row + classes) - row == test.labels[static_cast<std::size_t>(i)];
        }
        CHECK(static_cast<double>(right) / static_cast<double>(test.size()) == ra.test_accuracy);
    }
    std::ifstream rin(a_dir + "/report.html");
    const std::string html((std::istreambuf_iterator<char>(rin)), std::istreambuf_iterator<char>());
    CHECK(html.find(fmt::format("{:.4f} (the model averages the weights of 3 epoch ends)", ra.test_accuracy_last)) !=
          std::string::npos);

    // Interrupted after the first average (step 30) and resumed: the same model, byte for byte.
    const std::string b_dir = fresh_dir("avg_b");
    auto ob = options(b_dir, 0.3);
    ob.run.stop_after_steps = 30;
    {
        Joint b(train, test, ob, {}, tiny_space());
        CHECK_THROWS_AS(b.run(), search::interrupted);
    }
    ob.run.stop_after_steps = -1;
    Joint b(train, test, ob, {}, tiny_space());
    REQUIRE(b.resume());
    const auto rb = b.run();
    CHECK(rb.averaged == 3);
    CHECK(rb.test_accuracy == ra.test_accuracy);
    CHECK(rb.test_accuracy_last == ra.test_accuracy_last);
    CHECK(nn::serialize_model(*rb.model) == nn::serialize_model(*ra.model));
    same_logs_but_time(a, b);

    for (const double bad : {-0.1, 1.5, std::nan("")})
        require_throws_with<value_error>([&] { Joint(train, test, options("", bad), {}, tiny_space()); },
                                         {"average_from must be in [0, 1]"});
}

TEST_CASE("joint search: bad numbers end in an error naming the cause; a diverged run leaves a good model alone", "[search][errors]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    auto nan_train = train;
    nan_train.images = train.images.clone();
    nan_train.images[5 * 144 + 7] = std::numeric_limits<float>::quiet_NaN();
    require_throws_with<value_error>([&] { Joint(nan_train, test, tiny_options(""), {}, tiny_space()); },
                                     {"the training set", "image 5", "non-finite value (nan) at pixel 7", "normalisation"});
    auto inf_test = test;
    inf_test.images = test.images.clone();
    inf_test.images[149 * 144] = -std::numeric_limits<float>::infinity();
    require_throws_with<value_error>([&] { Joint(train, inf_test, tiny_options(""), {}, tiny_space()); },
                                     {"the test set", "image 149", "(-inf) at pixel 0"});
    auto smoothing = tiny_options("");
    smoothing.hpo.label_smoothing = 2;
    require_throws_with<value_error>([&] { Joint(train, test, smoothing, {}, tiny_space()); },
                                     {"label_smoothing must be in [0, 1), got 2"});

    // A learning rate of 1e6 diverges within a few steps: the run stops with the cause and the
    // advice, and the model file a good run left in the same folder is not touched.
    const std::string dir = fresh_dir("diverged");
    Joint(train, test, tiny_options(dir), {}, tiny_space()).run();
    const auto good = read_bytes(dir + "/model.bin");
    const auto good_result = read_bytes(dir + "/result.json");
    auto wild = tiny_options(dir);
    wild.run.lr = 1e6;
    require_throws_with<value_error>([&] { Joint(train, test, wild, {}, tiny_space()); },
                                     {"hyperparameter 'lr'", "[0.001, 1]", "start it inside the range"});
    using FixedHpo = search::JointSearch<da::PairPolicyDA, nas::DSNAS<nas::ShuffleSpace>, hpo::FixedSchedule>;
    auto wild_fixed = tiny_options<FixedHpo>(dir);
    wild_fixed.run.lr = 1e6;
    require_throws_with<search::divergence_error>([&] { FixedHpo(train, test, wild_fixed, {}, tiny_space()).run(); },
                                                  {"became", "non-finite", "Try a lower --lr"});
    CHECK(read_bytes(dir + "/model.bin") == good);
    CHECK(read_bytes(dir + "/result.json") == good_result);
}

TEST_CASE("joint search: divergence stops with a message and keeps the checkpoint; bad checkpoints are errors", "[search][errors]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    const std::string dir = fresh_dir("errors");
    auto o = tiny_options(dir);
    o.run.stop_after_steps = 3;
    {
        Joint j(train, test, o, {}, tiny_space());
        CHECK_THROWS_AS(j.run(), search::interrupted);
    }
    const auto before = read_bytes(dir + "/checkpoint.bin");

    // NaN pixels are refused up front (next test case); finite values that overflow in the network
    // still make the run diverge.
    auto poisoned = train;
    poisoned.images = train.images.clone();
    poisoned.images.fill(3e38f);
    o.run.stop_after_steps = -1;
    {
        Joint j(poisoned, test, o, {}, tiny_space());
        REQUIRE(j.resume());
        require_throws_with<search::divergence_error>([&] { j.run(); }, {"weight gradients became non-finite at step 3",
                                                                         "last checkpoint is intact"});
    }
    CHECK(read_bytes(dir + "/checkpoint.bin") == before);

    // Another configuration may not resume this checkpoint.
    auto other = o;
    other.run.seed = 5;
    {
        Joint j(train, test, other, {}, tiny_space());
        require_throws_with<format_error>([&] { j.resume(); }, {"different configuration"});
    }
    // A flipped byte fails the checksum; a foreign file has no magic.
    auto corrupt = before;
    corrupt[corrupt.size() / 2] ^= 0x40;
    write_file_atomic(dir + "/checkpoint.bin", corrupt);
    {
        Joint j(train, test, o, {}, tiny_space());
        require_throws_with<format_error>([&] { j.resume(); }, {"checksum mismatch"});
    }
    // A truncated file (a copy cut short) and one from a newer format version say so.
    write_file_atomic(dir + "/checkpoint.bin", std::vector<std::uint8_t>(before.begin(), before.begin() + before.size() / 3));
    {
        Joint j(train, test, o, {}, tiny_space());
        require_throws_with<format_error>([&] { j.resume(); }, {"the file is truncated"});
    }
    write_file_atomic(dir + "/checkpoint.bin", std::vector<std::uint8_t>(before.begin(), before.begin() + 12));
    {
        Joint j(train, test, o, {}, tiny_space());
        require_throws_with<format_error>([&] { j.resume(); }, {"shorter than a checkpoint's header", "truncated"});
    }
    auto newer = before;
    newer[7] = '2';
    write_file_atomic(dir + "/checkpoint.bin", newer);
    {
        Joint j(train, test, o, {}, tiny_space());
        require_throws_with<format_error>([&] { j.resume(); }, {"format version '2'", "reads version '1'"});
    }
    write_file_atomic(dir + "/checkpoint.bin", std::vector<std::uint8_t>(64, 7));
    {
        Joint j(train, test, o, {}, tiny_space());
        require_throws_with<format_error>([&] { j.resume(); }, {"not a diffautoml checkpoint"});
    }
    require_throws_with<value_error>([&] { Joint(train, test, [&] { auto x = o; x.run.validation = 390; return x; }(), {}, tiny_space()); },
                                     {"too few"});
    // The learned rate's floor and the weight decay's ceiling reach the HPO policy; an initial
    // rate below the floor is an error that names it.
    auto bounded = o;
    bounded.hpo.lr_lo = 0.02;
    bounded.hpo.wd_hi = 1e-3;
    bounded.hpo.label_smoothing = 0.1;
    {
        Joint j(train, test, bounded, {}, tiny_space());
        CHECK(j.hpo_policy().options().lr_lo == 0.02);
        CHECK(j.hpo_policy().options().wd_hi == 1e-3);
        CHECK(j.hpo_policy().label_smoothing() == 0.1);
        CHECK(j.config_json().at("hpo_options").at("lr_lo") == 0.02);
        CHECK(j.config_json().at("hpo_options").at("label_smoothing") == 0.1);
        CHECK(j.config_json().at("da_options").at("pixels").at("std") == 0.35);  // the run's pixel space reached DA
    }
    bounded.hpo.label_smoothing = 1.0;
    require_throws_with<value_error>([&] { Joint(train, test, bounded, {}, tiny_space()); }, {"label_smoothing must be in [0, 1)"});
    bounded.hpo.label_smoothing = 0.0;
    bounded.hpo.lr_lo = 0.1;  // above the initial 0.05
    require_throws_with<value_error>([&] { Joint(train, test, bounded, {}, tiny_space()); },
                                     {"hyperparameter 'lr'", "the value 0.05", "[0.1, 1]"});
}

TEST_CASE("the time budget plans the steps that fit, shrinking or growing within the cap", "[search]") {
    // 100 steps in 50 s (0.5 s a step) with 100 s of the budget left: 200 more steps fit.
    CHECK(search::steps_within_budget(100, 50.0, 0, 0.0, 150.0, 1000) == 300);
    CHECK(search::steps_within_budget(100, 50.0, 0, 0.0, 150.0, 250) == 250);  // cap = the plan: only shrinks
    // Timed from step 60 at 40 s: 0.25 s a step, so 400 more fit; the cap bounds the growth.
    CHECK(search::steps_within_budget(100, 50.0, 60, 40.0, 150.0, 1000) == 500);
    CHECK(search::steps_within_budget(100, 50.0, 60, 40.0, 150.0, 450) == 450);
    // Budget spent: the next step is still allowed (the run ends after it), never fewer.
    CHECK(search::steps_within_budget(100, 200.0, 0, 0.0, 150.0, 1000) == 101);
    CHECK(search::steps_within_budget(100, 50.0, 0, 0.0, 150.0, 10) == 101);
    require_throws_with<value_error>([] { (void)search::steps_within_budget(100, 50.0, 100, 40.0, 150.0, 1000); },
                                     {"no steps timed"});
}

TEST_CASE("the budget plan times the latest phase and grows once in each later phase", "[search]") {
    search::BudgetPlan plan;
    // Search: 100 steps in 100 s (1 s a step), 400 s in all: 400 steps fit, within the plan of 1000.
    std::int64_t n = plan.replan(100, 100.0, 400.0, 1000, 1000);
    CHECK(n == 400);
    // It only shrinks while the search is timed: faster steps do not grow it.
    CHECK(plan.replan(150, 125.0, 400.0, n, 1000) == 400);
    // The derived network begins at step 150; at its own first epoch end nothing of it is timed yet.
    plan.begin(search::BudgetPlan::derived, 150, 125.0);
    CHECK(plan.replan(150, 125.0, 400.0, n, 1000) == 400);
    plan.begin(search::BudgetPlan::derived, 170, 135.0);  // a second begin keeps the first mark
    // 50 derived steps in 25 s (0.5 s a step), 250 s left: 500 more; this first timing may grow the plan ...
    n = plan.replan(200, 150.0, 400.0, n, 1000);
    CHECK(n == 700);
    // ... and from then on it only shrinks again.
    CHECK(plan.replan(250, 170.0, 400.0, n, 1000) == 700);  // 0.45 s a step would allow 761
    n = plan.replan(300, 220.0, 400.0, n, 1000);            // 0.633 s a step: 180 s / 0.633 = 284 more
    CHECK(n == 584);
    // The join: its steps (0.25 s each) are timed from its mark and grow the plan once, up to the cap.
    plan.begin(search::BudgetPlan::joined, 300, 220.0);
    n = plan.replan(340, 230.0, 400.0, n, 1000);
    CHECK(n == 1000);  // 170 s / 0.25 s = 680 more would be 1020
    CHECK(plan.replan(380, 245.0, 400.0, n, 2000) == 876);  // grown already: 0.3125 s a step, shrinks only
    // A phase that is never timed never grows: straight from the search to the join.
    search::BudgetPlan fresh;
    fresh.begin(search::BudgetPlan::derived, 100, 50.0);
    fresh.begin(search::BudgetPlan::joined, 200, 100.0);
    CHECK(fresh.replan(220, 105.0, 200.0, 300, 400) == 400);   // 0.25 s a step: 380 more, capped at 400
    CHECK(fresh.replan(240, 130.0, 200.0, 400, 1000) == 333);  // 0.75 s a step, 70 s left
    CHECK_FALSE(fresh.marks[search::BudgetPlan::derived].grown);
    // The marks survive a checkpoint.
    ByteWriter w;
    fresh.save_state(w);
    search::BudgetPlan back;
    ByteReader r(w.bytes.data(), w.bytes.size(), "plan");
    back.load_state(r);
    CHECK(r.remaining() == 0);
    CHECK(back.replan(240, 130.0, 200.0, 400, 1000) == 333);
    CHECK(back.marks[search::BudgetPlan::derived].step == 100);
    CHECK(back.marks[search::BudgetPlan::joined].grown);
}

TEST_CASE("the budget plan times the search from the end of its warm-up and keeps what the final pass needs",
          "[search]") {
    search::BudgetPlan plan;
    // The first 10 steps took 20 s (buffers, cuDNN's algorithm search); the next 30 take 15 s.
    plan.skip_warmup(10, 20.0);
    plan.skip_warmup(12, 21.0);  // once only
    CHECK(plan.marks[search::BudgetPlan::search].step == 10);
    // Timed from step 10: 0.5 s a step, 65 s left: 130 more. From the start it would be 0.875 s: 74 more.
    CHECK(plan.replan(40, 35.0, 100.0, 1000, 1000) == 170);
    CHECK(search::steps_within_budget(40, 35.0, 0, 0.0, 100.0, 1000) == 114);
    // A checkpointed plan keeps its mark: skip_warmup after a resume changes nothing.
    ByteWriter w;
    plan.save_state(w);
    search::BudgetPlan back;
    ByteReader r(w.bytes.data(), w.bytes.size(), "plan");
    back.load_state(r);
    back.skip_warmup(10, 30.0);
    CHECK(back.marks[search::BudgetPlan::search].seconds == 20.0);

    // The reserve: 20,000 images at 1 ms each, half again as margin, and 2 s.
    CHECK(search::final_pass_reserve(20000, 1e-3) == Approx(32.0));
    CHECK(search::final_pass_reserve(0, 1e-3) == Approx(2.0));
    require_throws_with<value_error>([] { (void)search::final_pass_reserve(-1, 1e-3); }, {"-1 images"});
    require_throws_with<value_error>([] { (void)search::final_pass_reserve(10, std::nan("")); }, {"final_pass_reserve"});
}

TEST_CASE("schedule progress: step / total, bent linearly to the end where the plan was remade", "[search]") {
    CHECK(search::schedule_progress(0, 0, 0.0, 400) == 0.0);
    CHECK(search::schedule_progress(100, 0, 0.0, 400) == Approx(0.25));
    CHECK(search::schedule_progress(400, 0, 0.0, 400) == 1.0);
    CHECK(search::schedule_progress(500, 0, 0.0, 400) == 1.0);  // past the end: clamped
    // At step 280 of 390 (t = 0.718) the plan grows to 440: the schedules go on from 0.718, not
    // from 280 / 440 = 0.636, and reach 1 at the new end.
    const double t = search::schedule_progress(280, 0, 0.0, 390);
    CHECK(t == Approx(280.0 / 390));
    CHECK(search::schedule_progress(280, 280, t, 440) == Approx(t));
    CHECK(search::schedule_progress(360, 280, t, 440) == Approx(t + (1 - t) * 0.5));
    CHECK(search::schedule_progress(440, 280, t, 440) == Approx(1.0));
    CHECK(search::schedule_progress(290, 280, t, 280) == 1.0);  // no steps left: the end
}

namespace {

/// 5 classes of 16x16 colour images (3 channels): a bright shape (horizontal bar, vertical bar,
/// diagonal, anti-diagonal, 4x4 square) at a random offset in a random colour (each channel's
/// brightness in [0.3, 1]), on noise. The class is the shape, not the colour, so colour-changing DA ops keep the label.
data::Dataset shapes(std::int64_t n, std::uint64_t seed, data::Split split) {
    data::Dataset d;
    d.images = Tensor<float>(Shape{n, 3, 16, 16});
    d.classes = 5;
    d.split = split;
    const PhiloxStream s{seed, 1};
    for (std::int64_t i = 0; i < n; ++i) {
        const auto r = s.block(static_cast<std::uint64_t>(i));
        const int label = static_cast<int>(r[0] % 5), off = static_cast<int>(r[1] % 8) + 4;
        const auto r2 = s.block(static_cast<std::uint64_t>(n + i));  // the colour: each channel's brightness
        const int oy = static_cast<int>(r[3] % 10) + 1, ox = static_cast<int>((r[3] >> 8) % 10) + 1;
        d.labels.push_back(label);
        for (int c = 0; c < 3; ++c) {
            const float bright = 0.3f + 0.7f * static_cast<float>(r2[static_cast<std::size_t>(c)] % 1000) / 1000.0f;
            for (int y = 0; y < 16; ++y)
                for (int x = 0; x < 16; ++x) {
                    const bool on = (label == 0   ? (y == off || y == off + 1)
                                            : label == 1 ? (x == off || x == off + 1)
                                            : label == 2 ? std::abs(x - y) <= 1
                                            : label == 3 ? std::abs(x + y - 15) <= 1
                                                         : (y >= oy && y < oy + 4 && x >= ox && x < ox + 4));
                    const auto k = ((i * 3 + c) * 16 + y) * 16 + x;
                    const float noise = 0.2f * s.uniform(static_cast<std::uint64_t>(n) * 4 + static_cast<std::uint64_t>(k));
                    d.images[k] = ((on ? bright : 0.0f) + noise - 0.2f) / 0.3f;
                }
        }
    }
    return d;
}

}  // namespace

TEST_CASE("joint search on another dataset: colour images of another size and class count, the validation slice "
          "a share of the data, a time budget of seconds", "[search]") {
    const auto train = shapes(330, 3, data::Split::train), test = shapes(100, 4, data::Split::test);
    auto o = tiny_options("");
    o.run.validation = 0.1;  // 33 of 330 images
    o.run.validation_batch = 64;  // more than the slice: the slice's size is used
    o.run.epochs = 6;
    Joint js(train, test, o, {}, tiny_space());
    CHECK(js.validation_size() == 33);
    CHECK(js.steps_per_epoch() == (330 - 33) / 16);
    CHECK(js.net().forward(Var<float>(Tensor<float>::zeros(Shape{2, 3, 16, 16}))).value().shape() == Shape{2, 5});
    const auto res = js.run();
    INFO("test accuracy " << res.test_accuracy);
    CHECK(res.test_accuracy > 0.45);  // chance is 1/5; measured 0.72
    CHECK(js.log().back()["val_accuracy"].get<double>() > 0.45);

    // A budget of 30 s on a clock that charges 1 s to each of the 10 warm-up steps and 0.04 s to
    // each later one, nothing to evaluation: the plan, fixed at the epoch end at step 36 (10 + 26 x
    // 0.04 = 11.04 s), times only the 26 steps since the warm-up and keeps 2 s for the final pass:
    // 36 + (0.97 x 30 - 2 - 11.04) / 0.04 = 437 steps (rounding may move a replan by one). The
    // old plan, timed from step 0 with 60 s kept, had a negative budget and stopped at once.
    auto timed = tiny_options("");
    timed.run.validation = 0.1;
    timed.run.epochs = 1000;
    timed.run.minutes = 0.5;
    const Joint* self = nullptr;
    timed.run.clock = [&] {
        const double k = self ? static_cast<double>(self->step()) : 0.0;
        return k <= 10 ? k : 10 + 0.04 * (k - 10);
    };
    Joint tj(train, test, timed, {}, tiny_space());
    self = &tj;
    const auto tr = tj.run();
    CHECK(tr.steps >= 436);
    CHECK(tr.steps <= 438);
    require_throws_with<value_error>([&] { Joint(train, test, [&] { auto x = o; x.run.validation = 1.5; return x; }(), {}, tiny_space()); },
                                     {"whole number"});
    require_throws_with<value_error>([&] { Joint(train, test, [&] { auto x = o; x.run.validation = 0.001; return x; }(), {}, tiny_space()); },
                                     {"holds no image"});
}

TEST_CASE("a choice run reads no test set, keeps the validation slice held out and reports its accuracy",
          "[search]") {
    const auto train = bars(320, 1, data::Split::train), test = bars(60, 2, data::Split::test);
    const std::string out = fresh_dir("choice");
    auto o = tiny_options(out);
    require_throws_with<value_error>([&] { Joint(train, o, {}, tiny_space()); }, {"choice run", "join_validation = 1"});
    o.run.join_validation = 1;
    Joint choice(train, o, {}, tiny_space());
    CHECK(choice.choice_run());
    const auto r = choice.run();
    CHECK(std::isnan(r.test_accuracy));
    INFO("validation accuracy " << r.val_accuracy);
    CHECK(r.val_accuracy > 0.5);  // chance is 1/3
    const auto result = nlohmann::json::parse(std::ifstream(out + "/result.json"));
    CHECK(result["test_accuracy"].is_null());
    CHECK(result["val_accuracy"].get<double>() == r.val_accuracy);
    CHECK(result["run"] == "choice");
    CHECK(result["seed_role"] == "choice");
    CHECK(result["host"]["threads"].get<int>() >= 1);
    CHECK_FALSE(result["host"]["cpu"].get<std::string>().empty());
    std::ifstream rin(out + "/report.html");
    const std::string html((std::istreambuf_iterator<char>(rin)), std::istreambuf_iterator<char>());
    CHECK(html.find("a choice run: the test set was not read") != std::string::npos);

    // The same options with a test set and a headline seed: a final run measures both while the
    // slice is held out; the seed's role is recorded.
    auto f = o;
    f.run.seed = search::headline_seed;
    f.run.out_dir = fresh_dir("final");
    Joint final_run(train, test, f, {}, tiny_space());
    CHECK_FALSE(final_run.choice_run());
    const auto fr = final_run.run();
    INFO("test accuracy " << fr.test_accuracy);
    CHECK(fr.test_accuracy > 0.5);
    CHECK(std::isfinite(fr.val_accuracy));
    const auto fres = nlohmann::json::parse(std::ifstream(f.run.out_dir + "/result.json"));
    CHECK(fres["run"] == "final");
    CHECK(fres["seed_role"] == "headline");
    CHECK(fres["test_accuracy"].get<double>() == fr.test_accuracy);
}

TEST_CASE("report charts: line chart and heat map SVG", "[search]") {
    const std::string chart = search::svg_line_chart("lr", "epoch", {{"lr", {{1, 0.1}, {2, 0.05}, {3, 0.01}}}}, true);
    CHECK(chart.find("<polyline") != std::string::npos);
    CHECK(chart.find(">lr<") != std::string::npos);
    CHECK(chart.find(">0.05<") != std::string::npos);  // log ticks at 1, 2, 5 x 10^k
    CHECK(chart.find(">0.02<") != std::string::npos);
    CHECK(chart.find(">0.03162<") == std::string::npos);
    CHECK(chart.find(">1.5<") == std::string::npos);  // epochs get whole-number ticks
    CHECK(search::svg_line_chart("empty", "x", {}).find("no data") != std::string::npos);
    const std::string heat = search::svg_heatmap("h", {"a<b", "c"}, {"1", "2"}, {{0.0, 1.0}, {0.5, 0.25}});
    CHECK(heat.find("a&lt;b") != std::string::npos);
    CHECK(heat.find("rgb(55,55,155)") != std::string::npos);  // value 1: the darkest shade
    CHECK(heat.find("rgb(255,255,255)") != std::string::npos);
    CHECK(heat.find("rotate(") == std::string::npos);  // short column labels stay level
    // Long row labels move the cells right so that the labels fit; long column labels are slanted.
    const std::string wide = search::svg_heatmap("h", {"stage2.layer1 #0 (shuffle_xception)"}, {"TranslateY", "Rotate"},
                                                 {{0.1, 0.2}}, 16, 16);
    const auto x = wide.find("<rect x=\"");
    REQUIRE(x != std::string::npos);
    CHECK(std::stoi(wide.substr(x + 9)) >= static_cast<int>(6.5 * 35));
    CHECK(wide.find("rotate(-60") != std::string::npos);
}

namespace {
// The policy of docs/search.md's tutorial, verbatim: it must plug in and run.
template <class T = float>
class BrightnessOnly {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "brightness_only";

    Var<T> augment(const Tensor<T>& x, da::DaContext& ctx) {
        const auto s = ctx.gen->next_stream();
        std::vector<da::OpDraw> draws;
        for (std::int64_t i = 0; i < x.dim(0); ++i) draws.push_back(da::random_draw(da::Op::brightness, s, i));
        std::vector<double> m(draws.size(), magnitude_);
        auto y = da::augment_images<T>(da::to_pixels(x, pixels_), draws, m, 1);
        da::from_pixels_(y, pixels_);
        return Var<T>(y, false);
    }
    void update(const Tensor<T>& losses, da::DaContext&) {
        double mean = 0;
        for (std::int64_t i = 0; i < losses.numel(); ++i) mean += losses[i];
        mean /= static_cast<double>(losses.numel());
        magnitude_ = std::clamp(magnitude_ + (mean > 0.5 ? -0.001 : 0.001), 0.0, 1.0);  // adapt to the loss
    }
    std::vector<da::PolicyEntry> summary(std::size_t) const { return {{{da::Op::brightness}, 1.0, {magnitude_}, {1.0}}}; }
    bool searching() const { return true; }
    void save_state(ByteWriter& w) const { w.put(magnitude_); }
    void load_state(ByteReader& r) { magnitude_ = r.get<double>(); }

    da::PixelSpace pixels_{};
    double magnitude_ = 0.3;
};
}  // namespace

namespace {
// The NAS and HPO skeletons of docs/search.md, verbatim: they must plug in and run.
template <class Space, class T = float, Device D = cpu>
class RandomArch {                           // one uniform draw at the first step, then fixed
public:
    using space_type = Space;
    using value_type = T;
    using device_type = D;
    static constexpr std::string_view policy_name = "random_arch";

    explicit RandomArch(nas::Supernet<T, D>& net) : net_(&net) {}
    void prepare(nas::NasContext<T, D>& ctx) {
        if (arch_.empty()) {
            const auto s = ctx.gen->next_stream();  // from the run's generator: a resume draws the same
            for (std::size_t d = 0; d < net_->decisions().size(); ++d)
                arch_.push_back(static_cast<std::int64_t>(s.word(d) % static_cast<std::uint64_t>(net_->decisions()[d].size())));
        }
        net_->set_architecture(arch_);
    }
    void update(nas::NasContext<T, D>&) {}  // nothing to learn
    std::vector<std::vector<double>> probabilities() const {
        std::vector<std::vector<double>> p;
        for (std::size_t d = 0; d < net_->decisions().size(); ++d) {
            p.emplace_back(static_cast<std::size_t>(net_->decisions()[d].size()), 0.0);
            if (!arch_.empty()) p.back()[static_cast<std::size_t>(arch_[d])] = 1.0;
        }
        return p;
    }
    std::vector<std::int64_t> derived() const { return arch_; }
    bool searching() const { return false; }
    void save_state(ByteWriter& w) const { put_ints(w, arch_); }
    void load_state(ByteReader& r) { arch_.clear(); get_ints(r, arch_, "RandomArch state"); }

private:
    nas::Supernet<T, D>* net_;
    std::vector<std::int64_t> arch_;
};

template <class T = float, Device D = cpu>
class StepDecay {                            // lr0 * 0.5^(step / every), plain SGD with momentum
public:
    using value_type = T;
    using device_type = D;
    static constexpr std::string_view policy_name = "step_decay";

    StepDecay(const std::vector<optim::ParamGroup<T, D>>& groups, double lr0, std::int64_t every, double momentum)
        : sgd_(groups, {momentum, true, 0.0}), lr0_(lr0), every_(every) {}
    Var<T, D> training_loss(const Var<T, D>& logits, const Tensor<std::int32_t, D>& labels) const {
        return ops::cross_entropy(logits, labels);
    }
    void backward(const Var<T, D>& loss, const Var<T, D>&, const Tensor<std::int32_t, D>&) { loss.backward(); }
    void step(hpo::HpoContext<T, D>& ctx) {
        lr_ = lr0_ * std::pow(0.5, static_cast<double>(ctx.step / every_));
        sgd_.set_lr(lr_);
        sgd_.step();
        sgd_.zero_grad();
    }
    std::vector<std::pair<std::string, double>> values() const { return {{"lr", lr_}}; }
    void save_state(ByteWriter& w) const { sgd_.save_state(w); w.put(lr_); }
    void load_state(ByteReader& r) { sgd_.load_state(r); lr_ = r.get<double>(); }

private:
    optim::SGD<T, D> sgd_;
    double lr0_, lr_ = 0;
    std::int64_t every_;
};
}  // namespace

namespace {
// A policy of one's own with an options type: JointSearch makes it from Options::da, as it makes
// the library's, with no factory (search/make.hpp).
struct ConstantBrightnessOptions {
    da::PixelSpace pixels{};
    double magnitude = 0.1;
};
void to_json(nlohmann::json& j, const ConstantBrightnessOptions& o) { j = {{"magnitude", o.magnitude}}; }

template <class T = float>
class ConstantBrightness {
public:
    using value_type = T;
    using options_type = ConstantBrightnessOptions;
    static constexpr std::string_view policy_name = "constant_brightness";
    explicit ConstantBrightness(const ConstantBrightnessOptions& o) : opt(o) {}
    Var<T> augment(const Tensor<T>& x, da::DaContext&) { return Var<T>(x.clone(), false); }
    void update(const Tensor<T>&, da::DaContext&) {}
    std::vector<da::PolicyEntry> summary(std::size_t) const { return {{{da::Op::brightness}, 1.0, {opt.magnitude}, {1.0}}}; }
    bool searching() const { return false; }
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
    ConstantBrightnessOptions opt;
};
}  // namespace

TEST_CASE("every policy is made from its own options: a user's DA policy, FixedArch, FixedSchedule", "[search]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    using S = search::JointSearch<ConstantBrightness, nas::FixedArch<nas::ShuffleSpace>, hpo::FixedSchedule>;
    static_assert(std::is_same_v<S::Options, search::JointOptions<ConstantBrightnessOptions, nas::FixedArchOptions,
                                                                  hpo::FixedScheduleOptions>>);
    auto o = tiny_options<S>("");
    o.da.magnitude = 0.25;
    o.nas.architecture = {1, 2};
    o.hpo.momentum = 0.5;
    o.run.lr = 0.2;
    S js(train, test, o, {}, tiny_space());
    CHECK(js.da_policy().opt.magnitude == 0.25);
    CHECK(js.da_policy().opt.pixels.std == 0.35);  // the run's pixel space, put into the options' `pixels`
    CHECK(js.nas_policy().derived() == std::vector<std::int64_t>{1, 2});
    CHECK(js.hpo_policy().rates(5).lr[0] == Approx(0.2 * js.lr_factor(5)));  // the groups' rate times the schedule
    const auto c = js.config_json();
    CHECK(c.at("da_options").at("magnitude") == 0.25);
    CHECK(c.at("nas_options").at("architecture") == std::vector<std::int64_t>{1, 2});
    CHECK(c.at("hpo_options").at("momentum") == 0.5);
    CHECK(c.at("lr") == 0.2);
    // DSNAS's warm-up in epochs becomes steps through the run's schedule.
    auto od = tiny_options<Joint>("");
    od.nas.warmup_epochs = 2.0;
    Joint dj(train, test, od, {}, tiny_space());
    CHECK(dj.nas_policy().options().warmup_steps == 2 * dj.steps_per_epoch());
}

TEST_CASE("the tutorial's NAS and HPO policies plug into the joint search", "[search]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    using J = search::JointSearch<da::PairPolicyDA, RandomArch<nas::ShuffleSpace>, StepDecay>;
    auto o = tiny_options<J>("");
    require_throws_with<value_error>([&] { J(train, test, o, {}, tiny_space()); },
                                     {"HPO policy 'step_decay' has no constructor (groups, options, lr_factor)",
                                      "set Factories::hpo"});
    J::Factories f;
    f.hpo = [](const auto& groups, const J::Options& opt, auto) {
        return std::make_unique<StepDecay<float>>(groups, opt.run.lr, 10, 0.9);
    };
    J js(train, test, o, f, tiny_space());
    const auto r = js.run();
    REQUIRE(r.architecture.size() == 2);
    CHECK(r.architecture == js.nas_policy().derived());  // the one draw, kept to the end
    for (std::size_t d = 0; d < 2; ++d) CHECK(js.nas_policy().probabilities()[d][static_cast<std::size_t>(r.architecture[d])] == 1.0);
    const auto last = js.total_steps() - 1;
    CHECK(js.total_steps() > 20);
    CHECK(js.hpo_policy().values()[0].second == Approx(o.run.lr * std::pow(0.5, static_cast<double>(last / 10))));
    CHECK(r.test_accuracy > 0.34);
}

TEST_CASE("the tutorial's own DA policy plugs into the joint search with a fixed architecture", "[search]") {
    const auto train = bars(400, 1, data::Split::train), test = bars(150, 2, data::Split::test);
    using S = search::JointSearch<BrightnessOnly, nas::FixedArch<nas::ShuffleSpace>, hpo::FixedSchedule>;
    auto o = tiny_options<S>("");
    o.run.epochs = 1;
    S::Factories f;  // a policy without options_type: a factory makes it
    f.da = [](const S::Options& opt) {
        auto p = std::make_unique<BrightnessOnly<float>>();
        p->pixels_ = opt.run.pixels;
        return p;
    };
    S js(train, test, o, f, tiny_space());
    const auto r = js.run();
    CHECK(r.architecture == std::vector<std::int64_t>{0, 0});  // FixedArch's default: choice 0 everywhere
    CHECK(r.test_accuracy > 0.34);
    REQUIRE(js.log().size() == 1);
    CHECK(js.log()[0]["phase"] == "train");  // nothing to search
    CHECK(js.da_policy().magnitude_ != 0.3);  // update() ran
    CHECK(r.da_policy[0]["ops"][0] == "Brightness");
}

TEST_CASE("joint search in micro-batches: a run in pieces resumes to the state of an uninterrupted one, and what "
          "cannot be cut into pieces is refused", "[search][dist]") {
    // 72 training images, batches of 12 in 2 pieces of 6: the sharded step of docs/distributed.md
    // on one rank (DA terms, DSNAS gates, hypergradients through the reductions, flags agreed).
    const auto train = bars(136, 1, data::Split::train), test = bars(30, 2, data::Split::test);
    auto options = [](const std::string& dir) {
        auto o = tiny_options(dir);
        o.run.batch = 12;
        o.run.validation_batch = 12;
        o.run.micro_batches = 2;
        return o;
    };
    const std::string a_dir = fresh_dir("micro_a"), b_dir = fresh_dir("micro_b");
    Joint a(train, test, options(a_dir), {}, tiny_space());
    REQUIRE(a.sharded());
    const auto ra = a.run();
    CHECK(ra.steps == 12);
    CHECK(std::isfinite(ra.test_accuracy));

    auto ob = options(b_dir);
    ob.run.stop_after_steps = 5;
    {
        Joint b(train, test, ob, {}, tiny_space());
        require_throws_with<search::interrupted>([&] { b.run(); }, {"stopped at step 5"});
    }
    ob.run.stop_after_steps = -1;
    Joint b(train, test, ob, {}, tiny_space());
    REQUIRE(b.resume());
    const auto rb = b.run();
    same_result(rb, ra);

    // A different number of pieces is a different float summation order, not a different run: the
    // checkpoint of a run in 2 pieces resumes in 1 (what a change in the number of ranks does).
    ob.run.stop_after_steps = 5;
    {
        Joint c(train, test, ob, {}, tiny_space());
        require_throws_with<search::interrupted>([&] { c.run(); }, {"stopped at step 5"});
    }
    auto oc = ob;
    oc.run.stop_after_steps = -1;
    oc.run.micro_batches = 1;
    Joint c(train, test, oc, {}, tiny_space());
    REQUIRE(c.resume());
    CHECK(c.step() == 5);
    CHECK_FALSE(c.sharded());
    CHECK(std::isfinite(c.run().test_accuracy));

    auto bad = options("");
    bad.run.micro_batches = 5;
    require_throws_with<value_error>([&] { Joint(train, test, bad, {}, tiny_space()); },
                                     {"5 micro-batches = 5 equal pieces", "batch (12)", "not a multiple of 5"});
    bad.run.micro_batches = 0;
    require_throws_with<value_error>([&] { Joint(train, test, bad, {}, tiny_space()); }, {"micro_batches must be >= 1"});
    using G = search::JointSearch<da::NoAugment, nas::GDAS<nas::ShuffleSpace>, hpo::FixedSchedule>;
    auto og = tiny_options<G>("");
    og.run.batch = 12;
    og.run.validation_batch = 12;
    og.run.micro_batches = 2;
    require_throws_with<value_error>([&] { G(train, test, og, {}, tiny_space()); },
                                     {"gdas (NAS)", "do not all run sharded", "declare data_parallel"});
    auto oh = options("");
    oh.hpo.horizon.forgetting = 0.9;
    Joint forward_mode(train, test, oh, {}, tiny_space());
    require_throws_with<value_error>([&] { forward_mode.run(); }, {"forward-mode hypergradient", "does not run sharded"});
}
