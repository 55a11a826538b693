#pragma once
// Pictures for people: 8-bit PNG encoding (grey or RGB, zlib-compressed, CRC-checked chunks),
// base64 for embedding a PNG in SVG or HTML, and writing either atomically.
#include <cstdint>
#include <string>
#include <vector>

#include <zlib.h>

#include "io.hpp"

namespace diffautoml {

namespace detail {
inline void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}
inline void put_png_chunk(std::vector<std::uint8_t>& out, const char type[4], const std::vector<std::uint8_t>& data) {
    put_be32(out, static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    put_be32(out, crc32_of(out.data() + start, out.size() - start));
}
}  // namespace detail

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
    std::vector<std::uint8_t> out{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<std::uint8_t> ihdr;
    detail::put_be32(ihdr, static_cast<std::uint32_t>(width));
    detail::put_be32(ihdr, static_cast<std::uint32_t>(height));
    ihdr.insert(ihdr.end(), {8, static_cast<std::uint8_t>(channels == 1 ? 0 : 2), 0, 0, 0});
    detail::put_png_chunk(out, "IHDR", ihdr);
    // Each row: filter byte 0 (none), then the row's bytes.
    const std::size_t row = static_cast<std::size_t>(width * channels);
    std::vector<std::uint8_t> raw;
    raw.reserve((row + 1) * static_cast<std::size_t>(height));
    for (std::int64_t y = 0; y < height; ++y) {
        raw.push_back(0);
        raw.insert(raw.end(), pixels.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(y) * row),
                   pixels.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(y + 1) * row));
    }
    uLongf size = ::compressBound(static_cast<uLong>(raw.size()));
    std::vector<std::uint8_t> z(size);
    DAM_CHECK(::compress2(z.data(), &size, raw.data(), static_cast<uLong>(raw.size()), 6) == Z_OK, io_error,
              "encode_png: zlib compression failed");
    z.resize(size);
    detail::put_png_chunk(out, "IDAT", z);
    detail::put_png_chunk(out, "IEND", {});
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

/// Writes a text file atomically.
inline void write_text_atomic(const std::string& path, const std::string& text) {
    write_file_atomic(path, std::vector<std::uint8_t>(text.begin(), text.end()));
}

}  // namespace diffautoml
