// Device signatures: public keys from PEM, signature verification, and signing (simulator, tests).
//
// Accepted keys: RSA of at least 2048 bits (RSASSA-PKCS1-v1_5 with SHA-256), ECDSA on P-256 with
// SHA-256 (DER signatures), Ed25519. Every other key is refused when loaded, so a loaded key always
// verifies with one of these three schemes. Const member functions may be called from several threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "protocol/core/result.h"

// OpenSSL's key type, kept out of our headers' includes.
struct evp_pkey_st;

namespace dispatch::core {

enum class KeyType { rsa, ec_p256, ed25519 };

// "rsa", "ec_p256", "ed25519".
std::string_view to_string(KeyType type);

inline constexpr int k_min_rsa_bits = 2048;

struct EvpPkeyDeleter {
  void operator()(evp_pkey_st* key) const;
};
using EvpPkeyPtr = std::unique_ptr<evp_pkey_st, EvpPkeyDeleter>;

class PublicKey {
 public:
  // Loads a PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"). bad_request, with a message
  // saying why, for: empty or malformed PEM, a private key, RSA under 2048 bits, EC on a curve other
  // than P-256, and any other algorithm (DSA, X25519, Ed448, ...).
  static Result<PublicKey> from_pem(std::string_view pem);

  KeyType type() const { return type_; }
  // Key size: the RSA modulus, 256 for P-256, 256 for Ed25519 (OpenSSL's "security bits" differ).
  int bits() const;

  // True only if signature_base64 (standard Base64, padded) is a valid signature of message under this
  // key with the key type's scheme. Malformed Base64, a signature of the wrong length or made by
  // another key or key type give false; the OpenSSL error queue is left empty.
  bool verify(std::string_view message, std::string_view signature_base64) const;

  // The key as a PEM SubjectPublicKeyInfo.
  std::string pem() const;

 private:
  PublicKey(EvpPkeyPtr key, KeyType type) : key_(std::move(key)), type_(type) {}
  friend class PrivateKey;
  friend class Verifier;

  EvpPkeyPtr key_;
  KeyType type_;
};

// A public key prepared for many verifications, for one thread at a time (a cache of parsed device keys,
// say). PublicKey::verify sets OpenSSL up at every call (a new context, the signature and digest
// algorithms looked up, the key's parameters copied in), about a quarter of an RSA-2048 verification's
// time; a Verifier does that once and then only hashes the message and checks the signature. The same
// answers as PublicKey::verify for every input (Ed25519, which OpenSSL signs and verifies in one pass over
// the message, takes PublicKey::verify's path).
class Verifier {
 public:
  explicit Verifier(const PublicKey& key);
  ~Verifier();
  Verifier(Verifier&& other) noexcept;
  Verifier& operator=(Verifier&& other) noexcept;
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  // As PublicKey::verify. Not for concurrent calls on one Verifier.
  bool verify(std::string_view message, std::string_view signature_base64);

 private:
  struct Prepared;  // OpenSSL's verification context (signature.cpp)
  EvpPkeyPtr key_;
  KeyType type_;
  std::unique_ptr<Prepared> prepared_;  // null for Ed25519, or when preparing failed
};

class PrivateKey {
 public:
  // Loads an unencrypted PEM private key, PKCS#8 ("BEGIN PRIVATE KEY") or traditional ("BEGIN RSA
  // PRIVATE KEY", "BEGIN EC PRIVATE KEY"). Same key rules and errors as PublicKey::from_pem; an
  // encrypted key is refused (never prompts for a passphrase).
  static Result<PrivateKey> from_pem(std::string_view pem);
  // A fresh key: RSA 2048, P-256 or Ed25519. Aborts only if OpenSSL itself is broken.
  static PrivateKey generate(KeyType type);

  KeyType type() const { return type_; }
  std::string private_pem() const;  // PKCS#8
  std::string public_pem() const;   // SubjectPublicKeyInfo
  PublicKey public_key() const;

  // The signature of message with the key type's scheme, standard Base64 (padded).
  std::string sign_base64(std::string_view message) const;

 private:
  PrivateKey(EvpPkeyPtr key, KeyType type) : key_(std::move(key)), type_(type) {}

  EvpPkeyPtr key_;
  KeyType type_;
};

// The bytes a fresh provisioning token signs: "{hw}\n{ts}\n{nonce}" (PROTOCOL §2.1).
std::string fresh_token_message(std::string_view hw, std::string_view ts, std::string_view nonce);

}  // namespace dispatch::core
