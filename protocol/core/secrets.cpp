#include "protocol/core/secrets.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "protocol/core/encoding.h"

namespace dispatch::core {

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "dispatch: fatal: %s\n", what);
  std::abort();
}

void fill_random(unsigned char* out, std::size_t n) {
  if (n == 0) return;
  if (RAND_bytes(out, static_cast<int>(n)) != 1) die("the OS random number generator failed");
}

}  // namespace

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  fill_random(reinterpret_cast<unsigned char*>(out.data()), n);
  return out;
}

std::string random_token() { return base64url_encode(random_bytes(32)); }

std::string random_hex(std::size_t bytes) { return hex_encode(random_bytes(bytes)); }

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  Impl() {
    ctx = EVP_MD_CTX_new();
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) die("SHA-256 unavailable");
  }
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::string_view data) {
  // A moved-from hasher gets a fresh state rather than crashing.
  if (!impl_) impl_ = std::make_unique<Impl>();
  if (EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1) die("SHA-256 update failed");
}

std::string Sha256::final_hex() {
  if (!impl_) impl_ = std::make_unique<Impl>();
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, digest.data(), &len) != 1 ||
      EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    die("SHA-256 final failed");
  }
  return hex_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), len));
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.final_hex();
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

constexpr std::string_view k_crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr TimeMs k_max_ulid_time = (TimeMs{1} << 48) - 1;

// The last id minted, so ids of one millisecond increase strictly (ULID "monotonic" mode).
struct UlidState {
  std::mutex mu;
  TimeMs last_ms = -1;                      // guarded by mu
  std::array<unsigned char, 10> last_rand;  // guarded by mu
};

UlidState& ulid_state() {
  static UlidState state;
  return state;
}

// Adds one to an 80-bit big-endian number; false on overflow.
bool increment(std::array<unsigned char, 10>& r) {
  for (auto it = r.rbegin(); it != r.rend(); ++it) {
    if (++*it != 0) return true;
  }
  return false;
}

}  // namespace

std::string new_id(TimeMs now_ms) {
  TimeMs ms = std::clamp<TimeMs>(now_ms, 0, k_max_ulid_time);
  std::array<unsigned char, 10> rand{};
  {
    auto& s = ulid_state();
    std::lock_guard lock(s.mu);
    // Within one millisecond, random bits alone would order ids arbitrarily: count up instead. A clock
    // that steps back is not hidden (that would pin every later id to a future time).
    if (ms == s.last_ms && increment(s.last_rand)) {
      rand = s.last_rand;
    } else {
      fill_random(rand.data(), rand.size());
    }
    s.last_ms = ms;
    s.last_rand = rand;
  }

  std::string out(26, '0');
  std::uint64_t t = static_cast<std::uint64_t>(ms);
  for (int i = 9; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = k_crockford[t & 31];
    t >>= 5;
  }
  // 80 bits = 16 groups of 5 bits, most significant first.
  for (int i = 0; i < 16; ++i) {
    unsigned value = 0;
    for (int b = 0; b < 5; ++b) {
      const int bit = i * 5 + b;
      value = value << 1 | ((rand[static_cast<std::size_t>(bit / 8)] >> (7 - bit % 8)) & 1u);
    }
    out[static_cast<std::size_t>(10 + i)] = k_crockford[value];
  }
  return out;
}

std::string new_id() { return new_id(SystemClock().now_ms()); }

}  // namespace dispatch::core
