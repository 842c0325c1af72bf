#include "protocol/core/keygen.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>

#include "protocol/core/signature.h"

namespace dispatch::core {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

Error openssl_failed(const char* what) {
  ERR_clear_error();
  return make_error(ErrorCode::internal, fmt::format("key generation failed: {}", what));
}

// The PEM that `write` puts into a memory BIO, or nullopt.
template <class Write>
std::optional<std::string> to_pem(Write write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return std::nullopt;
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return std::nullopt;
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

Result<GeneratedKeyPair> generate_rsa_key(int bits) {
  if (bits < k_min_rsa_bits || bits > k_max_generated_rsa_bits) {
    return make_error(ErrorCode::bad_request,
                      fmt::format("RSA key size must be between {} and {} bits (got {})", k_min_rsa_bits,
                                  k_max_generated_rsa_bits, bits));
  }
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return openssl_failed("no RSA key generator");
  if (EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1)
    return openssl_failed("cannot set the key size");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) != 1 || raw == nullptr) return openssl_failed("RSA generation");
  EvpPkeyPtr key(raw);
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") for every key type in OpenSSL 3.
  auto priv = to_pem(
      [&](BIO* b) { return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
  auto pub = to_pem([&](BIO* b) { return PEM_write_bio_PUBKEY(b, key.get()); });
  if (!priv || !pub) return openssl_failed("cannot write the PEM");
  return GeneratedKeyPair{std::move(*priv), std::move(*pub)};
}

}  // namespace dispatch::core
