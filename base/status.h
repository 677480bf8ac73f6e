// Status and Result<T>: how errors cross module boundaries (no exceptions on the data plane).
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace doppel {

// A Status is OK or carries a code and a message written for the user: what was wrong and,
// where it helps, what to do about it. [[nodiscard]]: a Status dropped on the floor is a
// compile error (-Werror=unused-result); drop one on purpose with a (void) cast and a comment.
class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,
    kNotFound,
    kAlreadyExists,
    kCorruption,
    kIoError,
    kUnsupported,
    kUnavailable,
    kResourceExhausted,
    kInternal
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {Code::kResourceExhausted, std::move(m)};
  }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Returns a copy whose message is "context: message".
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

inline std::string Status::ToString() const {
  if (ok()) return "OK";
  return message_;
}

// Result<T> holds a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace doppel

// Returns the Status of `expr` from the calling function when it is not OK.
#define DOPPEL_RETURN_IF_ERROR(expr) \
  do {                               \
    ::doppel::Status _st = (expr);   \
    if (!_st.ok()) return _st;       \
  } while (0)

// Evaluates `rexpr` (a Result<T>); returns its Status from the calling function when it is not
// OK, else moves its value into `lhs`, which may declare a variable:
//   DOPPEL_ASSIGN_OR_RETURN(net::Url url, net::ParseUrl(text));
#define DOPPEL_ASSIGN_OR_RETURN(lhs, rexpr) \
  DOPPEL_ASSIGN_OR_RETURN_IMPL_(DOPPEL_STATUS_CONCAT_(doppel_result_, __LINE__), lhs, rexpr)

#define DOPPEL_ASSIGN_OR_RETURN_IMPL_(result, lhs, rexpr) \
  auto result = (rexpr);                                  \
  if (!result.ok()) return result.status();               \
  lhs = std::move(result).value()
#define DOPPEL_STATUS_CONCAT_INNER_(a, b) a##b
#define DOPPEL_STATUS_CONCAT_(a, b) DOPPEL_STATUS_CONCAT_INNER_(a, b)
