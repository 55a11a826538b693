// The opt-in pictures (diffautoml/visualize.hpp): PNG through stb_image_write, read back by an
// independent decoder (stb_image), base64, galleries of ops and of a policy, the policy table.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/diffautoml.hpp>
#include <diffautoml/visualize.hpp>
#include <stb/stb_image.h>

#include "test_helpers.hpp"

using namespace dam_test;
using namespace diffautoml::da;

namespace {

/// The pixels and channel count that stb_image reads back from PNG bytes.
std::vector<std::uint8_t> decode(const std::vector<std::uint8_t>& png, int& w, int& h, int& c) {
    unsigned char* p = stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &c, 0);
    REQUIRE(p != nullptr);
    std::vector<std::uint8_t> out(p, p + static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * static_cast<std::size_t>(c));
    stbi_image_free(p);
    return out;
}

}  // namespace

TEST_CASE("PNG encoding round-trips through an independent decoder", "[viz][io]") {
    const std::vector<std::uint8_t> grey{0, 64, 128, 192, 255, 7};
    const auto png = encode_png(3, 2, 1, grey);
    REQUIRE(png.size() > 8 + 25 + 12 + 12);
    CHECK(std::equal(png.begin(), png.begin() + 8, std::vector<std::uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}.begin()));
    auto be32 = [&](std::size_t at) {
        return (std::uint32_t(png[at]) << 24) | (std::uint32_t(png[at + 1]) << 16) | (std::uint32_t(png[at + 2]) << 8) |
               png[at + 3];
    };
    CHECK(be32(8) == 13);
    CHECK(std::string(png.begin() + 12, png.begin() + 16) == "IHDR");
    CHECK(be32(16) == 3);
    CHECK(be32(20) == 2);
    CHECK(png[24] == 8);  // bit depth
    CHECK(png[25] == 0);  // colour type: grey
    CHECK(be32(8 + 8 + 13) == crc32_of(png.data() + 12, 17));
    int w = 0, h = 0, c = 0;
    CHECK(decode(png, w, h, c) == grey);
    CHECK((w == 3 && h == 2 && c == 1));

    // RGB, large enough for the encoder's per-row filters to differ.
    std::vector<std::uint8_t> rgb(17 * 11 * 3);
    for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>((i * 37 + i / 51 * 11) % 256);
    const auto png3 = encode_png(17, 11, 3, rgb);
    CHECK(png3[25] == 2);  // colour type: RGB
    CHECK(decode(png3, w, h, c) == rgb);
    CHECK((w == 17 && h == 11 && c == 3));

    CHECK(base64({'M', 'a', 'n'}) == "TWFu");
    CHECK(base64({'M', 'a'}) == "TWE=");
    CHECK(base64({'M'}) == "TQ==");
    require_throws_with<value_error>([] { encode_png(2, 2, 2, std::vector<std::uint8_t>(8)); }, {"channels"});
    require_throws_with<shape_error>([] { encode_png(2, 2, 1, std::vector<std::uint8_t>(3)); }, {"needs 4 bytes"});
    require_throws_with<value_error>([] { encode_png(0, 2, 1, std::vector<std::uint8_t>{}); }, {"must be positive"});
}

TEST_CASE("galleries of ops and of a policy, and the policy table", "[viz][da]") {
    Tensor<float> imgs(Shape{2, 1, 4, 4});
    Generator g(1);
    uniform_(imgs, g, 0.0, 1.0);
    const auto gal = op_gallery(imgs, {Op::identity, Op::invert}, 0.5);
    CHECK(gal.rows == 3);
    for (std::int64_t k = 0; k < 32; ++k) {
        CHECK(gal.cells[32 + k] == imgs[k]);
        CHECK(gal.cells[64 + k] == Approx(1 - imgs[k]));
    }
    const Picture pic = render(gal, 2, 1);
    CHECK(pic.width == 2 * 8 + 3);
    CHECK(pic.height == 3 * 8 + 4);
    int w = 0, h = 0, c = 0;
    const auto decoded = decode(gallery_png(gal, 2), w, h, c);
    CHECK(decoded.size() == static_cast<std::size_t>(w * h * c));
    CHECK((w == render(gal, 2).width && h == render(gal, 2).height && c == 1));
    const std::string svg = gallery_svg(gal, 2, "ops");
    CHECK(svg.find("data:image/png;base64,") != std::string::npos);
    CHECK(svg.find(">Invert<") != std::string::npos);
    require_throws_with<value_error>([&] { write_gallery("/tmp/x.jpg", gal); }, {".svg or .png"});

    PairPolicyOptions po;
    po.ops = {Op::identity, Op::rotate};
    PairPolicyDA<float> p(po);
    p.set_logits({0.0, 2.0, 0.0, 0.0});
    const std::string table = policy_table(p.summary(2));
    CHECK(table.find("| 1 | ") != std::string::npos);
    CHECK(table.find("Identity (-, 1.00) | Rotate (0.50, 1.00)") != std::string::npos);
    Generator pg(3);
    const auto pgal = policy_gallery(p, imgs, 2, pg);
    CHECK(pgal.rows == 3);
    CHECK(pgal.row_labels[1] == "pair_policy #1");
}
