#include "protocol/core/signature.h"

#include <openssl/err.h>

#include <catch2/catch.hpp>

#include "protocol/core/encoding.h"
#include "tests/support/keys.h"

using namespace dispatch::core;
namespace keys = dispatch::testing;

namespace {

// Key generation is slow (RSA); make each key once per run.
const PrivateKey& key_of(KeyType type) {
  static const PrivateKey rsa = PrivateKey::generate(KeyType::rsa);
  static const PrivateKey ec = PrivateKey::generate(KeyType::ec_p256);
  static const PrivateKey ed = PrivateKey::generate(KeyType::ed25519);
  switch (type) {
    case KeyType::rsa:
      return rsa;
    case KeyType::ec_p256:
      return ec;
    case KeyType::ed25519:
      break;
  }
  return ed;
}

const PrivateKey& other_key_of(KeyType type) {
  static const PrivateKey rsa = PrivateKey::generate(KeyType::rsa);
  static const PrivateKey ec = PrivateKey::generate(KeyType::ec_p256);
  static const PrivateKey ed = PrivateKey::generate(KeyType::ed25519);
  switch (type) {
    case KeyType::rsa:
      return rsa;
    case KeyType::ec_p256:
      return ec;
    case KeyType::ed25519:
      break;
  }
  return ed;
}

PublicKey public_of(const PrivateKey& key) {
  auto pub = PublicKey::from_pem(key.public_pem());
  REQUIRE(pub.ok());
  return std::move(pub).value();
}

const KeyType k_all_types[] = {KeyType::rsa, KeyType::ec_p256, KeyType::ed25519};
const std::string k_message = fresh_token_message("dev-1", "2026-11-26T14:22:44Z", "n0nce-n0nce-n0nce");

}  // namespace

TEST_CASE("KeyType spelling and fresh token message", "[core][signature]") {
  CHECK(to_string(KeyType::rsa) == "rsa");
  CHECK(to_string(KeyType::ec_p256) == "ec_p256");
  CHECK(to_string(KeyType::ed25519) == "ed25519");
  CHECK(fresh_token_message("hw", "ts", "nonce") == "hw\nts\nnonce");
}

TEST_CASE("a good signature verifies for every key type", "[core][signature]") {
  struct {
    KeyType type;
    int bits;
  } cases[] = {{KeyType::rsa, 2048}, {KeyType::ec_p256, 256}, {KeyType::ed25519, 256}};
  for (const auto& c : cases) {
    INFO(to_string(c.type));
    const PrivateKey& priv = key_of(c.type);
    const PublicKey pub = public_of(priv);
    CHECK(pub.type() == c.type);
    CHECK(pub.bits() == c.bits);
    CHECK(pub.verify(k_message, priv.sign_base64(k_message)));
    CHECK(pub.verify("", priv.sign_base64("")));
    CHECK(priv.public_key().verify(k_message, priv.sign_base64(k_message)));
    // A Verifier holds its own reference to the key (made here from a temporary) and verifies again and
    // again with one prepared context.
    Verifier v(public_of(priv));
    for (int i = 0; i < 3; ++i) {
      const std::string m = k_message + std::to_string(i);
      CHECK(v.verify(m, priv.sign_base64(m)));
    }
    CHECK(v.verify("", priv.sign_base64("")));
    Verifier moved = std::move(v);
    CHECK(moved.verify(k_message, priv.sign_base64(k_message)));
  }
}

TEST_CASE("bad signatures are false, never a crash", "[core][signature]") {
  for (KeyType type : k_all_types) {
    const PrivateKey& priv = key_of(type);
    const PublicKey pub = public_of(priv);
    const std::string good = priv.sign_base64(k_message);
    const std::string raw = *base64_decode(good);
    // A signature whose Base64 has no '+', '/' or '=' reads the same in
    // Base64url: find a message whose signature differs in the two alphabets,
    // or the "Base64url" case below would be a valid signature (6% of ECDSA
    // signatures, which are random).
    std::string url_message;
    std::string url_raw;
    for (int i = 0; url_message.empty(); ++i) {
      const std::string candidate = k_message + "-" + std::to_string(i);
      std::string sig = *base64_decode(priv.sign_base64(candidate));
      if (base64url_encode(sig) != base64_encode(sig)) {
        url_message = candidate;
        url_raw = std::move(sig);
      }
    }
    std::string flipped = raw;
    flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x01);
    struct {
      const char* rule;
      std::string message;
      std::string signature;
    } cases[] = {
        {"signed by another key", k_message, other_key_of(type).sign_base64(k_message)},
        {"tampered message", k_message + "x", good},
        {"message differs in one byte", "dev-2" + k_message.substr(5), good},
        {"truncated signature", k_message, base64_encode(raw.substr(0, raw.size() - 1))},
        {"half a signature", k_message, base64_encode(raw.substr(0, raw.size() / 2))},
        {"one bit flipped", k_message, base64_encode(flipped)},
        {"signature with trailing byte", k_message, base64_encode(raw + '\0')},
        {"bad Base64 characters", k_message, "!!!!"},
        {"Base64url instead of Base64", url_message, base64url_encode(url_raw)},
        {"whitespace in Base64", k_message, " " + good},
        {"empty signature", k_message, ""},
        {"zero bytes", k_message, base64_encode(std::string(raw.size(), '\0'))},
    };
    // One Verifier through every case: the same answers as PublicKey::verify, and a good signature after
    // all the bad ones still verifies (a failed check leaves the prepared context usable).
    Verifier v(pub);
    for (const auto& c : cases) {
      INFO(to_string(type) << ": " << c.rule);
      CHECK_FALSE(pub.verify(c.message, c.signature));
      CHECK(ERR_peek_error() == 0);
      CHECK_FALSE(v.verify(c.message, c.signature));
      CHECK(ERR_peek_error() == 0);
    }
    CHECK(v.verify(k_message, good));
  }
}

TEST_CASE("a signature of one key type never verifies under another", "[core][signature]") {
  for (KeyType signer : k_all_types) {
    for (KeyType verifier : k_all_types) {
      if (signer == verifier) continue;
      INFO(to_string(signer) << " signature against " << to_string(verifier) << " key");
      CHECK_FALSE(public_of(key_of(verifier)).verify(k_message, key_of(signer).sign_base64(k_message)));
      CHECK(ERR_peek_error() == 0);
      CHECK_FALSE(
          Verifier(public_of(key_of(verifier))).verify(k_message, key_of(signer).sign_base64(k_message)));
      CHECK(ERR_peek_error() == 0);
    }
  }
}

TEST_CASE("RSA signs with PKCS#1 v1.5, which is deterministic (PSS is not)", "[core][signature]") {
  const PrivateKey& priv = key_of(KeyType::rsa);
  const std::string signature = priv.sign_base64(k_message);
  CHECK(signature == priv.sign_base64(k_message));
  CHECK(base64_decode(signature)->size() == 256);
}

TEST_CASE("Ed25519 verifies the RFC 8032 test vector", "[core][signature]") {
  const std::string pem =
      "-----BEGIN PUBLIC KEY-----\n"
      "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
      "-----END PUBLIC KEY-----\n";
  const std::string signature =
      "5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw==";
  auto pub = PublicKey::from_pem(pem);
  REQUIRE(pub.ok());
  CHECK(pub->type() == KeyType::ed25519);
  CHECK(pub->verify("", signature));
  CHECK_FALSE(pub->verify("x", signature));
}

TEST_CASE("PublicKey::from_pem refuses unsupported and malformed keys", "[core][signature]") {
  const std::string good = key_of(KeyType::ec_p256).public_pem();
  struct {
    const char* rule;
    std::string pem;
    std::string message;
  } cases[] = {
      {"RSA 1024", keys::rsa_public_pem(1024),
       "unsupported key: RSA keys must have at least 2048 bits (got 1024)"},
      {"RSA 2047", keys::rsa_public_pem(2047),
       "unsupported key: RSA keys must have at least 2048 bits (got 2047)"},
      {"DSA", keys::dsa_public_pem(),
       "unsupported key: DSA keys are not accepted; use RSA (at least 2048 bits), EC P-256 or Ed25519"},
      {"EC P-384", keys::ec_public_pem("P-384"),
       "unsupported key: EC keys must use P-256 (prime256v1), got secp384r1"},
      {"EC secp256k1", keys::ec_public_pem("secp256k1"),
       "unsupported key: EC keys must use P-256 (prime256v1), got secp256k1"},
      {"X25519", keys::x25519_public_pem(),
       "unsupported key: X25519 keys are not accepted; use RSA (at least 2048 bits), EC P-256 or Ed25519"},
      {"Ed448", keys::ed448_public_pem(),
       "unsupported key: ED448 keys are not accepted; use RSA (at least 2048 bits), EC P-256 or Ed25519"},
      {"private key PEM", key_of(KeyType::ed25519).private_pem(),
       "expected a public key (-----BEGIN PUBLIC KEY-----), got a private key"},
      {"PKCS#1 RSA PUBLIC KEY block (not SubjectPublicKeyInfo)", keys::rsa_pkcs1_public_pem(2048),
       "malformed public key: expected a PEM -----BEGIN PUBLIC KEY----- block"},
      {"empty", "", "empty public key"},
      {"whitespace only", " \n\t", "empty public key"},
      {"garbage", "hello world", "malformed public key: expected a PEM -----BEGIN PUBLIC KEY----- block"},
      {"truncated PEM", good.substr(0, good.size() / 2),
       "malformed public key: expected a PEM -----BEGIN PUBLIC KEY----- block"},
      {"corrupted body", "-----BEGIN PUBLIC KEY-----\nAAAAAAAA\n-----END PUBLIC KEY-----\n",
       "malformed public key: expected a PEM -----BEGIN PUBLIC KEY----- block"},
      {"oversized", std::string(70 * 1024, 'A'), "public key PEM too large"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto key = PublicKey::from_pem(c.pem);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().code == ErrorCode::bad_request);
    CHECK(key.error().message == c.message);
    CHECK(ERR_peek_error() == 0);
  }
}

TEST_CASE("PEM round trips", "[core][signature]") {
  for (KeyType type : k_all_types) {
    INFO(to_string(type));
    const PrivateKey& priv = key_of(type);
    auto reloaded = PrivateKey::from_pem(priv.private_pem());
    REQUIRE(reloaded.ok());
    CHECK(reloaded->type() == type);
    CHECK(reloaded->private_pem() == priv.private_pem());
    CHECK(reloaded->public_pem() == priv.public_pem());
    const PublicKey pub = public_of(priv);
    CHECK(pub.pem() == priv.public_pem());
    CHECK(pub.verify(k_message, reloaded->sign_base64(k_message)));
  }
}

TEST_CASE("PrivateKey::from_pem accepts PKCS#8 and traditional forms", "[core][signature]") {
  struct {
    const char* rule;
    std::string pem;
    KeyType type;
  } cases[] = {
      {"PKCS#8 RSA", keys::rsa_private_pem(2048), KeyType::rsa},
      {"traditional RSA", keys::rsa_traditional_private_pem(2048), KeyType::rsa},
      {"traditional EC", keys::ec_traditional_private_pem("P-256"), KeyType::ec_p256},
      {"PKCS#8 Ed25519", key_of(KeyType::ed25519).private_pem(), KeyType::ed25519},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto priv = PrivateKey::from_pem(c.pem);
    REQUIRE(priv.ok());
    CHECK(priv->type() == c.type);
    CHECK(public_of(*priv).verify(k_message, priv->sign_base64(k_message)));
  }
}

TEST_CASE("PrivateKey::from_pem refuses unsupported and malformed keys", "[core][signature]") {
  struct {
    const char* rule;
    std::string pem;
    std::string message;
  } cases[] = {
      {"RSA 1024", keys::rsa_private_pem(1024),
       "unsupported key: RSA keys must have at least 2048 bits (got 1024)"},
      {"traditional EC P-384", keys::ec_traditional_private_pem("P-384"),
       "unsupported key: EC keys must use P-256 (prime256v1), got secp384r1"},
      {"encrypted", keys::encrypted_private_pem(), "malformed or encrypted private key"},
      {"public key PEM", key_of(KeyType::rsa).public_pem(),
       "expected a private key (-----BEGIN PRIVATE KEY-----)"},
      {"empty", "", "empty private key"},
      {"corrupted body", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
       "malformed or encrypted private key"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto key = PrivateKey::from_pem(c.pem);
    REQUIRE_FALSE(key.ok());
    CHECK(key.error().code == ErrorCode::bad_request);
    CHECK(key.error().message == c.message);
    CHECK(ERR_peek_error() == 0);
  }
}
