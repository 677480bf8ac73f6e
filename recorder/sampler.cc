#include "recorder/sampler.h"

#include <cmath>

#include "base/stable_hash.h"
#include "net/url.h"

namespace doppel::recorder {

Result<Sampler> Sampler::Create(double percent, const std::string& key) {
  if (!(percent >= 0 && percent <= 100)) {
    return Status::InvalidArgument("--sample must be between 0 and 100 (got " +
                                   std::to_string(percent) + ")");
  }
  Sampler s;
  s.percent_ = percent;
  s.key_ = key;
  if (!key.empty()) {
    const size_t colon = key.find(':');
    const std::string kind = key.substr(0, colon);
    if (colon == std::string::npos || colon + 1 == key.size() ||
        (kind != "header" && kind != "query")) {
      return Status::InvalidArgument("--sample-key must be header:NAME or query:NAME (got '" + key +
                                     "')");
    }
    s.kind_ = kind == "header" ? KeyKind::kHeader : KeyKind::kQuery;
    s.key_name_ = key.substr(colon + 1);
  }
  s.all_ = percent >= 100;
  // threshold = percent/100 * 2^64, computed in long double to keep fractions of a percent.
  const long double scaled = static_cast<long double>(percent) / 100.0L * 18446744073709551616.0L;
  s.threshold_ = s.all_ ? UINT64_MAX : static_cast<uint64_t>(std::floor(scaled));
  return s;
}

uint64_t Sampler::HashKey(std::string_view value) { return StableHash64(value); }

uint64_t Sampler::Draw(const net::RequestView& request, uint64_t random64) const {
  switch (kind_) {
    case KeyKind::kNone:
      break;
    case KeyKind::kHeader:
      if (request.header) {
        if (auto v = request.header(key_name_)) return HashKey(*v);
      }
      break;
    case KeyKind::kQuery:
      if (auto v = net::FindQueryParam(request.target, key_name_)) return HashKey(*v);
      break;
  }
  return random64;
}

bool Sampler::Sample(const net::RequestView& request, uint64_t random64) const {
  if (all_) return true;
  if (threshold_ == 0) return false;
  return Admit(Draw(request, random64));
}

}  // namespace doppel::recorder
