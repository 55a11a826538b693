#include <algorithm>
#include <filesystem>
#include <set>

#include <zlib.h>

#include "test_helpers.hpp"

using namespace dam_test;
namespace fs = std::filesystem;

namespace {
fs::path dir() {
    auto d = fs::temp_directory_path() / "dam_tests_data";
    fs::create_directories(d);
    return d;
}
std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> dims, const std::vector<std::uint8_t>& values,
                                    std::uint8_t type = 0x08) {
    std::vector<std::uint8_t> b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
    for (auto d : dims)
        for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
    b.insert(b.end(), values.begin(), values.end());
    return b;
}
std::string write(const std::string& name, const std::vector<std::uint8_t>& bytes, bool gz) {
    const auto p = (dir() / name).string();
    if (gz) {
        gzFile f = gzopen(p.c_str(), "wb");
        gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
        gzclose(f);
    } else {
        write_file_atomic(p, bytes);
    }
    return p;
}
/// n images of h x w whose pixels are (i + k) % 256, labels i % classes.
std::pair<std::string, std::string> make_dataset(const std::string& name, std::uint32_t n, std::uint32_t h, std::uint32_t w,
                                                 int classes, bool gz) {
    std::vector<std::uint8_t> px, lb;
    for (std::uint32_t i = 0; i < n; ++i) {
        for (std::uint32_t k = 0; k < h * w; ++k) px.push_back(static_cast<std::uint8_t>((i + k) % 256));
        lb.push_back(static_cast<std::uint8_t>(i % static_cast<std::uint32_t>(classes)));
    }
    return {write(name + "-images", idx_bytes({n, h, w}, px), gz), write(name + "-labels", idx_bytes({n}, lb), gz)};
}
}  // namespace

TEST_CASE("IDX files load plain and gzipped, with any size and number of classes", "[data]") {
    for (bool gz : {false, true}) {
        auto [im, lb] = make_dataset(gz ? "gz" : "plain", 37, 5, 4, 7, gz);
        auto d = data::load_idx_dataset(im, lb);
        CHECK(d.size() == 37);
        CHECK(d.classes == 7);
        CHECK(d.images.shape() == Shape{37, 1, 5, 4});
        CHECK(d.images[4 * 20 + 3] == Approx(((4 + 3) % 256) / 255.0));
        CHECK(d.labels[36] == 36 % 7);
    }
}

TEST_CASE("bad IDX input is a typed error naming the file and the problem", "[data][errors]") {
    auto [im, lb] = make_dataset("ok", 10, 3, 3, 4, true);
    require_throws_with<io_error>([&] { (void)data::read_idx((dir() / "missing.gz").string()); }, {"missing.gz", "does not exist"});
    const auto magic = write("magic", {1, 2, 8, 1, 0, 0, 0, 1, 5}, false);
    require_throws_with<format_error>([&] { (void)data::read_idx(magic); }, {"magic", "wrong magic number"});
    const auto type = write("type", idx_bytes({1}, {0, 0, 0, 0}, 0x0d), false);
    require_throws_with<format_error>([&] { (void)data::read_idx(type); }, {"type", "0x0d"});
    std::vector<std::uint8_t> px(3 * 3 * 10, 1);
    px.resize(px.size() - 5);
    const auto trunc = write("trunc", idx_bytes({10, 3, 3}, px), true);
    require_throws_with<format_error>([&] { (void)data::read_idx(trunc); }, {"trunc", "truncated", "90"});
    const auto fewer = write("fewer", idx_bytes({9}, std::vector<std::uint8_t>(9, 0)), false);
    require_throws_with<format_error>([&] { (void)data::load_idx_dataset(im, fewer); }, {"10 images", "9 labels"});
    require_throws_with<format_error>([&] { (void)data::load_idx_dataset(im, lb, {0, 0, 3}); }, {"label 3", "[0, 3)"});
    require_throws_with<format_error>([&] { (void)data::load_idx_dataset(im, lb, {28, 28, 0}); }, {"3x3", "28x28"});
    // A gzip file whose compressed stream is cut off.
    auto bytes = read_file(im);
    bytes.resize(bytes.size() / 2);
    const auto cut = write("cutgz", bytes, false);
    CHECK_THROWS_AS(data::read_idx(cut), format_error);
    // ... and its message is zlib's words, not freed memory: printable ASCII only.
    try {
        (void)data::read_idx(cut);
    } catch (const format_error& e) {
        const std::string m = e.what();
        CHECK(m.find("not a valid gzip stream") != std::string::npos);
        for (unsigned char c : m) {
            INFO(m);
            REQUIRE((c >= 0x20 && c < 0x7f));
        }
    }
    // Images given as labels: the dimensions are named, not a nonsense count.
    require_throws_with<format_error>([&] { (void)data::load_idx_dataset(im, im); },
                                      {"has 3 dimensions", "a labels file", "swapped"});
    // A header promising 2^31 x 28 x 28 values over 10 bytes: refused from the header, before the
    // product of the dimensions can overflow or anything that size is allocated.
    const auto huge = write("huge", idx_bytes({0x80000000u, 28, 28}, std::vector<std::uint8_t>(10, 0)), false);
    require_throws_with<format_error>([&] { (void)data::read_idx(huge); }, {"huge", "truncated"});
    const auto over = write("over", idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {}), false);
    require_throws_with<format_error>([&] { (void)data::read_idx(over); }, {"over", "truncated"});
}

TEST_CASE("train/validation split is seeded, disjoint and complete", "[data]") {
    auto [im, lb] = make_dataset("split", 50, 2, 2, 5, false);
    auto d = data::load_idx_dataset(im, lb);
    auto [tr, va] = data::split_train_val(d, 12, 3);
    auto [tr2, va2] = data::split_train_val(d, 12, 3);
    auto [tr3, va3] = data::split_train_val(d, 12, 4);
    CHECK(tr.size() == 38);
    CHECK(va.size() == 12);
    std::set<float> seen;  // pixel 0 of image i is i/255: identifies the sample
    for (std::int64_t i = 0; i < tr.size(); ++i) seen.insert(tr.images[i * 4]);
    for (std::int64_t i = 0; i < va.size(); ++i) seen.insert(va.images[i * 4]);
    CHECK(seen.size() == 50);
    bool same = true, differs = false;
    for (std::int64_t i = 0; i < 12; ++i) {
        same = same && va.images[i * 4] == va2.images[i * 4];
        differs = differs || va.images[i * 4] != va3.images[i * 4];
    }
    CHECK(same);
    CHECK(differs);
    require_throws_with<value_error>([&] { (void)data::split_train_val(d, 50, 1); }, {"validation size 50"});
}

TEST_CASE("balanced subset: seeded, an equal share of each class, refusing what it cannot give", "[data]") {
    // 4 classes of 30, 20, 12 and 8 images; pixel 0 identifies the sample.
    data::Dataset d;
    d.classes = 4;
    d.split = data::Split::train;
    const std::vector<int> counts{30, 20, 12, 8};
    d.images = Tensor<float>(Shape{70, 1, 1, 1});
    for (int c = 0, i = 0; c < 4; ++c)
        for (int k = 0; k < counts[static_cast<std::size_t>(c)]; ++k, ++i) {
            d.images[i] = static_cast<float>(i);
            d.labels.push_back(c);
        }
    const auto a = data::balanced_subset(d, 30, 5);
    REQUIRE(a.size() == 30);
    CHECK(a.split == data::Split::train);
    CHECK(a.classes == 4);
    std::vector<int> per(4, 0);
    std::set<float> ids;
    for (std::int64_t i = 0; i < a.size(); ++i) {
        ++per[static_cast<std::size_t>(a.labels[static_cast<std::size_t>(i)])];
        const auto id = static_cast<int>(a.images[i]);
        CHECK(d.labels[static_cast<std::size_t>(id)] == a.labels[static_cast<std::size_t>(i)]);  // the image's own label
        ids.insert(a.images[i]);
        if (i > 0) CHECK(a.images[i] > a.images[i - 1]);  // dataset order
    }
    CHECK(ids.size() == 30);                      // no sample twice
    std::sort(per.begin(), per.end());
    CHECK(per == std::vector<int>{7, 7, 8, 8});   // 30 / 4: two classes get one more
    const auto b = data::balanced_subset(d, 30, 5), c = data::balanced_subset(d, 30, 6);
    bool same = true, differs = false;
    for (std::int64_t i = 0; i < 30; ++i) {
        same = same && a.images[i] == b.images[i];
        differs = differs || a.images[i] != c.images[i];
    }
    CHECK(same);
    CHECK(differs);
    CHECK(data::balanced_subset(d, 32, 1).size() == 32);  // 8 of each: all of the smallest class
    require_throws_with<value_error>([&] { (void)data::balanced_subset(d, 36, 1); }, {"class 3", "8 samples", "share of 9"});
    require_throws_with<value_error>([&] { (void)data::balanced_subset(d, 3, 1); }, {"4 classes"});
    require_throws_with<value_error>([&] { (void)data::balanced_subset(d, 71, 1); }, {"70 images"});
}

TEST_CASE("concatenate puts one dataset after another and refuses mismatched ones", "[data]") {
    data::Dataset a, b, c;
    a.images = Tensor<float>(Shape{3, 1, 2, 2});
    b.images = Tensor<float>(Shape{2, 1, 2, 2});
    for (std::int64_t k = 0; k < 12; ++k) a.images[k] = static_cast<float>(k);
    for (std::int64_t k = 0; k < 8; ++k) b.images[k] = static_cast<float>(100 + k);
    a.labels = {0, 1, 2};
    b.labels = {2, 0};
    a.classes = b.classes = 3;
    a.split = data::Split::train;
    b.split = data::Split::train;
    const auto ab = data::concatenate(a, b);
    REQUIRE(ab.size() == 5);
    CHECK(ab.image_shape() == Shape{1, 2, 2});
    CHECK(ab.labels == std::vector<std::int32_t>{0, 1, 2, 2, 0});
    CHECK(ab.classes == 3);
    CHECK(ab.split == data::Split::train);
    for (std::int64_t k = 0; k < 12; ++k) CHECK(ab.images[k] == static_cast<float>(k));
    for (std::int64_t k = 0; k < 8; ++k) CHECK(ab.images[12 + k] == static_cast<float>(100 + k));

    c.images = Tensor<float>(Shape{1, 1, 3, 3});
    c.labels = {0};
    c.classes = 3;
    require_throws_with<value_error>([&] { data::concatenate(a, c); }, {"equal image shapes", "(1, 3, 3)"});
    c.images = Tensor<float>(Shape{1, 1, 2, 2});
    c.classes = 4;
    require_throws_with<value_error>([&] { data::concatenate(a, c); }, {"4 classes"});
}

TEST_CASE("the batch loader visits every sample once per epoch in a seeded order", "[data]") {
    auto [im, lb] = make_dataset("loader", 23, 2, 2, 3, false);
    auto d = data::load_idx_dataset(im, lb);
    data::BatchLoader loader(d, 5, true, 9);
    CHECK(loader.batches_per_epoch() == 5);
    std::vector<float> order1, order2;
    for (int epoch = 0; epoch < 2; ++epoch) {
        loader.start_epoch(epoch);
        std::multiset<float> seen;
        while (loader.has_next()) {
            auto b = loader.next();
            for (std::int64_t i = 0; i < b.images.dim(0); ++i) {
                seen.insert(b.images[i * 4]);
                (epoch ? order2 : order1).push_back(b.images[i * 4]);
                CHECK(b.labels[i] == static_cast<int>(std::lround(b.images[i * 4] * 255)) % 3);
            }
        }
        CHECK(seen.size() == 23);
        CHECK(std::set<float>(seen.begin(), seen.end()).size() == 23);
    }
    CHECK(order1 != order2);
    data::BatchLoader drop(d, 5, false, 0, true);
    CHECK(drop.batches_per_epoch() == 4);
}

TEST_CASE("Fashion-MNIST loads from the Debian package when it is installed", "[data][fashion]") {
    const std::string dirpath = "/usr/share/datasets/fashion-mnist";
    if (!fs::exists(dirpath + "/t10k-images-idx3-ubyte.gz")) {
        DAM_SKIP("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)");
    }
    auto test = data::load_fashion_mnist(dirpath, false);
    CHECK(test.size() == 10000);
    CHECK(test.classes == 10);
    auto [mean, sd] = data::pixel_stats(test);
    CHECK(std::abs(mean) < 0.05);
    CHECK(std::abs(sd - 1.0) < 0.05);
}
