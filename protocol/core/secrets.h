// Secrets: random tokens and ids from the OS CSPRNG, SHA-256, constant-time comparison.
//
// Randomness comes from OpenSSL's RAND_bytes (seeded by the OS). If the generator fails the process
// aborts: there is no safe way to carry on without randomness. All functions are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "protocol/core/clock.h"

namespace dispatch::core {

// n bytes from the CSPRNG.
std::string random_bytes(std::size_t n);

// 256 random bits as Base64url without padding: 43 characters. Used for download tokens.
std::string random_token();

// `bytes` random bytes as lowercase hex (2 * bytes characters).
std::string random_hex(std::size_t bytes);

// SHA-256 of `bytes` as 64 lowercase hex characters.
std::string sha256_hex(std::string_view bytes);

// SHA-256 fed in pieces (e.g. a file in chunks). Move-only.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view data);
  // The digest of everything given since construction or the last final_hex(), as 64 lowercase hex
  // characters; then the hasher starts over empty.
  std::string final_hex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Equality of two secrets in time that depends only on their length; different lengths are unequal.
bool constant_time_equal(std::string_view a, std::string_view b);

// A ULID (https://github.com/ulid/spec): 26 characters of Crockford base32, 48 bits of milliseconds
// then 80 random bits. Ids minted in a later millisecond sort later; ids minted by one process in the
// same millisecond are strictly increasing (the random part counts up). Only a clock stepping back
// breaks the order.
std::string new_id();
// The same, with the time given (now_ms is clamped to the 48-bit range).
std::string new_id(TimeMs now_ms);

}  // namespace dispatch::core
