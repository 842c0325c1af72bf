#include "tests/support/keys.h"

#include <openssl/bio.h>
#include <openssl/dsa.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <memory>

namespace dispatch::testing {

namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

enum class Form { public_spki, private_pkcs8, private_traditional, private_encrypted };

std::string to_pem(EVP_PKEY* key, Form form) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  REQUIRE(bio);
  int rc = 0;
  switch (form) {
    case Form::public_spki:
      rc = PEM_write_bio_PUBKEY(bio.get(), key);
      break;
    case Form::private_pkcs8:
      rc = PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
      break;
    case Form::private_traditional:
      rc = PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
      break;
    case Form::private_encrypted: {
      char pass[] = "secret";
      rc = PEM_write_bio_PKCS8PrivateKey(bio.get(), key, EVP_aes_256_cbc(), pass, 6, nullptr, nullptr);
      break;
    }
  }
  REQUIRE(rc == 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

PkeyPtr rsa(int bits) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits)));
  REQUIRE(key);
  return key;
}

PkeyPtr ec(const char* curve) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  REQUIRE(key);
  return key;
}

PkeyPtr simple(const char* type) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
  REQUIRE(key);
  return key;
}

}  // namespace

std::string rsa_public_pem(int bits) { return to_pem(rsa(bits).get(), Form::public_spki); }
std::string rsa_private_pem(int bits) { return to_pem(rsa(bits).get(), Form::private_pkcs8); }
std::string rsa_traditional_private_pem(int bits) {
  return to_pem(rsa(bits).get(), Form::private_traditional);
}
std::string ec_traditional_private_pem(const char* curve) {
  return to_pem(ec(curve).get(), Form::private_traditional);
}
std::string encrypted_private_pem() { return to_pem(ec("P-256").get(), Form::private_encrypted); }
std::string ec_public_pem(const char* curve) { return to_pem(ec(curve).get(), Form::public_spki); }
std::string x25519_public_pem() { return to_pem(simple("X25519").get(), Form::public_spki); }
std::string ed448_public_pem() { return to_pem(simple("ED448").get(), Form::public_spki); }

std::string rsa_pkcs1_public_pem(int bits) {
  PkeyPtr key = rsa(bits);
  // The "type-specific" structure of an RSA public key is PKCS#1 (-----BEGIN RSA PUBLIC KEY-----).
  OSSL_ENCODER_CTX* ctx =
      OSSL_ENCODER_CTX_new_for_pkey(key.get(), EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", nullptr);
  REQUIRE(ctx != nullptr);
  unsigned char* data = nullptr;
  std::size_t len = 0;
  const int rc = OSSL_ENCODER_to_data(ctx, &data, &len);
  OSSL_ENCODER_CTX_free(ctx);
  REQUIRE(rc == 1);
  std::string pem(reinterpret_cast<const char*>(data), len);
  OPENSSL_free(data);
  return pem;
}

std::string dsa_public_pem() {
  // DSA needs domain parameters first; EVP_PKEY_Q_keygen cannot make them.
  PkeyCtxPtr param_ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DSA", nullptr));
  REQUIRE(param_ctx);
  REQUIRE(EVP_PKEY_paramgen_init(param_ctx.get()) == 1);
  REQUIRE(EVP_PKEY_CTX_set_dsa_paramgen_bits(param_ctx.get(), 1024) == 1);
  EVP_PKEY* raw_params = nullptr;
  REQUIRE(EVP_PKEY_paramgen(param_ctx.get(), &raw_params) == 1);
  PkeyPtr params(raw_params);
  PkeyCtxPtr key_ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, params.get(), nullptr));
  REQUIRE(key_ctx);
  REQUIRE(EVP_PKEY_keygen_init(key_ctx.get()) == 1);
  EVP_PKEY* raw_key = nullptr;
  REQUIRE(EVP_PKEY_keygen(key_ctx.get(), &raw_key) == 1);
  PkeyPtr key(raw_key);
  return to_pem(key.get(), Form::public_spki);
}

}  // namespace dispatch::testing
