// Device key pairs made by the platform: esthesis agents register without a key and expect the platform
// to generate one and return its private half once (PROTOCOL §6, `POST /api/v1/agent/register`).
#pragma once

#include <string>

#include "protocol/core/result.h"

namespace dispatch::core {

struct GeneratedKeyPair {
  std::string private_key_pkcs8_pem;  // "-----BEGIN PRIVATE KEY-----", unencrypted: return it, never store it
  std::string public_key_spki_pem;    // "-----BEGIN PUBLIC KEY-----", loads with PublicKey::from_pem
};

inline constexpr int k_max_generated_rsa_bits = 8192;

// A fresh RSA key pair from OpenSSL's CSPRNG (public exponent 65537). Its private key signs
// RSASSA-PKCS1-v1_5-SHA256, the scheme PublicKey verifies for RSA (the esthesis agent's
// SHA256withRSA). bad_request for bits below k_min_rsa_bits (2048) or above k_max_generated_rsa_bits;
// internal if OpenSSL fails (the error queue is cleared). RSA 2048 takes tens of milliseconds, 4096
// about a second: do not call it on the service loop thread.
Result<GeneratedKeyPair> generate_rsa_key(int bits = 2048);

}  // namespace dispatch::core
