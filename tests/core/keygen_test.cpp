#include "protocol/core/keygen.h"

#include <openssl/err.h>

#include <catch2/catch.hpp>

#include "protocol/core/signature.h"

using namespace dispatch::core;

TEST_CASE("generate_rsa_key: PKCS#8 private and SPKI public PEM that sign and verify the static token") {
  auto pair = generate_rsa_key(2048);
  REQUIRE(pair.ok());
  CHECK(pair->private_key_pkcs8_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
  CHECK(pair->public_key_spki_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));

  auto pub = PublicKey::from_pem(pair->public_key_spki_pem);
  REQUIRE(pub.ok());
  CHECK(pub->type() == KeyType::rsa);
  CHECK(pub->bits() == 2048);

  // The esthesis agent's static token: Base64 RSASSA-PKCS1-v1_5-SHA256 over the UTF-8 hardware id.
  auto priv = PrivateKey::from_pem(pair->private_key_pkcs8_pem);
  REQUIRE(priv.ok());
  CHECK(priv->type() == KeyType::rsa);
  const std::string hw = "edge-gw_17";
  const std::string token = priv->sign_base64(hw);
  CHECK(pub->verify(hw, token));
  CHECK_FALSE(pub->verify("edge-gw_18", token));
  // RSA PKCS#1 v1.5 is deterministic: the static token is the same on every request.
  CHECK(priv->sign_base64(hw) == token);
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("generate_rsa_key: two calls give different keys") {
  auto a = generate_rsa_key(2048);
  auto b = generate_rsa_key(2048);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->private_key_pkcs8_pem != b->private_key_pkcs8_pem);
  CHECK(a->public_key_spki_pem != b->public_key_spki_pem);
  auto pub_b = PublicKey::from_pem(b->public_key_spki_pem);
  REQUIRE(pub_b.ok());
  auto priv_a = PrivateKey::from_pem(a->private_key_pkcs8_pem);
  REQUIRE(priv_a.ok());
  CHECK_FALSE(pub_b->verify("hw-1", priv_a->sign_base64("hw-1")));
}

TEST_CASE("generate_rsa_key: sizes outside 2048..8192 are refused") {
  struct {
    const char* rule;
    int bits;
  } cases[] = {
      {"below the minimum the service accepts", 1024},
      {"one bit short", 2047},
      {"zero", 0},
      {"negative", -2048},
      {"above the maximum (a request could stall a worker)", 16384},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = generate_rsa_key(c.bits);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::bad_request);
  }
}
