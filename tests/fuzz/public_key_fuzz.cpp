// Fuzzes core::PublicKey::from_pem (public keys given to devices/register) and verify (provisioning
// tokens). Input: <pem>\0<base64 signature>\0<message>. Invariants: a loaded key re-exports to PEM that
// loads again with the same type, and verify never throws or leaves OpenSSL errors behind.
#include <openssl/err.h>

#include "protocol/core/signature.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  auto fields = fuzz::split_fields(fuzz::as_text(data, size), 3);
  auto key = core::PublicKey::from_pem(fields[0]);
  if (!key) {
    fuzz::check(key.error().code == core::ErrorCode::bad_request, "from_pem fails only with bad_request");
    return 0;
  }
  auto again = core::PublicKey::from_pem(key->pem());
  fuzz::check(again.ok() && again->type() == key->type(), "pem() loads again");
  (void)key->verify(fields[2], fields[1]);
  fuzz::check(ERR_peek_error() == 0, "verify leaves the OpenSSL error queue empty");
  return 0;
}
