// Result<T> and Error: how failures cross module boundaries.
//
// An Error carries one of the wire error codes of PROTOCOL §5 and a message for humans. The message
// never contains a secret (token, key, signature). Exceptions are caught at the edge of the module that
// uses the throwing library and turned into an Error; nothing else throws across a boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace dispatch::core {

enum class ErrorCode {
  bad_request,
  not_found,
  conflict,
  unauthorized,
  rate_limited,
  token_invalid,
  too_large,
  unavailable,
  internal,
};

// The wire spelling of a code ("bad_request", ...).
std::string_view to_string(ErrorCode code);
// Inverse of to_string; nullopt for an unknown spelling.
std::optional<ErrorCode> error_code_from_string(std::string_view s);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  // Only for rate_limited: whole seconds until a retry can succeed.
  std::optional<std::int64_t> retry_after_s;

  bool operator==(const Error&) const = default;
};

inline Error make_error(ErrorCode code, std::string message) { return Error{code, std::move(message), {}}; }

// A value or an Error. Access value() only when ok(); error() only when !ok().
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

}  // namespace dispatch::core
