#include "net/headers.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/strings.h"

namespace doppel::net {

namespace http = boost::beast::http;

bool IsHopByHop(std::string_view name) {
  static constexpr std::string_view kHopByHop[] = {"connection", "keep-alive", "proxy-connection",
                                                   "te",         "trailer",    "transfer-encoding",
                                                   "upgrade"};
  for (std::string_view h : kHopByHop) {
    if (boost::beast::iequals(name, h)) return true;
  }
  return false;
}

namespace {

bool ListsToken(const http::fields& fields, http::field name, std::string_view token) {
  for (const auto& f : fields) {
    if (f.name() != name) continue;
    for (auto t : http::token_list(f.value())) {
      if (boost::beast::iequals(t, token)) return true;
    }
  }
  return false;
}

}  // namespace

bool IsWebSocketUpgrade(const http::fields& fields) {
  return ListsToken(fields, http::field::upgrade, "websocket") &&
         ListsToken(fields, http::field::connection, "upgrade");
}

bool AcceptsTrailers(const http::fields& fields) {
  for (const auto& f : fields) {
    if (f.name() != http::field::te) continue;
    // t-codings with parameters ("gzip;q=0.5") are extensions, not bare tokens.
    for (const auto& coding : http::ext_list(f.value())) {
      if (boost::beast::iequals(coding.first, "trailers")) return true;
    }
  }
  return false;
}

void StripHopByHop(http::fields& fields) {
  // Collect the names Connection lists first (there may be several Connection lines).
  std::vector<std::string> named;
  // (fields.equal_range is not usable: it spans list positions, not only equal names.)
  for (const auto& f : fields) {
    if (f.name() != http::field::connection) continue;
    for (auto token : http::token_list(f.value())) named.emplace_back(token);
  }
  for (const std::string& name : named) fields.erase(name);
  fields.erase(http::field::connection);
  fields.erase(http::field::keep_alive);
  fields.erase(http::field::proxy_connection);
  fields.erase(http::field::te);
  fields.erase(http::field::trailer);
  fields.erase(http::field::transfer_encoding);
  fields.erase(http::field::upgrade);
}

void AppendVia(http::fields& fields, unsigned version, std::string_view name) {
  std::string hop = std::to_string(version / 10) + "." + std::to_string(version % 10) + " ";
  hop += name;
  auto it = fields.find(http::field::via);
  if (it == fields.end()) {
    fields.set(http::field::via, hop);
  } else {
    std::string value(it->value());
    value += ", ";
    value += hop;
    fields.set(http::field::via, value);
  }
}

void AddForwardingHeaders(http::fields& fields, const ForwardingInfo& info) {
  // Several X-Forwarded-For lines are folded into one list, then this client is appended.
  std::string xff;
  for (const auto& f : fields) {
    if (!boost::beast::iequals(f.name_string(), "X-Forwarded-For")) continue;
    if (!xff.empty()) xff += ", ";
    xff += f.value();
  }
  if (!xff.empty()) xff += ", ";
  xff += info.client_ip;
  fields.set("X-Forwarded-For", xff);
  fields.set("X-Forwarded-Proto", info.proto);
  if (fields.find("X-Forwarded-Host") == fields.end()) {
    auto host = fields.find(http::field::host);
    if (host != fields.end()) fields.set("X-Forwarded-Host", host->value());
  }
  AppendVia(fields, info.version, info.via_name);
}

bool ReusableFraming(const boost::beast::http::fields& fields) {
  const size_t te = fields.count(boost::beast::http::field::transfer_encoding);
  if (te == 0) return true;
  return te == 1 &&
         EqualsIgnoreCase(TrimSpaces(fields[boost::beast::http::field::transfer_encoding]),
                          "chunked");
}

void FlatFields::Assign(const boost::beast::http::fields& fields) {
  bytes_.clear();
  for (const auto& f : fields) {
    const std::string_view name = f.name_string(), value = f.value();
    const uint32_t sizes[2] = {static_cast<uint32_t>(name.size()),
                               static_cast<uint32_t>(value.size())};
    bytes_.append(reinterpret_cast<const char*>(sizes), sizeof sizes);
    bytes_.append(name);
    bytes_.append(value);
  }
}

template <typename F>
void FlatFields::ForEach(F&& f) const {
  for (size_t at = 0; at < bytes_.size();) {
    uint32_t sizes[2];
    std::memcpy(sizes, bytes_.data() + at, sizeof sizes);
    at += sizeof sizes;
    const std::string_view name(bytes_.data() + at, sizes[0]);
    const std::string_view value(bytes_.data() + at + sizes[0], sizes[1]);
    at += sizes[0] + sizes[1];
    if (!f(name, value)) return;
  }
}

std::optional<std::string_view> FlatFields::Find(std::string_view name) const {
  std::optional<std::string_view> found;
  ForEach([&](std::string_view n, std::string_view v) {
    if (!EqualsIgnoreCase(n, name)) return true;
    found = v;
    return false;
  });
  return found;
}

void FlatFields::CopyTo(ProtoHeaders* out) const {
  ForEach([out](std::string_view n, std::string_view v) {
    doppel::v1::Header* h = out->Add();
    h->set_name(std::string(n));
    h->set_value(std::string(v));
    return true;
  });
}

void CopyHeaders(const boost::beast::http::fields& fields, ProtoHeaders* out) {
  out->Reserve(out->size() + static_cast<int>(std::distance(fields.begin(), fields.end())));
  for (const auto& f : fields) {
    doppel::v1::Header* h = out->Add();
    h->set_name(std::string(f.name_string()));
    h->set_value(std::string(f.value()));
  }
}

}  // namespace doppel::net
