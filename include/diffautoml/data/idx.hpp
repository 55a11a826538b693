#pragma once
// IDX files (the MNIST format), plain or gzip-compressed: magic 0x00 0x00 <type> <ndims>,
// ndims big-endian u32 sizes, then the values. zlib reads uncompressed files transparently.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <zlib.h>

#include "../core/error.hpp"

namespace diffautoml::data {

/// The content of an unsigned-byte IDX file.
struct IdxArray {
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> values;
    std::int64_t count() const { return dims.empty() ? 0 : dims[0]; }
};

namespace detail {
inline std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
    DAM_CHECK(std::filesystem::exists(path), io_error,
              "read_idx: '{}' does not exist (for Fashion-MNIST install the Debian package dataset-fashion-mnist, or "
              "pass the right path)",
              path);
    gzFile f = gzopen(path.c_str(), "rb");
    DAM_CHECK(f, io_error, "read_idx: cannot open '{}' for reading", path);
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> buf(1 << 20);
    int n;
    while ((n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0) out.insert(out.end(), buf.data(), buf.data() + n);
    int errnum = Z_OK;
    const char* msg = gzerror(f, &errnum);
    const std::string why = msg && *msg ? msg : "unknown zlib error";  // msg lives in f: copy it before gzclose
    gzclose(f);
    DAM_CHECK(n == 0 && (errnum == Z_OK || errnum == Z_STREAM_END), format_error,
              "read_idx: '{}' is not a valid gzip stream ({}); the download is probably corrupt or truncated", path,
              why);
    return out;
}
}  // namespace detail

/// Parses the (decompressed) bytes of an IDX file of unsigned bytes (type 0x08); `path` names it in
/// messages. With `expected_dims` > 0 the header must declare that many dimensions (`what` names
/// the kind of file, e.g. "a labels file"). Throws format_error for anything else, and allocates
/// nothing beyond a copy of the bytes given.
inline IdxArray parse_idx(const std::vector<std::uint8_t>& b, const std::string& path, int expected_dims = 0,
                          const char* what = "this file") {
    DAM_CHECK(b.size() >= 4, format_error, "read_idx: '{}' is only {} bytes long: too short for an IDX header", path, b.size());
    DAM_CHECK(b[0] == 0 && b[1] == 0, format_error,
              "read_idx: '{}' has the wrong magic number ({:02x} {:02x} {:02x} {:02x}): it is not an IDX file", path, b[0],
              b[1], b[2], b[3]);
    DAM_CHECK(b[2] == 0x08, format_error,
              "read_idx: '{}' holds values of type 0x{:02x}; only unsigned bytes (0x08) are supported", path, b[2]);
    const int nd = b[3];
    DAM_CHECK(nd >= 1 && nd <= 4, format_error, "read_idx: '{}' declares {} dimensions; expected 1 to 4", path, nd);
    DAM_CHECK(expected_dims <= 0 || nd == expected_dims, format_error,
              "read_idx: '{}' has {} dimensions; {} has {}. Are the images and labels files swapped?", path, nd, what,
              expected_dims);
    const std::size_t header = 4 + 4 * static_cast<std::size_t>(nd);
    DAM_CHECK(b.size() >= header, format_error, "read_idx: '{}' is truncated inside its header", path);
    IdxArray a;
    std::int64_t total = 1;
    for (int i = 0; i < nd; ++i) {
        const std::size_t o = 4 + 4 * static_cast<std::size_t>(i);
        const std::int64_t d = (std::int64_t{b[o]} << 24) | (std::int64_t{b[o + 1]} << 16) | (std::int64_t{b[o + 2]} << 8) |
                               std::int64_t{b[o + 3]};
        a.dims.push_back(d);
        // The bytes present bound any honest header: stop before the product can overflow.
        DAM_CHECK(d == 0 || total <= static_cast<std::int64_t>(b.size()) / d, format_error,
                  "read_idx: '{}' is truncated: its header promises more values than the {} bytes of the file; "
                  "replace it with a complete copy",
                  path, b.size());
        total *= d;
    }
    const std::size_t have = b.size() - header;
    DAM_CHECK(have >= static_cast<std::size_t>(total), format_error,
              "read_idx: '{}' is truncated: the header promises {} values but only {} follow; replace it with a "
              "complete copy",
              path, total, have);
    DAM_CHECK(have == static_cast<std::size_t>(total), format_error,
              "read_idx: '{}' has {} bytes after the {} values its header promises; the file is corrupt", path,
              have - static_cast<std::size_t>(total), total);
    a.values.assign(b.begin() + static_cast<std::ptrdiff_t>(header), b.end());
    return a;
}

/// Reads an IDX file of unsigned bytes, plain or gzip-compressed (see parse_idx).
inline IdxArray read_idx(const std::string& path, int expected_dims = 0, const char* what = "this file") {
    return parse_idx(detail::read_maybe_gzip(path), path, expected_dims, what);
}

}  // namespace diffautoml::data
