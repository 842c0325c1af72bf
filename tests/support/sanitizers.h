// Whether this test binary is built with AddressSanitizer (scripts/test --sanitize), and how much the time
// budgets of timing checks stretch there.
#pragma once

namespace dispatch::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool k_sanitized = true;
#else
inline constexpr bool k_sanitized = false;
#endif
#else
inline constexpr bool k_sanitized = false;
#endif

// ASan + UBSan at -O1 run the storage batches 2-3x slower than -O2 (measured on the shared 2-core machine
// under load); a timing check multiplies its budget by this so it still catches an order-of-magnitude
// regression in the sanitized run without failing on instrumentation overhead.
inline constexpr int k_time_scale = k_sanitized ? 5 : 1;

}  // namespace dispatch::testing
