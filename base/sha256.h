// SHA-256 (OpenSSL): digests for spec hashes, audit record hashes, cache
// names and constant-time secret comparison.
//
// Thread-safety: reentrant; Sha256Hex reuses one digest context per thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace clusterctl {

using Sha256Digest = std::array<unsigned char, 32>;

// The digest of head + tail (tail may be empty; hashing two pieces spares a
// copy of the audit log's canonical bytes).
Sha256Digest Sha256(std::string_view head, std::string_view tail = {});

// The same as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view head, std::string_view tail = {});

// HMAC-SHA256 of `data` under `key` (webhook signatures, both ways).
Sha256Digest HmacSha256(std::string_view key, std::string_view data);

// Lowercase hex of any bytes.
std::string HexEncode(const unsigned char* data, size_t size);

// Whether two secrets are equal, in time independent of where they differ
// and of their lengths (both are hashed, then compared with CRYPTO_memcmp).
bool SecretEquals(std::string_view given, std::string_view expected);

}  // namespace clusterctl
