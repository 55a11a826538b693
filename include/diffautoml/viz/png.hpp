#pragma once
// PNG for people: 8-bit grey or RGB pictures encoded by stb_image_write (Debian's libstb-dev,
// linked through the diffautoml::visualize target), and base64 for embedding one in SVG or HTML.
// Opt-in: nothing in the library proper includes this header (include <diffautoml/visualize.hpp>).
#include <cstdint>
#include <string>
#include <vector>

#if !__has_include(<stb/stb_image_write.h>)
#error "diffautoml/visualize.hpp needs stb_image_write.h: install libstb-dev and link diffautoml::visualize"
#endif
#include <stb/stb_image_write.h>

#include "../core/error.hpp"

namespace diffautoml {

/// A PNG file of `width` x `height` pixels with 1 (grey) or 3 (RGB) channels, row-major,
/// channels interleaved.
inline std::vector<std::uint8_t> encode_png(std::int64_t width, std::int64_t height, int channels,
                                            const std::vector<std::uint8_t>& pixels) {
    DAM_CHECK(width > 0 && height > 0 && width < (1 << 24) && height < (1 << 24), value_error,
              "encode_png: size {} x {} must be positive and below 2^24", width, height);
    DAM_CHECK(channels == 1 || channels == 3, value_error, "encode_png: {} channels; use 1 (grey) or 3 (RGB)", channels);
    DAM_CHECK(static_cast<std::int64_t>(pixels.size()) == width * height * channels, shape_error,
              "encode_png: {} x {} x {} needs {} bytes, got {}", width, height, channels, width * height * channels,
              pixels.size());
    std::vector<std::uint8_t> out;
    auto append = [](void* context, void* data, int size) {
        auto* o = static_cast<std::vector<std::uint8_t>*>(context);
        const auto* d = static_cast<const std::uint8_t*>(data);
        o->insert(o->end(), d, d + size);
    };
    const int w = static_cast<int>(width), h = static_cast<int>(height);
    DAM_CHECK(::stbi_write_png_to_func(append, &out, w, h, channels, pixels.data(), w * channels) != 0, io_error,
              "encode_png: stb_image_write could not encode {} x {} x {} pixels (out of memory?)", width, height,
              channels);
    return out;
}

/// Standard base64 (RFC 4648) with padding.
inline std::string base64(const std::vector<std::uint8_t>& bytes) {
    static constexpr char kTable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::uint32_t b0 = bytes[i], b1 = i + 1 < bytes.size() ? bytes[i + 1] : 0u,
                            b2 = i + 2 < bytes.size() ? bytes[i + 2] : 0u;
        const std::uint32_t v = (b0 << 16) | (b1 << 8) | b2;
        out += kTable[(v >> 18) & 63];
        out += kTable[(v >> 12) & 63];
        out += i + 1 < bytes.size() ? kTable[(v >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? kTable[v & 63] : '=';
    }
    return out;
}

}  // namespace diffautoml
