// Test keys made with raw OpenSSL, including the kinds dispatch::core refuses, so tests can feed them.
// Every function returns a fresh PEM; generation failures fail the calling test (Catch2 REQUIRE).
#pragma once

#include <string>

namespace dispatch::testing {

// SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----") of an RSA key with `bits` bits.
std::string rsa_public_pem(int bits);
// PKCS#1 ("-----BEGIN RSA PUBLIC KEY-----") RSA public key: not a SubjectPublicKeyInfo.
std::string rsa_pkcs1_public_pem(int bits);
// PKCS#8 ("-----BEGIN PRIVATE KEY-----") RSA private key with `bits` bits.
std::string rsa_private_pem(int bits);
// Traditional ("-----BEGIN RSA PRIVATE KEY-----") RSA private key with `bits` bits.
std::string rsa_traditional_private_pem(int bits);
// Traditional ("-----BEGIN EC PRIVATE KEY-----") private key on `curve` (e.g. "P-256").
std::string ec_traditional_private_pem(const char* curve);
// PKCS#8 private key encrypted with AES-256-CBC under the passphrase "secret".
std::string encrypted_private_pem();
// SubjectPublicKeyInfo of a DSA key (1024-bit parameters, quick to generate).
std::string dsa_public_pem();
// SubjectPublicKeyInfo of an EC key on `curve`, e.g. "P-384".
std::string ec_public_pem(const char* curve);
// SubjectPublicKeyInfo of an X25519 (key agreement, not signature) key.
std::string x25519_public_pem();
// SubjectPublicKeyInfo of an Ed448 key.
std::string ed448_public_pem();

}  // namespace dispatch::testing
