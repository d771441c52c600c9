#include "base/sha256.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <memory>

namespace clusterctl {

Sha256Digest Sha256(std::string_view head, std::string_view tail) {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(),
                                                                      EVP_MD_CTX_free);
  Sha256Digest out{};
  unsigned int len = 0;
  if (md == nullptr || ctx == nullptr || !EVP_DigestInit_ex(ctx.get(), md, nullptr) ||
      !EVP_DigestUpdate(ctx.get(), head.data(), head.size()) ||
      !EVP_DigestUpdate(ctx.get(), tail.data(), tail.size()) ||
      !EVP_DigestFinal_ex(ctx.get(), out.data(), &len) || len != out.size()) {
    // Only an OpenSSL without SHA-256 (a broken install) gets here; hashes
    // are part of the audit chain, so there is no safe fallback.
    std::abort();
  }
  return out;
}

Sha256Digest HmacSha256(std::string_view key, std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &len) == nullptr ||
      len != out.size()) {
    std::abort();  // Only an OpenSSL without SHA-256 fails here.
  }
  return out;
}

std::string HexEncode(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * size, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 15];
  }
  return out;
}

std::string Sha256Hex(std::string_view head, std::string_view tail) {
  const Sha256Digest d = Sha256(head, tail);
  return HexEncode(d.data(), d.size());
}

bool SecretEquals(std::string_view given, std::string_view expected) {
  const Sha256Digest a = Sha256(given);
  const Sha256Digest b = Sha256(expected);
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace clusterctl
