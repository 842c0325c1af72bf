#include "protocol/core/signature.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "protocol/core/encoding.h"

namespace dispatch::core {

void EvpPkeyDeleter::operator()(evp_pkey_st* key) const { EVP_PKEY_free(key); }

namespace {

// A PEM key is a few kilobytes at most; refuse anything far larger before OpenSSL parses it.
constexpr std::size_t k_max_pem_size = 64 * 1024;
constexpr std::string_view k_accepted = "use RSA (at least 2048 bits), EC P-256 or Ed25519";

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "dispatch: fatal: %s\n", what);
  std::abort();
}

Error bad(std::string message) {
  // Failed parses leave entries on the thread's OpenSSL error queue; the next caller must not see them.
  ERR_clear_error();
  return make_error(ErrorCode::bad_request, std::move(message));
}

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

Result<KeyType> classify(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(key);
      if (bits < k_min_rsa_bits) {
        return bad(fmt::format("unsupported key: RSA keys must have at least {} bits (got {})",
                               k_min_rsa_bits, bits));
      }
      return KeyType::rsa;
    }
    case EVP_PKEY_EC: {
      std::array<char, 64> group{};
      std::size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &len) != 1) {
        return bad("unsupported key: EC keys must use the named curve P-256 (prime256v1)");
      }
      const std::string_view name(group.data(), len);
      if (name != "prime256v1") {
        return bad(fmt::format("unsupported key: EC keys must use P-256 (prime256v1), got {}", name));
      }
      return KeyType::ec_p256;
    }
    case EVP_PKEY_ED25519:
      return KeyType::ed25519;
    default: {
      const char* name = EVP_PKEY_get0_type_name(key);
      return bad(fmt::format("unsupported key: {} keys are not accepted; {}", name ? name : "this type",
                             k_accepted));
    }
  }
}

BioPtr read_bio(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) die("out of memory");
  return bio;
}

std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// Never prompt on a terminal for a passphrase: an encrypted key simply fails to load.
int no_passphrase(char*, int, int, void*) { return 0; }

const EVP_MD* digest_for(KeyType type) { return type == KeyType::ed25519 ? nullptr : EVP_sha256(); }

}  // namespace

std::string_view to_string(KeyType type) {
  switch (type) {
    case KeyType::rsa:
      return "rsa";
    case KeyType::ec_p256:
      return "ec_p256";
    case KeyType::ed25519:
      return "ed25519";
  }
  return "rsa";
}

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  if (is_blank(pem)) return bad("empty public key");
  if (pem.size() > k_max_pem_size) return bad("public key PEM too large");
  if (pem.find("PRIVATE KEY-----") != std::string_view::npos) {
    return bad("expected a public key (-----BEGIN PUBLIC KEY-----), got a private key");
  }
  // The PEM block is unwrapped and its DER decoded directly: PEM_read_bio_PUBKEY sets up OpenSSL 3's
  // generic decoder chain on every call, several times the cost (and ~400x for garbage input).
  auto bio = read_bio(pem);
  unsigned char* der = nullptr;
  long der_len = 0;
  EvpPkeyPtr key;
  if (PEM_bytes_read_bio(&der, &der_len, nullptr, PEM_STRING_PUBLIC, bio.get(), no_passphrase, nullptr) ==
      1) {
    const unsigned char* p = der;
    key.reset(d2i_PUBKEY(nullptr, &p, der_len));
    // Trailing bytes after the SubjectPublicKeyInfo are not a key we issued or expect.
    if (key && p != der + der_len) key.reset();
    OPENSSL_free(der);
  }
  ERR_clear_error();
  if (!key) return bad("malformed public key: expected a PEM -----BEGIN PUBLIC KEY----- block");
  auto type = classify(key.get());
  if (!type) return type.error();
  return PublicKey(std::move(key), *type);
}

int PublicKey::bits() const {
  // OpenSSL reports 253 for Ed25519 (its group order); we state the key size.
  if (type_ == KeyType::ed25519) return 256;
  return EVP_PKEY_get_bits(key_.get());
}

namespace {

// PublicKey::verify: a new context per call.
bool verify_once(EVP_PKEY* key, KeyType type, std::string_view message, std::string_view signature_base64) {
  const auto signature = base64_decode(signature_base64);
  if (!signature || signature->empty()) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  const bool ok = EVP_DigestVerifyInit(ctx.get(), nullptr, digest_for(type), nullptr, key) == 1 &&
                  EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                                   signature->size(), reinterpret_cast<const unsigned char*>(message.data()),
                                   message.size()) == 1;
  // A bad signature is an ordinary outcome here, not an error to leave on the queue.
  ERR_clear_error();
  return ok;
}

}  // namespace

bool PublicKey::verify(std::string_view message, std::string_view signature_base64) const {
  return verify_once(key_.get(), type_, message, signature_base64);
}

struct Verifier::Prepared {
  EVP_PKEY_CTX* ctx = nullptr;
  ~Prepared() { EVP_PKEY_CTX_free(ctx); }
};

namespace {

// SHA-256, looked up once (EVP_sha256() in a call looks the provider's implementation up every time).
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

}  // namespace

Verifier::Verifier(const PublicKey& key) : type_(key.type_) {
  EVP_PKEY_up_ref(key.key_.get());
  key_.reset(key.key_.get());
  if (type_ == KeyType::ed25519 || sha256_md() == nullptr) return;
  auto prepared = std::make_unique<Prepared>();
  prepared->ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr);
  bool ok = prepared->ctx != nullptr && EVP_PKEY_verify_init(prepared->ctx) == 1 &&
            EVP_PKEY_CTX_set_signature_md(prepared->ctx, sha256_md()) == 1;
  // RSASSA-PKCS1-v1_5, as EVP_DigestVerify uses for RSA by default.
  if (ok && type_ == KeyType::rsa) ok = EVP_PKEY_CTX_set_rsa_padding(prepared->ctx, RSA_PKCS1_PADDING) == 1;
  ERR_clear_error();
  if (ok) prepared_ = std::move(prepared);  // else every call takes PublicKey::verify's path
}

Verifier::~Verifier() = default;
Verifier::Verifier(Verifier&& other) noexcept = default;
Verifier& Verifier::operator=(Verifier&& other) noexcept = default;

bool Verifier::verify(std::string_view message, std::string_view signature_base64) {
  if (!prepared_) return verify_once(key_.get(), type_, message, signature_base64);
  const auto signature = base64_decode(signature_base64);
  if (!signature || signature->empty()) return false;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_len = 0;
  const bool ok =
      EVP_Digest(message.data(), message.size(), digest.data(), &digest_len, sha256_md(), nullptr) == 1 &&
      EVP_PKEY_verify(prepared_->ctx, reinterpret_cast<const unsigned char*>(signature->data()),
                      signature->size(), digest.data(), digest_len) == 1;
  ERR_clear_error();
  return ok;
}

std::string PublicKey::pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) die("cannot write a public key PEM");
  return bio_to_string(bio.get());
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  if (is_blank(pem)) return bad("empty private key");
  if (pem.size() > k_max_pem_size) return bad("private key PEM too large");
  if (pem.find("PRIVATE KEY-----") == std::string_view::npos) {
    return bad("expected a private key (-----BEGIN PRIVATE KEY-----)");
  }
  auto bio = read_bio(pem);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) return bad("malformed or encrypted private key");
  auto type = classify(key.get());
  if (!type) return type.error();
  return PrivateKey(std::move(key), *type);
}

PrivateKey PrivateKey::generate(KeyType type) {
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::rsa:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(k_min_rsa_bits));
      break;
    case KeyType::ec_p256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::ed25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  if (key == nullptr) die("key generation failed");
  return PrivateKey(EvpPkeyPtr(key), type);
}

std::string PrivateKey::private_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    die("cannot write a private key PEM");
  }
  return bio_to_string(bio.get());
}

std::string PrivateKey::public_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) die("cannot write a public key PEM");
  return bio_to_string(bio.get());
}

PublicKey PrivateKey::public_key() const {
  // Through the PEM so the PublicKey holds no private material.
  auto key = PublicKey::from_pem(public_pem());
  if (!key) die("a generated key failed to reload");
  return std::move(key).value();
}

std::string PrivateKey::sign_base64(std::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  const auto* msg = reinterpret_cast<const unsigned char*>(message.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digest_for(type_), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, msg, message.size()) != 1) {
    die("signing failed");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len, msg,
                     message.size()) != 1) {
    die("signing failed");
  }
  // ECDSA's DER signature is often shorter than the maximum reported above.
  signature.resize(len);
  return base64_encode(signature);
}

std::string fresh_token_message(std::string_view hw, std::string_view ts, std::string_view nonce) {
  return fmt::format("{}\n{}\n{}", hw, ts, nonce);
}

}  // namespace dispatch::core
