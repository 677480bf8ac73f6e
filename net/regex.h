// User-supplied regular expressions (rules files, --match flags) compiled with RE2: matching
// time is linear in the input whatever the pattern, so a hostile or careless pattern
// (`(a*)*b`, nested stars) cannot stall the replayer or the proxy. RE2 syntax is Perl-like
// without backreferences and lookaround (https://github.com/google/re2/wiki/Syntax).
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string_view>

#include "base/status.h"

namespace doppel::net {

// Compiles `pattern` (UTF-8, RE2 syntax). `what` names the pattern for the error message
// ("rules[2].regex"): kInvalidArgument "WHAT: bad regex \"PATTERN\": REASON". The result is
// immutable and safe to use from many threads.
Result<std::unique_ptr<re2::RE2>> CompileRegex(std::string_view pattern, std::string_view what);

}  // namespace doppel::net
