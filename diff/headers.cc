#include "diff/headers.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "base/strings.h"
#include "diff/path.h"
#include "net/proto_headers.h"

namespace doppel::diff {
namespace {

constexpr std::string_view kDefaultIgnored[] = {
    "date", "server", "age", "via", "expires", "last-modified", "keep-alive", "connection",
    "x-request-id", "request-id", "x-correlation-id", "traceparent", "tracestate", "x-trace-id",
    "x-amzn-trace-id", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "b3",
    "x-cloud-trace-context", "x-runtime", "x-response-time", "x-envoy-upstream-service-time",
    "content-encoding", "transfer-encoding", "grpc-encoding", "grpc-accept-encoding",
    // Derived from the handshake's fresh random key (RFC 6455 4.2.2): differs every time.
    "sec-websocket-accept",
    // Negotiation: WebSocket messages are compared decompressed, and the replayer offers none.
    "sec-websocket-extensions"};

// Headers whose single values contain commas: never split into list elements.
constexpr std::string_view kUnsplit[] = {"set-cookie",
                                         "date",
                                         "expires",
                                         "last-modified",
                                         "if-modified-since",
                                         "if-unmodified-since",
                                         "retry-after",
                                         "www-authenticate",
                                         "proxy-authenticate",
                                         "cookie"};

// `Out` is std::string or std::string_view (views into `value`).
template <typename Out>
void SplitInto(std::string_view value, bool split, std::vector<Out>* out) {
  if (!split) {
    out->emplace_back(TrimSpaces(value));
    return;
  }
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i <= value.size(); ++i) {
    if (i < value.size()) {
      char c = value[i];
      if (c == '\\' && quoted) {
        ++i;
        continue;
      }
      if (c == '"') quoted = !quoted;
      if (c != ',' || quoted) continue;
    }
    std::string_view element = TrimSpaces(value.substr(start, i - start));
    if (!element.empty()) out->emplace_back(element);
    start = i + 1;
  }
}

std::string Join(const std::vector<std::string_view>& values) {
  std::string out;
  for (std::string_view v : values) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return Abbreviate(out, 200);
}

}  // namespace

std::vector<std::string> HeaderValues(
    const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers, std::string_view name) {
  std::string lower = AsciiLower(name);
  bool split = std::find(std::begin(kUnsplit), std::end(kUnsplit), lower) == std::end(kUnsplit);
  std::vector<std::string> out;
  for (const doppel::v1::Header& h : headers) {
    if (AsciiLower(h.name()) == lower) SplitInto(h.value(), split, &out);
  }
  return out;
}

std::string_view FirstHeader(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers,
                             std::string_view name) {
  const std::string* value = net::FindHeader(headers, name);  // no copies: on every comparison
  return value ? std::string_view(*value) : std::string_view();
}

HeaderPolicy::HeaderPolicy(const std::vector<std::string>& ignore,
                           const std::vector<std::string>& compare) {
  for (std::string_view h : kDefaultIgnored) ignored_.emplace(h);
  presence_only_.emplace("set-cookie");
  for (const std::string& h : ignore) ignored_.insert(AsciiLower(h));
  for (const std::string& h : compare) {
    std::string lower = AsciiLower(h);
    ignored_.erase(lower);
    presence_only_.erase(lower);
    if (lower == "content-length") content_length_follows_body_ = false;
  }
}

void HeaderPolicy::Diff(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& expected,
                        const google::protobuf::RepeatedPtrField<doppel::v1::Header>& actual,
                        bool body_compared, DiffSink* sink, std::string_view section) const {
  // One entry per lowercased name, in the order names first appear (expected, then actual);
  // values are views into the headers. This runs for every replayed response: no map, and
  // no copies of values unless a header differs (then order is ignored).
  struct Entry {
    std::string name;
    std::vector<std::string_view> e, a;
    bool in_e = false, in_a = false;  // a header with an empty value is still present
  };
  std::vector<Entry> entries;
  entries.reserve(static_cast<size_t>(expected.size() + actual.size()));  // never moves
  // Past a few dozen names (a hostile response), look names up by hash instead of scanning.
  constexpr size_t kScanLimit = 32;
  std::unordered_map<std::string_view, size_t> index;
  auto find = [&](const std::string& lower) -> Entry& {
    if (entries.size() <= kScanLimit) {
      for (Entry& en : entries) {
        if (en.name == lower) return en;
      }
    } else {
      if (index.empty()) {
        for (size_t i = 0; i < entries.size(); ++i) index.emplace(entries[i].name, i);
      }
      if (auto it = index.find(lower); it != index.end()) return entries[it->second];
    }
    Entry& en = entries.emplace_back();
    en.name = lower;
    if (!index.empty()) index.emplace(en.name, entries.size() - 1);
    return en;
  };
  auto collect = [&](const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers,
                     bool is_expected) {
    std::string lower;
    for (const doppel::v1::Header& h : headers) {
      lower.assign(h.name());
      for (char& c : lower) c = AsciiLowerChar(c);
      Entry& en = find(lower);
      bool split = std::find(std::begin(kUnsplit), std::end(kUnsplit), lower) == std::end(kUnsplit);
      (is_expected ? en.in_e : en.in_a) = true;
      SplitInto(std::string_view(h.value()), split, is_expected ? &en.e : &en.a);
    }
  };
  collect(expected, true);
  collect(actual, false);
  for (const Entry& en : entries) {
    const std::string& name = en.name;
    const std::vector<std::string_view>& e = en.e;
    const std::vector<std::string_view>& a = en.a;
    bool in_e = en.in_e, in_a = en.in_a;
    if (in_e != in_a) {
      // present on one side only: differs
    } else if (e == a) {
      continue;
    } else if (e.size() == a.size()) {
      std::vector<std::string_view> se = e, sa = a;
      std::sort(se.begin(), se.end());
      std::sort(sa.begin(), sa.end());
      if (se == sa) continue;
    }
    std::string path(section);
    AppendKey(&path, name);
    bool ignore = ignored_.count(name) > 0 ||
                  (name == "content-length" && content_length_follows_body_ && body_compared) ||
                  (presence_only_.count(name) > 0 && in_e && in_a);
    if (ignore) {
      sink->Ignored(std::move(path));
    } else if (!in_a) {
      sink->Add(std::move(path), DiffKind::kMissing, Join(e), "");
    } else if (!in_e) {
      sink->Add(std::move(path), DiffKind::kExtra, "", Join(a));
    } else if (name == "grpc-status") {
      sink->Add(
          FieldDiff{std::move(path), DiffKind::kValue, Severity::kHigh, Join(e), Join(a), {}});
    } else {
      sink->Add(std::move(path), DiffKind::kValue, Join(e), Join(a));
    }
  }
}

}  // namespace doppel::diff
