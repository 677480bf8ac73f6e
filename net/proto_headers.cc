#include "net/proto_headers.h"

#include <vector>

#include "base/strings.h"
#include "net/headers.h"

namespace doppel::net {
namespace {

// Keeps the headers `drop` is false for, in order.
template <typename Drop>
void RemoveIf(ProtoHeaders* headers, Drop drop) {
  int out = 0;
  for (int i = 0; i < headers->size(); ++i) {
    if (drop(headers->Get(i))) continue;
    if (out != i) headers->SwapElements(out, i);
    ++out;
  }
  while (headers->size() > out) headers->RemoveLast();
}

}  // namespace

const std::string* FindHeader(const ProtoHeaders& headers, std::string_view name) {
  for (const auto& h : headers)
    if (EqualsIgnoreCase(h.name(), name)) return &h.value();
  return nullptr;
}

void ReplaceHeader(ProtoHeaders* headers, std::string_view name, const std::string& value) {
  for (auto& h : *headers)
    if (EqualsIgnoreCase(h.name(), name)) h.set_value(value);
}

void RemoveHeader(ProtoHeaders* headers, std::string_view name) {
  RemoveIf(headers, [&](const doppel::v1::Header& h) { return EqualsIgnoreCase(h.name(), name); });
}

void StripHopByHop(ProtoHeaders* headers) {
  std::vector<std::string> named;
  for (const auto& h : *headers) {
    if (!EqualsIgnoreCase(h.name(), "Connection")) continue;
    std::string_view v = h.value();
    while (!v.empty()) {
      const size_t comma = v.find(',');
      const std::string_view token = TrimSpaces(v.substr(0, comma));
      if (!token.empty()) named.emplace_back(token);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  RemoveIf(headers, [&](const doppel::v1::Header& h) {
    if (IsHopByHop(h.name())) return true;
    for (const auto& n : named)
      if (EqualsIgnoreCase(n, h.name())) return true;
    return false;
  });
}

}  // namespace doppel::net
