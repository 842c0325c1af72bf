// Fuzzes core::PublicKey::verify (the signature of a provisioning token, PROTOCOL §2.1) against three
// fixed keys loaded once, one per accepted type, so every input reaches the Base64 decoding and the
// OpenSSL verification instead of paying for a PEM load (public_key_fuzz covers loading).
// Input: <selector byte><base64 signature>\0<message>; selector % 3 picks RSA-2048, P-256 or Ed25519.
// Invariants: verify never crashes and leaves the OpenSSL error queue empty; a signature that verifies
// is bound to its key and message (it fails under the other two keys and for a changed message).
// The keys are the public halves of tests/fuzz/corpus/public_key/seed-05 (RSA), seed-01 (P-256) and
// seed-03 (Ed25519), private keys made for these tests, so the seeds in
// tests/fuzz/corpus/signature/ carry real signatures.
#include <openssl/err.h>

#include <array>
#include <string>

#include "protocol/core/signature.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using dispatch::core::PublicKey;

constexpr const char* k_rsa_pem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAkGje2sSd3YxUZLrxQfnQ\n"
    "2i7tipeJTrwJgjFINZjKwMLKCxVWCdFMVALuKcziKKVNFdE5WkKltJmzum82ygua\n"
    "ckS2D05H1RUAo2JQrWTd5jRyEwqC3/0Enx68IdPQJFmNOfwvioqZePKxPcch8jw4\n"
    "vgrrxVRxdkiwgf0mhMgjC4oQcdvR6VTLAvp2ANMBJAHtYEX7mA2Xx1Bi20UQFjQv\n"
    "RNMfujWVTqB2/NCDkAj8Af6GN4YE3cP25fIhFrnBYjrfbN6C0BS0bLGlJLisrgFX\n"
    "R/xhbt15PVBe952rW5ib/hemJnPGsf/85SXwrixWIAYbvNcpuua5CH2vvnCaoB4V\n"
    "ewIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* k_ec_pem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeKGkqFz1zy4fDz/B0LoHZxP9GuMw\n"
    "aqxAzhJsPe6Rngqqma7HNfIs39zCyyWVWeAIv7JvI4VGBiIsCChHM7Q44g==\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* k_ed25519_pem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAf1XL4YcDZUl1OjOFYJgsZK6MU5CaIe1+nC++X+naXQ4=\n"
    "-----END PUBLIC KEY-----\n";

PublicKey load(const char* pem) {
  auto key = PublicKey::from_pem(pem);
  dispatch::fuzz::check(key.ok(), "a fixed key loads");
  return std::move(*key);
}

const std::array<PublicKey, 3>& keys() {
  static const std::array<PublicKey, 3> loaded{load(k_rsa_pem), load(k_ec_pem), load(k_ed25519_pem)};
  return loaded;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  if (size == 0) return 0;
  const auto& all = keys();
  const std::size_t chosen = data[0] % all.size();
  auto fields = fuzz::split_fields(fuzz::as_text(data + 1, size - 1), 2);
  const std::string_view signature = fields[0];
  const std::string_view message = fields[1];

  const bool valid = all[chosen].verify(message, signature);
  fuzz::check(ERR_peek_error() == 0, "verify leaves the OpenSSL error queue empty");
  if (!valid) return 0;
  for (std::size_t other = 0; other < all.size(); ++other) {
    if (other != chosen) fuzz::check(!all[other].verify(message, signature), "a signature fits one key only");
  }
  std::string changed(message);
  changed.push_back('x');
  fuzz::check(!all[chosen].verify(changed, signature), "a signature fits one message only");
  fuzz::check(ERR_peek_error() == 0, "verify leaves the OpenSSL error queue empty");
  return 0;
}
