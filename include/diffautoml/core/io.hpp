#pragma once
// Binary file helpers: atomic writes (temp file + fsync + rename) and whole-file reads.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include "error.hpp"

namespace diffautoml {

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one,
/// never a partial write: the data goes to a temporary file in the same folder, is flushed to
/// disk, and is renamed over the target.
inline void write_file_atomic(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    DAM_CHECK(fd >= 0, io_error, "write_file_atomic: cannot create '{}' (check that the folder exists and is writable)", tmp);
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (w <= 0) {
            ::close(fd);
            std::remove(tmp.c_str());
            throw io_error(fmt::format("write_file_atomic: writing '{}' failed after {} of {} bytes (disk full?)", tmp,
                                       done, bytes.size()));
        }
        done += static_cast<std::size_t>(w);
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw io_error(fmt::format("write_file_atomic: could not move '{}' into place as '{}'", tmp, path));
    }
}

/// Writes a text file atomically.
inline void write_text_atomic(const std::string& path, const std::string& text) {
    write_file_atomic(path, std::vector<std::uint8_t>(text.begin(), text.end()));
}

/// Creates `dir` and its parents if missing; io_error naming it and the system's reason otherwise.
inline void create_directories(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    DAM_CHECK(!ec && std::filesystem::is_directory(dir), io_error,
              "cannot create the output folder '{}': {}; choose a writable place (--out)", dir,
              ec ? ec.message() : std::string("a file of that name is in the way"));
}

/// Reads a whole file (no decompression).
inline std::vector<std::uint8_t> read_file(const std::string& path) {
    DAM_CHECK(!std::filesystem::is_directory(path), io_error, "read_file: '{}' is a folder, not a file; name the file in it",
              path);
    std::FILE* f = std::fopen(path.c_str(), "rb");
    DAM_CHECK(f, io_error, "read_file: cannot open '{}': {}", path,
              std::filesystem::exists(path) ? "permission denied or not a file" : "no such file");
    std::vector<std::uint8_t> data;
    std::uint8_t buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
    const bool err = std::ferror(f);
    std::fclose(f);
    DAM_CHECK(!err, io_error, "read_file: error while reading '{}' (a failing disk or a file that is not a regular file?)",
              path);
    return data;
}

/// CRC-32 (zlib) of a byte range.
inline std::uint32_t crc32_of(const std::uint8_t* p, std::size_t n) {
    uLong c = ::crc32(0L, Z_NULL, 0);
    while (n > 0) {
        const uInt chunk = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
        c = ::crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return static_cast<std::uint32_t>(c);
}

/// Little helpers to build and parse binary records.
class ByteWriter {
public:
    template <class V>
    void put(const V& v) {
        const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
        bytes.insert(bytes.end(), p, p + sizeof(V));
    }
    void put_bytes(const void* p, std::size_t n) {
        const auto* b = static_cast<const std::uint8_t*>(p);
        bytes.insert(bytes.end(), b, b + n);
    }
    void put_string(const std::string& s) {
        put(static_cast<std::uint32_t>(s.size()));
        put_bytes(s.data(), s.size());
    }
    std::vector<std::uint8_t> bytes;
};

class ByteReader {
public:
    ByteReader(const std::uint8_t* p, std::size_t n, std::string what) : p_(p), n_(n), what_(std::move(what)) {}
    template <class V>
    V get() {
        V v;
        need(sizeof(V));
        std::memcpy(&v, p_ + pos_, sizeof(V));
        pos_ += sizeof(V);
        return v;
    }
    const std::uint8_t* get_bytes(std::size_t n) {
        need(n);
        const std::uint8_t* r = p_ + pos_;
        pos_ += n;
        return r;
    }
    /// Copies the next n bytes to dst (which may be null when n is 0, as an empty vector's data() is).
    void copy_bytes(void* dst, std::size_t n) {
        const std::uint8_t* src = get_bytes(n);
        if (n > 0) std::memcpy(dst, src, n);
    }
    std::string get_string() {
        const auto len = get<std::uint32_t>();
        const auto* b = get_bytes(len);
        return std::string(reinterpret_cast<const char*>(b), len);
    }
    std::size_t remaining() const { return n_ - pos_; }

private:
    void need(std::size_t k) const {
        DAM_CHECK(k <= n_ - pos_, format_error, "{}: the file ends early (needs {} more bytes at offset {}); it is truncated",
                  what_, k, pos_);
    }
    const std::uint8_t* p_;
    std::size_t n_, pos_ = 0;
    std::string what_;
};

}  // namespace diffautoml
