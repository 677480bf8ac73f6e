#include "net/regex.h"

#include <string>

namespace doppel::net {

Result<std::unique_ptr<re2::RE2>> CompileRegex(std::string_view pattern, std::string_view what) {
  re2::RE2::Options options;
  options.set_log_errors(false);  // the error goes into the Status, not to stderr
  auto re = std::make_unique<re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    return Status::InvalidArgument(std::string(what) + ": bad regex \"" + std::string(pattern) +
                                   "\": " + re->error() +
                                   " (RE2 syntax: no backreferences or lookaround)");
  }
  return re;
}

}  // namespace doppel::net
