#pragma once
// The checkpoint file's framing: "DAMCKPT1" | u64 body length | u32 CRC-32 of the body | body. The
// magic's last byte is the format version, so a file of another version is named as such and not
// as a foreign file. JointSearch writes its state as the body (joint_state.ipp) and every file
// atomically (core/io.hpp); anything that is not an intact checkpoint is a format_error that says
// what to do.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/io.hpp"
#include "../core/state.hpp"

namespace diffautoml::search {

inline constexpr char kCheckpointMagic[8] = {'D', 'A', 'M', 'C', 'K', 'P', 'T', '1'};

/// The file's bytes for a body.
inline std::vector<std::uint8_t> frame_checkpoint(const std::vector<std::uint8_t>& body) {
    ByteWriter file;
    file.put_bytes(kCheckpointMagic, 8);
    file.put<std::uint64_t>(body.size());
    file.put<std::uint32_t>(crc32_of(body.data(), body.size()));
    file.put_bytes(body.data(), body.size());
    return std::move(file.bytes);
}

/// A reader of the body of `bytes` (which must outlive it) once the magic, version, length and
/// checksum are right; `what` names the source in messages.
inline ByteReader open_checkpoint(const std::vector<std::uint8_t>& bytes, const std::string& what) {
    const char* magic = kCheckpointMagic;
    DAM_CHECK(bytes.size() >= 8 && std::equal(magic, magic + 7, bytes.begin()), format_error,
              "{}: not a diffautoml checkpoint (bad magic); delete it or point --out elsewhere", what);
    DAM_CHECK(bytes[7] == static_cast<std::uint8_t>(magic[7]), format_error,
              "{}: written in checkpoint format version '{}', this build reads version '{}'; resume it with the "
              "build that wrote it, or delete it to start over",
              what, static_cast<char>(bytes[7]), magic[7]);
    DAM_CHECK(bytes.size() >= 20, format_error,
              "{}: {} bytes, shorter than a checkpoint's header; the file is truncated: delete it to start over",
              what, bytes.size());
    ByteReader head(bytes.data() + 8, bytes.size() - 8, what);
    const auto n = head.get<std::uint64_t>();
    const auto crc = head.get<std::uint32_t>();
    DAM_CHECK(n == head.remaining(), format_error,
              "{}: {} bytes of state expected, {} present; the file is truncated or corrupt: delete it to start "
              "over (or restore a copy)",
              what, n, head.remaining());
    const std::uint8_t* p = bytes.data() + 20;
    DAM_CHECK(crc32_of(p, n) == crc, format_error,
              "{}: checksum mismatch, the file is corrupt; delete it to start over (or restore a copy)", what);
    return ByteReader(p, n, what);
}

}  // namespace diffautoml::search
