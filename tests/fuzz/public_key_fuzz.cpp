// Fuzzes core::PublicKey::from_pem (the public key given to devices/register). Input: the PEM text.
// Invariants (signature.h): only bad_request, with the OpenSSL error queue left empty; a text holding
// a private key is refused; an accepted key obeys the key rules (RSA >= 2048 bits, P-256 and Ed25519
// 256) and re-exports to a PEM that loads again as the same key; verify with the loaded key runs the
// full check without crashing or leaving errors behind.
// Each from_pem costs OpenSSL 3.0 ~3,000 allocations (its decoder set-up), so this target loads the
// input once and verifies against a fixed signature of the key's size; signature_fuzz fuzzes the
// signature and message against fixed keys.
#include <openssl/err.h>

#include <string>

#include "protocol/core/encoding.h"
#include "protocol/core/signature.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using dispatch::core::KeyType;

// A signature of the right length for the key, so verification gets past the length checks and runs
// the key's arithmetic (RSA: a value below a 2048+ bit modulus; P-256: DER r = s = 1; Ed25519: 64 bytes).
std::string signature_for(KeyType type, int bits) {
  switch (type) {
    case KeyType::rsa:
      return dispatch::core::base64_encode(std::string(static_cast<std::size_t>(bits + 7) / 8, '\x01'));
    case KeyType::ec_p256:
      return "MAYCAQECAQE=";
    case KeyType::ed25519:
      return dispatch::core::base64_encode(std::string(64, '\x5a'));
  }
  return {};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  const auto pem = fuzz::as_text(data, size);
  auto key = core::PublicKey::from_pem(pem);
  fuzz::check(ERR_peek_error() == 0, "from_pem leaves the OpenSSL error queue empty");
  if (!key) {
    fuzz::check(key.error().code == core::ErrorCode::bad_request, "from_pem fails only with bad_request");
    return 0;
  }
  fuzz::check(pem.find("PRIVATE KEY-----") == std::string_view::npos, "a private key is refused");
  const int bits = key->bits();
  fuzz::check(key->type() == KeyType::rsa ? bits >= core::k_min_rsa_bits : bits == 256, "key size rules");

  const std::string exported = key->pem();
  auto again = core::PublicKey::from_pem(exported);
  fuzz::check(again.ok() && again->type() == key->type() && again->bits() == bits, "pem() loads again");
  fuzz::check(again->pem() == exported, "pem() is stable");

  (void)key->verify(core::fresh_token_message("dev-1", "2026-11-26T10:00:00Z", "n"),
                    signature_for(key->type(), bits));
  fuzz::check(ERR_peek_error() == 0, "verify leaves the OpenSSL error queue empty");
  return 0;
}
