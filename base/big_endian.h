// Big-endian integer coding for store keys: byte order of the encoded keys is
// numeric order, so RocksDB's bytewise comparator scans them in time or
// sequence order.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace clusterctl {

// Appends the 8 bytes of `v`, most significant first.
inline void AppendBigEndian(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}

inline std::string BigEndian64(uint64_t v) {
  std::string s;
  s.reserve(8);
  AppendBigEndian(&s, v);
  return s;
}

// The value of the first 8 bytes of `s` (fewer bytes: of those there are).
inline uint64_t DecodeBigEndian64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i) v = v << 8 | static_cast<unsigned char>(s[i]);
  return v;
}

// A signed time (ms) as 8 bytes whose byte order is numeric order, negative
// times included: big-endian with the sign bit flipped.
inline std::string TimeKey(int64_t t) {
  return BigEndian64(static_cast<uint64_t>(t) ^ (uint64_t{1} << 63));
}
inline void AppendTimeKey(std::string* out, int64_t t) {
  AppendBigEndian(out, static_cast<uint64_t>(t) ^ (uint64_t{1} << 63));
}
inline int64_t DecodeTimeKey(std::string_view s) {
  return static_cast<int64_t>(DecodeBigEndian64(s) ^ (uint64_t{1} << 63));
}

}  // namespace clusterctl
