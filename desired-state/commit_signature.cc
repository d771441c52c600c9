#include "desired-state/commit_signature.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <cctype>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <utility>

#include "base/time_format.h"
#include "desired-state/diagnostics.h"

namespace clusterctl::desired_state {
namespace {

constexpr std::string_view kSshArmorBegin = "-----BEGIN SSH SIGNATURE-----";
constexpr std::string_view kSshArmorEnd = "-----END SSH SIGNATURE-----";
constexpr std::string_view kPgpArmorBegin = "-----BEGIN PGP SIGNATURE-----";
constexpr std::string_view kX509ArmorBegin = "-----BEGIN SIGNED MESSAGE-----";
constexpr std::string_view kMagic = "SSHSIG";
constexpr std::string_view kNamespace = "git";
constexpr int kMinRsaBits = 1024;   // As openssh (SSH_RSA_MINIMUM_MODULUS_SIZE).
constexpr int kMaxRsaBits = 16384;  // As openssh (SSHBUF_MAX_BIGNUM).

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// `s` quoted, with control characters and non-ASCII bytes escaped, cut at 64
// bytes: names read from a hostile blob end up in audit records.
std::string Printable(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 64) out += "...";
  return out + "\"";
}

// ---------------------------------------------------------------------------
// Base64 and the SSH wire format.

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict base64 with padding; whitespace is skipped only when `skip_space`.
std::optional<std::string> Base64Decode(std::string_view in, bool skip_space) {
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t chars = 0;
  size_t pad = 0;
  for (char c : in) {
    if (skip_space && IsSpace(c)) continue;
    ++chars;
    if (c == '=') {
      ++pad;
      continue;
    }
    const int v = Base64Value(c);
    if (v < 0 || pad > 0) return std::nullopt;  // A bad character, or data after "=".
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (chars % 4 != 0 || pad > 2 || (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  if ((pad == 1 && bits != 2) || (pad == 2 && bits != 4) || (pad == 0 && bits != 0)) {
    return std::nullopt;
  }
  return out;
}

std::string Base64Encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// Reads the SSH wire format; every read checks what is left.
class Wire {
 public:
  explicit Wire(std::string_view data) : rest_(data) {}
  bool U32(uint32_t* v) {
    if (rest_.size() < 4) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(rest_.data());
    *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    rest_.remove_prefix(4);
    return true;
  }
  bool String(std::string_view* s) {
    uint32_t len = 0;
    if (!U32(&len) || len > rest_.size()) return false;
    *s = rest_.substr(0, len);
    rest_.remove_prefix(len);
    return true;
  }
  // A positive mpint without a redundant leading zero (openssh rejects both).
  bool PositiveMpint(std::string_view* s) {
    if (!String(s)) return false;
    if (s->empty()) return true;  // Zero.
    const auto first = static_cast<unsigned char>((*s)[0]);
    if (first & 0x80) return false;  // Negative.
    if (first == 0) {
      if (s->size() < 2 || !(static_cast<unsigned char>((*s)[1]) & 0x80)) return false;
      s->remove_prefix(1);
    }
    return true;
  }
  bool Bytes(size_t n, std::string_view* s) {
    if (rest_.size() < n) return false;
    *s = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  bool empty() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

void PutString(std::string* out, std::string_view s) {
  const auto n = static_cast<uint32_t>(s.size());
  const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)};
  out->append(len, 4);
  out->append(s);
}

std::string Fingerprint(std::string_view key_blob) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(key_blob.data(), key_blob.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return "";
  }
  std::string b64 = Base64Encode(std::string_view(reinterpret_cast<char*>(digest), len));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

// ---------------------------------------------------------------------------
// Public keys.

struct EcCurve {
  std::string_view key_type;
  std::string_view ssh_curve;
  const char* openssl_group;
  size_t field_bytes;
  const EVP_MD* (*digest)();
};

constexpr EcCurve kCurves[] = {
    {"ecdsa-sha2-nistp256", "nistp256", "P-256", 32, EVP_sha256},
    {"ecdsa-sha2-nistp384", "nistp384", "P-384", 48, EVP_sha384},
    {"ecdsa-sha2-nistp521", "nistp521", "P-521", 66, EVP_sha512},
};

const EcCurve* FindCurve(std::string_view key_type) {
  for (const EcCurve& c : kCurves) {
    if (c.key_type == key_type) return &c;
  }
  return nullptr;
}

bool IsSupportedKeyType(std::string_view t) {
  return t == "ssh-ed25519" || t == "ssh-rsa" || FindCurve(t) != nullptr;
}

// Key types ssh-keygen knows but this verifier refuses, with why.
std::optional<std::string> UnsupportedKeyType(std::string_view t) {
  if (t.find("-cert-v01@openssh.com") != std::string_view::npos) {
    return "signatures made with SSH certificates are not supported; sign with the plain key "
           "and list it in the allowed signers";
  }
  if (StartsWith(t, "sk-")) {
    return "security-key (FIDO) signatures (" + std::string(t) + ") are not supported";
  }
  if (t == "ssh-dss") return std::string("DSA keys (ssh-dss) are not supported: they are weak");
  return std::nullopt;
}

struct PublicKey {
  std::string type;
  PkeyPtr pkey;
  const EcCurve* curve = nullptr;  // ECDSA only.
};

PkeyPtr PkeyFromParams(const char* algorithm, OSSL_PARAM_BLD* bld) {
  PkeyPtr out;
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, algorithm, nullptr);
  EVP_PKEY* pkey = nullptr;
  if (params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
    out.reset(pkey);
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return out;
}

// Parses a supported public key blob. On failure *error says why.
std::optional<PublicKey> ParsePublicKey(std::string_view blob, std::string* error) {
  Wire w(blob);
  std::string_view type;
  if (!w.String(&type)) {
    *error = "the public key is truncated";
    return std::nullopt;
  }
  PublicKey key;
  key.type = std::string(type);
  if (type == "ssh-ed25519") {
    std::string_view raw;
    if (!w.String(&raw) || raw.size() != 32 || !w.empty()) {
      *error = "the ssh-ed25519 public key is malformed";
      return std::nullopt;
    }
    key.pkey.reset(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  } else if (const EcCurve* curve = FindCurve(type); curve != nullptr) {
    std::string_view name;
    std::string_view point;
    if (!w.String(&name) || name != curve->ssh_curve || !w.String(&point) || !w.empty() ||
        point.size() != 1 + 2 * curve->field_bytes || point[0] != 0x04) {
      *error = "the " + key.type + " public key is malformed";
      return std::nullopt;
    }
    key.curve = curve;
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    if (bld != nullptr &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve->openssl_group, 0) ==
            1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) == 1) {
      key.pkey = PkeyFromParams("EC", bld);  // Rejects points off the curve.
    }
    OSSL_PARAM_BLD_free(bld);
  } else if (type == "ssh-rsa") {
    std::string_view e;
    std::string_view n;
    if (!w.PositiveMpint(&e) || !w.PositiveMpint(&n) || !w.empty() || e.empty() || n.empty()) {
      *error = "the ssh-rsa public key is malformed";
      return std::nullopt;
    }
    const int bits = static_cast<int>(n.size() * 8) -
                     __builtin_clz(static_cast<unsigned char>(n[0])) + 24;  // Top byte's bits.
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      *error = "the ssh-rsa key has " + std::to_string(bits) + " bits; between " +
               std::to_string(kMinRsaBits) + " and " + std::to_string(kMaxRsaBits) +
               " are accepted";
      return std::nullopt;
    }
    BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                             static_cast<int>(n.size()), nullptr);
    BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                             static_cast<int>(e.size()), nullptr);
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    if (bld != nullptr && bn_n != nullptr && bn_e != nullptr &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1) {
      key.pkey = PkeyFromParams("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
  } else {
    *error = "key type " + Printable(type) + " is not supported";
    return std::nullopt;
  }
  if (key.pkey == nullptr) {
    ERR_clear_error();
    *error = "the " + key.type + " public key is not a valid key";
    return std::nullopt;
  }
  return key;
}

// ---------------------------------------------------------------------------
// Signatures.

enum class RawCheck { kGood, kBad, kUnsupported, kMalformed };

// Checks the SSH wire signature `sig_blob` by `key` over `data`; *detail says
// why when it is not kGood.
RawCheck VerifyRaw(const PublicKey& key, std::string_view sig_blob, std::string_view data,
                   std::string* detail) {
  Wire w(sig_blob);
  std::string_view format;
  std::string_view sig;
  if (!w.String(&format) || !w.String(&sig) || !w.empty()) {
    *detail = "the signature inside the SSHSIG is malformed";
    return RawCheck::kMalformed;
  }
  const EVP_MD* md = nullptr;
  std::string der;  // ECDSA: the signature re-encoded as DER.
  std::string padded;
  if (key.type == "ssh-ed25519") {
    if (format != "ssh-ed25519" || sig.size() != 64) {
      *detail = "an ssh-ed25519 key with a " + Printable(format) + " signature of " +
                std::to_string(sig.size()) + " bytes";
      return RawCheck::kMalformed;
    }
  } else if (key.curve != nullptr) {
    if (format != key.type) {
      *detail = "an " + key.type + " key with a " + Printable(format) + " signature";
      return RawCheck::kMalformed;
    }
    Wire inner(sig);
    std::string_view r;
    std::string_view s;
    if (!inner.PositiveMpint(&r) || !inner.PositiveMpint(&s) || !inner.empty() ||
        r.size() > key.curve->field_bytes || s.size() > key.curve->field_bytes) {
      *detail = "the ECDSA signature is malformed";
      return RawCheck::kMalformed;
    }
    ECDSA_SIG* es = ECDSA_SIG_new();
    BIGNUM* bn_r = BN_bin2bn(reinterpret_cast<const unsigned char*>(r.data()),
                             static_cast<int>(r.size()), nullptr);
    BIGNUM* bn_s = BN_bin2bn(reinterpret_cast<const unsigned char*>(s.data()),
                             static_cast<int>(s.size()), nullptr);
    if (es == nullptr || bn_r == nullptr || bn_s == nullptr ||
        ECDSA_SIG_set0(es, bn_r, bn_s) != 1) {
      BN_free(bn_r);
      BN_free(bn_s);
      ECDSA_SIG_free(es);
      ERR_clear_error();
      *detail = "the ECDSA signature could not be decoded";
      return RawCheck::kMalformed;
    }
    unsigned char* out = nullptr;
    const int len = i2d_ECDSA_SIG(es, &out);
    ECDSA_SIG_free(es);
    if (len <= 0) {
      ERR_clear_error();
      *detail = "the ECDSA signature could not be encoded";
      return RawCheck::kMalformed;
    }
    der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(len));
    OPENSSL_free(out);
    sig = der;
    md = key.curve->digest();
  } else {  // ssh-rsa
    if (format == "rsa-sha2-256") {
      md = EVP_sha256();
    } else if (format == "rsa-sha2-512") {
      md = EVP_sha512();
    } else if (format == "ssh-rsa") {
      *detail =
          "RSA signatures with SHA-1 (ssh-rsa) are refused as weak; sign with a current "
          "ssh-keygen (it makes rsa-sha2-512) or an ed25519 key";
      return RawCheck::kUnsupported;
    } else {
      *detail = "an ssh-rsa key with a " + Printable(format) + " signature";
      return RawCheck::kMalformed;
    }
    // openssh pads a short signature to the modulus size; longer is invalid.
    const auto modulus_bytes = static_cast<size_t>(EVP_PKEY_get_size(key.pkey.get()));
    if (sig.empty() || sig.size() > modulus_bytes) {
      *detail = "the RSA signature has the wrong size";
      return RawCheck::kBad;
    }
    if (sig.size() < modulus_bytes) {
      padded.assign(modulus_bytes - sig.size(), '\0');
      padded.append(sig);
      sig = padded;
    }
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool good =
      ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key.pkey.get()) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  if (!good) {
    *detail = "the signature does not match the commit (the commit or its signature was altered)";
    return RawCheck::kBad;
  }
  return RawCheck::kGood;
}

// ---------------------------------------------------------------------------
// Patterns (ssh_config(5) PATTERNS) and times.

// `*` any run, `?` one character; iterative, so no pattern is exponential.
bool MatchPattern(std::string_view s, std::string_view p) {
  size_t si = 0, pi = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++si;
      ++pi;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

// A comma-separated list: a negated ("!") match refuses, else any match accepts.
bool MatchPatternList(std::string_view s, std::string_view list) {
  bool matched = false;
  while (true) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    const bool negated = !item.empty() && item[0] == '!';
    if (negated) item.remove_prefix(1);
    if (MatchPattern(s, item)) {
      if (negated) return false;
      matched = true;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return matched;
}

// "YYYYMMDD", "YYYYMMDDHHMM" or "YYYYMMDDHHMMSS", then optionally "Z" or
// "UTC"; read as UTC either way (see the header).
std::optional<int64_t> ParseSshTime(std::string_view s) {
  if (s.size() > 1 && (s.back() == 'Z' || s.back() == 'z')) {
    s.remove_suffix(1);
  } else if (s.size() > 3 && (s.substr(s.size() - 3) == "UTC" || s.substr(s.size() - 3) == "utc")) {
    s.remove_suffix(3);
  }
  if (s.size() != 8 && s.size() != 12 && s.size() != 14) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  auto num = [&](size_t at, size_t len) {
    int v = 0;
    for (size_t i = at; i < at + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  if (s.size() >= 12) {
    tm.tm_hour = num(8, 2);
    tm.tm_min = num(10, 2);
  }
  if (s.size() == 14) tm.tm_sec = num(12, 2);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  const std::tm given = tm;
  const time_t t = timegm(&tm);
  // timegm normalises (February 30 -> March 2): refuse dates that moved.
  if (t <= 0 || tm.tm_mday != given.tm_mday || tm.tm_mon != given.tm_mon) return std::nullopt;
  return static_cast<int64_t>(t);
}

std::string FormatTime(int64_t s) { return FormatRfc3339Ms(s * 1000); }

// ---------------------------------------------------------------------------
// Allowed-signers lines.

// The next whitespace-delimited token of `*line`; a double-quoted part may
// hold spaces (quotes are kept for options, stripped for a quoted principal).
std::string_view NextToken(std::string_view* line) {
  *line = Trim(*line);
  size_t i = 0;
  bool quoted = false;
  while (i < line->size() && (quoted || ((*line)[i] != ' ' && (*line)[i] != '\t'))) {
    if ((*line)[i] == '"') quoted = !quoted;
    ++i;
  }
  std::string_view token = line->substr(0, i);
  line->remove_prefix(i);
  return token;
}

bool IsKnownKeyType(std::string_view t) {
  return IsSupportedKeyType(t) || UnsupportedKeyType(t).has_value();
}

struct LineOptions {
  bool cert_authority = false;
  std::optional<std::string> namespaces;
  std::optional<int64_t> valid_after;
  std::optional<int64_t> valid_before;
};

// Parses "opt,opt=value,opt="quoted value"". On error returns the message.
std::optional<std::string> ParseOptions(std::string_view text, LineOptions* out) {
  while (!text.empty()) {
    size_t end = 0;
    bool quoted = false;
    while (end < text.size() && (quoted || text[end] != ',')) {
      if (text[end] == '"') quoted = !quoted;
      ++end;
    }
    if (quoted) return "unterminated quote in the options";
    std::string_view option = text.substr(0, end);
    text.remove_prefix(end);
    if (!text.empty()) {
      text.remove_prefix(1);  // The comma.
      if (text.empty()) return std::string("unexpected end of the options after \",\"");
    }
    const size_t eq = option.find('=');
    std::string name(option.substr(0, eq));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::optional<std::string> value;
    if (eq != std::string_view::npos) {
      std::string_view v = option.substr(eq + 1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      if (v.find('"') != std::string_view::npos) return "bad quoting in option " + name;
      value = std::string(v);
    }
    if (name == "cert-authority" && !value) {
      out->cert_authority = true;
    } else if (name == "namespaces" && value) {
      if (out->namespaces) return std::string("multiple \"namespaces\" options");
      out->namespaces = *value;
    } else if ((name == "valid-after" || name == "valid-before") && value) {
      std::optional<int64_t>& slot = name == "valid-after" ? out->valid_after : out->valid_before;
      if (slot) return "multiple \"" + name + "\" options";
      slot = ParseSshTime(*value);
      if (!slot) {
        return "invalid \"" + name + "\" time " + Printable(*value) +
               "; write YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, ending in Z for UTC";
      }
    } else {
      return "unknown option " + Printable(option);
    }
  }
  if (out->valid_after && out->valid_before && *out->valid_before <= *out->valid_after) {
    return std::string("\"valid-before\" is not after \"valid-after\"");
  }
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------

Result<AllowedSigners> AllowedSigners::Parse(std::string_view text, std::string_view file) {
  const std::string name(file);
  if (text.size() > kMaxBytes) {
    return Status::Invalid(name + ": the allowed signers file is " + std::to_string(text.size()) +
                           " bytes, over the limit of 1 MiB");
  }
  AllowedSigners out;
  Diagnostics errors;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line = Trim(line);
    if (line.empty() || line[0] == '#') continue;
    const Location where{name, line_no};
    auto fail = [&](std::string message, std::string hint = "") {
      errors.Add(where, std::move(message), std::move(hint));
    };
    constexpr char kFormat[] = "the format is: principals [options] keytype base64-key [comment]";
    std::string_view principals = NextToken(&line);
    if (principals.size() >= 2 && principals.front() == '"' && principals.back() == '"') {
      principals = principals.substr(1, principals.size() - 2);
    }
    std::string_view token = NextToken(&line);
    LineOptions options;
    if (!token.empty() && !IsKnownKeyType(token)) {
      if (std::optional<std::string> bad = ParseOptions(token, &options)) {
        fail("bad options: " + *bad,
             "known options: cert-authority, namespaces=\"...\", valid-after=\"...\", "
             "valid-before=\"...\"");
        continue;
      }
      token = NextToken(&line);
    }
    if (token.empty() || principals.empty()) {
      fail("missing key", kFormat);
      continue;
    }
    if (!IsKnownKeyType(token)) {
      fail("unknown key type " + Printable(token),
           "use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa");
      continue;
    }
    const std::string_view key_b64 = NextToken(&line);
    std::optional<std::string> blob = Base64Decode(key_b64, false);
    std::string_view inner_type;
    if (!blob || !Wire(*blob).String(&inner_type)) {
      fail("the " + std::string(token) + " key is not valid base64", kFormat);
      continue;
    }
    if (inner_type != token) {
      fail("the key is a " + Printable(inner_type) + " key, but the line says " +
           std::string(token));
      continue;
    }
    if (options.cert_authority) {
      out.warnings_.push_back(where.ToString() +
                              ": cert-authority line skipped: SSH certificates are not "
                              "supported; list each signer's own key instead");
      continue;
    }
    if (std::optional<std::string> why = UnsupportedKeyType(token)) {
      out.warnings_.push_back(where.ToString() + ": line skipped: " + *why);
      continue;
    }
    std::string key_error;
    if (!ParsePublicKey(*blob, &key_error)) {
      fail(key_error);
      continue;
    }
    AllowedSigner signer;
    signer.principals = std::string(principals);
    signer.key_type = std::string(token);
    signer.fingerprint = Fingerprint(*blob);
    signer.key_blob = std::move(*blob);
    signer.namespaces = std::move(options.namespaces);
    signer.valid_after_s = options.valid_after;
    signer.valid_before_s = options.valid_before;
    signer.origin = where.ToString();
    out.entries_.push_back(std::move(signer));
  }
  if (!errors.empty()) {
    std::string message = errors.ToString();
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Status::Invalid(std::move(message));
  }
  return out;
}

const char* VerdictName(SignatureCheck::Verdict verdict) {
  switch (verdict) {
    case SignatureCheck::kValid:
      return "valid";
    case SignatureCheck::kUnsigned:
      return "unsigned";
    case SignatureCheck::kUnknownKey:
      return "unknown key";
    case SignatureCheck::kBadSignature:
      return "bad signature";
    case SignatureCheck::kUnsupported:
      return "unsupported";
    case SignatureCheck::kMalformed:
      return "malformed";
  }
  return "malformed";
}

SignatureCheck VerifyCommitSignature(std::string_view signed_data,
                                     std::string_view signature_armored,
                                     const AllowedSigners& allowed, int64_t now_s) {
  SignatureCheck check;
  auto verdict = [&check](SignatureCheck::Verdict v, std::string reason) {
    check.verdict = v;
    check.reason = std::move(reason);
    return check;
  };
  using V = SignatureCheck;

  // 1. The armor.
  if (signature_armored.size() > kMaxSignatureBytes) {
    return verdict(V::kMalformed, "the signature is " + std::to_string(signature_armored.size()) +
                                      " bytes, over the limit of 64 KiB");
  }
  std::string_view armored = Trim(signature_armored);
  if (armored.empty()) return verdict(V::kUnsigned, "the commit is not signed");
  if (StartsWith(armored, kPgpArmorBegin)) {
    return verdict(V::kUnsupported,
                   "OpenPGP signatures are not supported; sign with SSH (gpg.format=ssh)");
  }
  if (StartsWith(armored, kX509ArmorBegin)) {
    return verdict(V::kUnsupported,
                   "X.509 (gpgsm) signatures are not supported; sign with SSH (gpg.format=ssh)");
  }
  if (!StartsWith(armored, kSshArmorBegin)) {
    if (StartsWith(armored, "-----BEGIN ")) {
      return verdict(V::kUnsupported, "unknown signature format " +
                                          Printable(armored.substr(0, armored.find('\n'))) +
                                          "; sign with SSH (gpg.format=ssh)");
    }
    return verdict(V::kMalformed, "the signature is not an SSH signature (no \"" +
                                      std::string(kSshArmorBegin) + "\" line)");
  }
  armored.remove_prefix(kSshArmorBegin.size());
  const size_t end = armored.find(kSshArmorEnd);
  if (armored.empty() || (armored[0] != '\n' && armored[0] != '\r') ||
      end == std::string_view::npos || !Trim(armored.substr(end + kSshArmorEnd.size())).empty()) {
    return verdict(V::kMalformed, "the SSH signature armor is broken (no \"" +
                                      std::string(kSshArmorEnd) +
                                      "\" line, or text around the armor)");
  }
  const std::optional<std::string> blob = Base64Decode(armored.substr(0, end), true);
  if (!blob) return verdict(V::kMalformed, "the SSH signature is not valid base64");

  // 2. The SSHSIG blob.
  Wire w(*blob);
  std::string_view magic;
  uint32_t version = 0;
  std::string_view key_blob, ns, reserved, hash_name, sig_blob;
  if (!w.Bytes(kMagic.size(), &magic) || magic != kMagic) {
    return verdict(V::kMalformed, "the SSH signature does not start with \"SSHSIG\"");
  }
  if (!w.U32(&version)) return verdict(V::kMalformed, "the SSH signature is truncated");
  if (version != 1) {
    return verdict(V::kUnsupported,
                   "SSH signature version " + std::to_string(version) + " is not supported (1 is)");
  }
  if (!w.String(&key_blob) || !w.String(&ns) || !w.String(&reserved) || !w.String(&hash_name) ||
      !w.String(&sig_blob)) {
    return verdict(V::kMalformed, "the SSH signature is truncated (a length overruns it)");
  }
  if (!w.empty()) return verdict(V::kMalformed, "the SSH signature has bytes after its end");

  // 3. The key, the namespace, the hash.
  check.fingerprint = Fingerprint(key_blob);
  std::string_view key_type;
  if (!Wire(key_blob).String(&key_type)) {
    return verdict(V::kMalformed, "the public key in the signature is truncated");
  }
  if (std::optional<std::string> why = UnsupportedKeyType(key_type)) {
    return verdict(V::kUnsupported, *why);
  }
  if (!IsSupportedKeyType(key_type)) {
    return verdict(V::kUnsupported, "signatures by " + Printable(key_type) +
                                        " keys are not supported; use ssh-ed25519, ECDSA or RSA");
  }
  std::string key_error;
  const std::optional<PublicKey> key = ParsePublicKey(key_blob, &key_error);
  if (!key) return verdict(V::kMalformed, "the public key in the signature: " + key_error);
  if (ns != kNamespace) {
    return verdict(V::kBadSignature, "the signature is for namespace " + Printable(ns) +
                                         ", not \"git\": it was not made for a commit");
  }
  const EVP_MD* hash = hash_name == "sha256"   ? EVP_sha256()
                       : hash_name == "sha512" ? EVP_sha512()
                                               : nullptr;
  if (hash == nullptr) {
    return verdict(V::kUnsupported, "hash algorithm " + Printable(hash_name) +
                                        " is not supported (sha256 and sha512 are)");
  }

  // 4. The signature over "SSHSIG" || ns || reserved (empty) || hash || H(data).
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(signed_data.data(), signed_data.size(), digest, &digest_len, hash, nullptr) != 1) {
    ERR_clear_error();
    return verdict(V::kUnsupported, "hash algorithm " + std::string(hash_name) +
                                        " is not available in this OpenSSL");
  }
  std::string to_verify(kMagic);
  PutString(&to_verify, kNamespace);
  PutString(&to_verify, "");
  PutString(&to_verify, hash_name);
  PutString(&to_verify, std::string_view(reinterpret_cast<char*>(digest), digest_len));
  std::string detail;
  switch (VerifyRaw(*key, sig_blob, to_verify, &detail)) {
    case RawCheck::kGood:
      break;
    case RawCheck::kBad:
      return verdict(V::kBadSignature, detail);
    case RawCheck::kUnsupported:
      return verdict(V::kUnsupported, detail);
    case RawCheck::kMalformed:
      return verdict(V::kMalformed, detail);
  }

  // 5. Is the key allowed, here and now?
  std::string excluded;  // Why the first line with this key did not count.
  for (const AllowedSigner& s : allowed.entries()) {
    if (s.key_blob != key_blob) continue;
    std::string why;
    if (s.namespaces && !MatchPatternList(kNamespace, *s.namespaces)) {
      why = "is not allowed to sign in namespace \"git\" (namespaces=\"" + *s.namespaces + "\")";
    } else if (s.valid_after_s && now_s < *s.valid_after_s) {
      why = "is not valid yet (valid-after " + FormatTime(*s.valid_after_s) + ")";
    } else if (s.valid_before_s && now_s > *s.valid_before_s) {
      why = "has expired (valid-before " + FormatTime(*s.valid_before_s) + ")";
    } else {
      check.verdict = V::kValid;
      check.signer = s.principals;
      check.reason.clear();
      return check;
    }
    if (excluded.empty()) excluded = "the key of " + s.principals + " (" + s.origin + ") " + why;
  }
  if (!excluded.empty()) return verdict(V::kUnknownKey, excluded);
  return verdict(V::kUnknownKey, "the commit is signed by key " + check.fingerprint + " (" +
                                     key->type + "), which is not in the allowed signers");
}

}  // namespace clusterctl::desired_state
