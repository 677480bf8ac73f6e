#include "interop/envelope_json.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstring>
#include <optional>

#include "net/websocket_frames.h"

namespace doppel::interop {
namespace {

namespace json = boost::json;
using doppel::v1::Envelope;
using doppel::v1::Header;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json::array HeadersToJson(const google::protobuf::RepeatedPtrField<Header>& headers) {
  json::array out;
  for (const auto& h : headers) {
    json::object o;
    o["name"] = h.name();
    if (IsValidUtf8(h.value()))
      o["value"] = h.value();
    else
      o["value_base64"] = Base64Encode(h.value());
    out.push_back(std::move(o));
  }
  return out;
}

// Bytes as `key` (the text when it is UTF-8, else base64 with `key`_encoding "base64").
void PutBytes(json::object& o, const std::string& key, const std::string& bytes) {
  if (IsValidUtf8(bytes)) {
    o[key] = bytes;
  } else {
    o[key] = Base64Encode(bytes);
    o[key + "_encoding"] = "base64";
  }
}

void PutBody(json::object& o, const std::string& body, bool truncated, uint64_t size) {
  PutBytes(o, "body", body);
  if (truncated) o["body_truncated"] = true;
  o["body_size"] = size;
}

// Field readers: absent is fine (default), present with the wrong type is an error.
Status GetString(const json::object& o, const char* key, std::string* out) {
  auto* v = o.if_contains(key);
  if (!v || v->is_null()) return Status::Ok();
  if (!v->is_string())
    return Status::InvalidArgument(std::string("field '") + key + "' must be a string");
  *out = std::string(v->get_string());
  return Status::Ok();
}

Status GetUint(const json::object& o, const char* key, uint64_t* out) {
  auto* v = o.if_contains(key);
  if (!v || v->is_null()) return Status::Ok();
  if (v->is_uint64())
    *out = v->get_uint64();
  else if (v->is_int64() && v->get_int64() >= 0)
    *out = static_cast<uint64_t>(v->get_int64());
  else
    return Status::InvalidArgument(std::string("field '") + key +
                                   "' must be a non-negative integer");
  return Status::Ok();
}

Status GetBool(const json::object& o, const char* key, bool* out) {
  auto* v = o.if_contains(key);
  if (!v || v->is_null()) return Status::Ok();
  if (!v->is_bool())
    return Status::InvalidArgument(std::string("field '") + key + "' must be true or false");
  *out = v->get_bool();
  return Status::Ok();
}

// `key`: "headers", or "trailers" (a response's fields sent after the body).
Status GetHeaders(const json::object& o, const char* where,
                  google::protobuf::RepeatedPtrField<Header>* out, const char* key = "headers") {
  auto* v = o.if_contains(key);
  if (!v || v->is_null()) return Status::Ok();
  const std::string field = std::string(where) + "." + key;
  if (!v->is_array()) return Status::InvalidArgument(field + " must be an array");
  for (const auto& item : v->get_array()) {
    if (!item.is_object()) return Status::InvalidArgument(field + "[] must hold objects");
    const auto& h = item.get_object();
    Header* hdr = out->Add();
    std::string name, value, b64;
    DOPPEL_RETURN_IF_ERROR(GetString(h, "name", &name));
    DOPPEL_RETURN_IF_ERROR(GetString(h, "value", &value));
    DOPPEL_RETURN_IF_ERROR(GetString(h, "value_base64", &b64));
    if (!b64.empty() && !Base64Decode(b64, &value))
      return Status::InvalidArgument(field + "[].value_base64 is not base64");
    hdr->set_name(name);
    hdr->set_value(value);
  }
  return Status::Ok();
}

// Reads what PutBytes wrote.
Status GetBytes(const json::object& o, const std::string& where, const std::string& key,
                std::string* out) {
  std::string text, encoding;
  DOPPEL_RETURN_IF_ERROR(GetString(o, key.c_str(), &text));
  DOPPEL_RETURN_IF_ERROR(GetString(o, (key + "_encoding").c_str(), &encoding));
  if (encoding == "base64") {
    if (!Base64Decode(text, out))
      return Status::InvalidArgument(where + "." + key + " is not valid base64");
  } else if (encoding.empty() || encoding == "utf-8") {
    *out = std::move(text);
  } else {
    return Status::InvalidArgument(where + "." + key + "_encoding must be \"base64\" or absent");
  }
  return Status::Ok();
}

Status GetBody(const json::object& o, const char* where, std::string* body, bool* truncated,
               uint64_t* size) {
  DOPPEL_RETURN_IF_ERROR(GetBytes(o, where, "body", body));
  DOPPEL_RETURN_IF_ERROR(GetBool(o, "body_truncated", truncated));
  *size = body->size();
  return GetUint(o, "body_size", size);
}

}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += (i + 1 < in.size()) ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool Base64Decode(std::string_view in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    if (ch == '=' || ch == '\n' || ch == '\r') continue;
    const char* p = std::strchr(kB64, ch);
    if (!p || ch == '\0') return false;
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

namespace {

// A streamed response's pieces (event streams): [{"offset", "size", "at_us"}, ...].
json::array ChunksToJson(const google::protobuf::RepeatedPtrField<doppel::v1::StreamChunk>& in) {
  json::array out;
  for (const auto& c : in) {
    out.push_back(json::object{{"offset", c.offset()}, {"size", c.size()}, {"at_us", c.at_us()}});
  }
  return out;
}

Status ChunksFromJson(const json::object& response,
                      google::protobuf::RepeatedPtrField<doppel::v1::StreamChunk>* out) {
  auto* v = response.if_contains("chunks");
  if (!v || v->is_null()) return Status::Ok();
  if (!v->is_array()) return Status::InvalidArgument("response.chunks must be an array");
  for (const auto& item : v->get_array()) {
    if (!item.is_object()) return Status::InvalidArgument("response.chunks[] must hold objects");
    const auto& j = item.get_object();
    auto* c = out->Add();
    uint64_t u = 0;
    DOPPEL_RETURN_IF_ERROR(GetUint(j, "offset", &u));
    c->set_offset(u);
    u = 0;
    DOPPEL_RETURN_IF_ERROR(GetUint(j, "size", &u));
    c->set_size(u);
    u = 0;
    DOPPEL_RETURN_IF_ERROR(GetUint(j, "at_us", &u));
    c->set_at_us(u);
  }
  return Status::Ok();
}

json::object WebSocketToJson(const doppel::v1::WebSocketSession& w) {
  // Compressed messages are also written decompressed, for reading; import ignores it.
  std::optional<Result<doppel::v1::WebSocketSession>> plain;
  if (std::any_of(w.messages().begin(), w.messages().end(),
                  [](const auto& m) { return m.compressed(); })) {
    plain = net::InflateWebSocketSession(w, net::kMaxDecompressedWebSocketBytes);
  }
  json::array messages;
  for (int i = 0; i < w.messages_size(); ++i) {
    const doppel::v1::WebSocketMessage& m = w.messages(i);
    json::object j;
    j["from"] = m.from_client() ? "client" : "primary";
    j["opcode"] = m.opcode();
    PutBytes(j, "payload", m.payload());
    if (m.payload_truncated()) j["payload_truncated"] = true;
    j["payload_size"] = m.payload_size();
    if (m.compressed()) {
      j["compressed"] = true;
      if (plain->ok()) PutBytes(j, "decompressed", (*plain)->messages(i).payload());
    }
    j["at_us"] = m.at_us();
    messages.push_back(std::move(j));
  }
  json::object o;
  o["messages"] = std::move(messages);
  if (plain && !plain->ok()) o["decompress_error"] = plain->status().message();
  if (w.messages_truncated()) o["messages_truncated"] = true;
  o["client_messages"] = w.client_messages();
  o["server_messages"] = w.server_messages();
  o["client_bytes"] = w.client_bytes();
  o["server_bytes"] = w.server_bytes();
  o["duration_us"] = w.duration_us();
  if (!w.ended().empty()) o["ended"] = w.ended();
  if (!w.framing_error().empty()) o["framing_error"] = w.framing_error();
  return o;
}

Status WebSocketMessageFromJson(const json::value& item, doppel::v1::WebSocketMessage* m) {
  if (!item.is_object()) return Status::InvalidArgument("websocket.messages[] must hold objects");
  const auto& j = item.get_object();
  std::string from;
  DOPPEL_RETURN_IF_ERROR(GetString(j, "from", &from));
  if (from != "client" && from != "primary") {
    return Status::InvalidArgument("websocket.messages[].from must be \"client\" or \"primary\"");
  }
  m->set_from_client(from == "client");
  uint64_t u = 0;
  DOPPEL_RETURN_IF_ERROR(GetUint(j, "opcode", &u));
  if (u > 15) return Status::InvalidArgument("websocket.messages[].opcode must be 0..15");
  m->set_opcode(static_cast<uint32_t>(u));
  DOPPEL_RETURN_IF_ERROR(GetBytes(j, "websocket.messages[]", "payload", m->mutable_payload()));
  bool b = false;
  DOPPEL_RETURN_IF_ERROR(GetBool(j, "payload_truncated", &b));
  m->set_payload_truncated(b);
  u = m->payload().size();
  DOPPEL_RETURN_IF_ERROR(GetUint(j, "payload_size", &u));
  m->set_payload_size(u);
  b = false;
  DOPPEL_RETURN_IF_ERROR(GetBool(j, "compressed", &b));
  m->set_compressed(b);
  u = 0;
  DOPPEL_RETURN_IF_ERROR(GetUint(j, "at_us", &u));
  m->set_at_us(u);
  return Status::Ok();
}

Status WebSocketFromJson(const json::value& v, doppel::v1::WebSocketSession* w) {
  if (!v.is_object()) return Status::InvalidArgument("'websocket' must be an object");
  const auto& o = v.get_object();
  if (auto* list = o.if_contains("messages"); list && !list->is_null()) {
    if (!list->is_array()) return Status::InvalidArgument("websocket.messages must be an array");
    for (const auto& item : list->get_array()) {
      DOPPEL_RETURN_IF_ERROR(WebSocketMessageFromJson(item, w->add_messages()));
    }
  }
  bool truncated = false;
  DOPPEL_RETURN_IF_ERROR(GetBool(o, "messages_truncated", &truncated));
  w->set_messages_truncated(truncated);
  using Setter = void (doppel::v1::WebSocketSession::*)(uint64_t);
  const std::pair<const char*, Setter> counts[] = {
      {"client_messages", &doppel::v1::WebSocketSession::set_client_messages},
      {"server_messages", &doppel::v1::WebSocketSession::set_server_messages},
      {"client_bytes", &doppel::v1::WebSocketSession::set_client_bytes},
      {"server_bytes", &doppel::v1::WebSocketSession::set_server_bytes},
      {"duration_us", &doppel::v1::WebSocketSession::set_duration_us}};
  for (const auto& [key, set] : counts) {
    uint64_t u = 0;
    DOPPEL_RETURN_IF_ERROR(GetUint(o, key, &u));
    (w->*set)(u);
  }
  DOPPEL_RETURN_IF_ERROR(GetString(o, "ended", w->mutable_ended()));
  return GetString(o, "framing_error", w->mutable_framing_error());
}

}  // namespace

json::object EnvelopeToJson(const Envelope& e) {
  json::object o;
  o["arrival_us"] = e.arrival_us();
  o["seq"] = e.seq();
  if (!e.client_addr().empty()) o["client_addr"] = e.client_addr();
  if (!e.scheme().empty()) o["scheme"] = e.scheme();
  if (!e.client_protocol().empty()) o["client_protocol"] = e.client_protocol();
  if (!e.tls_version().empty()) o["tls_version"] = e.tls_version();
  if (!e.alpn().empty()) o["alpn"] = e.alpn();
  if (!e.client_cert_subject().empty()) o["client_cert_subject"] = e.client_cert_subject();
  if (!e.matched_rule().empty()) o["matched_rule"] = e.matched_rule();
  if (!e.sample_class().empty()) o["sample_class"] = e.sample_class();
  if (e.inclusion_probability() != 0) o["inclusion_probability"] = e.inclusion_probability();
  if (e.error() != doppel::v1::PROXY_ERROR_NONE) {
    o["error"] = doppel::v1::ProxyError_Name(e.error());
  }
  // Also without an error: an imported envelope may carry a detail alone, and an export
  // must not drop it (found by fuzzing, tests/fuzz/envelope_json).
  if (e.error() != doppel::v1::PROXY_ERROR_NONE || !e.error_detail().empty())
    o["error_detail"] = e.error_detail();
  json::object req;
  req["method"] = e.request().method();
  req["target"] = e.request().target();
  req["version"] = e.request().version();
  req["headers"] = HeadersToJson(e.request().headers());
  PutBody(req, e.request().body(), e.request().body_truncated(), e.request().body_size());
  o["request"] = std::move(req);
  if (e.has_response()) {
    json::object resp;
    resp["status"] = e.response().status();
    if (!e.response().reason().empty()) resp["reason"] = e.response().reason();
    resp["version"] = e.response().version();
    resp["headers"] = HeadersToJson(e.response().headers());
    PutBody(resp, e.response().body(), e.response().body_truncated(), e.response().body_size());
    resp["latency_us"] = e.response().latency_us();
    if (e.response().trailers_size() > 0) resp["trailers"] = HeadersToJson(e.response().trailers());
    if (e.response().chunks_size() > 0) resp["chunks"] = ChunksToJson(e.response().chunks());
    if (e.response().chunks_truncated()) resp["chunks_truncated"] = true;
    o["response"] = std::move(resp);
  }
  if (e.has_websocket()) o["websocket"] = WebSocketToJson(e.websocket());
  return o;
}

Status EnvelopeFromJson(const json::object& o, Envelope* e) {
  e->Clear();
  uint64_t u = 0;
  DOPPEL_RETURN_IF_ERROR(GetUint(o, "arrival_us", &u));
  e->set_arrival_us(u);
  u = 0;
  DOPPEL_RETURN_IF_ERROR(GetUint(o, "seq", &u));
  if (u > UINT32_MAX) return Status::InvalidArgument("field 'seq' is over 2^32");
  e->set_seq(static_cast<uint32_t>(u));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "client_addr", e->mutable_client_addr()));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "scheme", e->mutable_scheme()));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "client_protocol", e->mutable_client_protocol()));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "tls_version", e->mutable_tls_version()));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "alpn", e->mutable_alpn()));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "client_cert_subject", e->mutable_client_cert_subject()));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "matched_rule", e->mutable_matched_rule()));
  DOPPEL_RETURN_IF_ERROR(GetString(o, "sample_class", e->mutable_sample_class()));
  if (auto* v = o.if_contains("inclusion_probability"); v && !v->is_null()) {
    const double p = v->is_number() ? v->to_number<double>() : -1;
    if (!(p >= 0 && p <= 1)) {
      return Status::InvalidArgument("field 'inclusion_probability' must be a number from 0 to 1");
    }
    e->set_inclusion_probability(p);
  }
  std::string err;
  DOPPEL_RETURN_IF_ERROR(GetString(o, "error", &err));
  if (!err.empty()) {
    doppel::v1::ProxyError pe;
    if (!doppel::v1::ProxyError_Parse(err, &pe))
      return Status::InvalidArgument("field 'error' has unknown value '" + err + "'");
    e->set_error(pe);
  }
  DOPPEL_RETURN_IF_ERROR(GetString(o, "error_detail", e->mutable_error_detail()));

  auto* req = o.if_contains("request");
  if (!req || !req->is_object()) return Status::InvalidArgument("'request' object is missing");
  const auto& r = req->get_object();
  auto* mr = e->mutable_request();
  DOPPEL_RETURN_IF_ERROR(GetString(r, "method", mr->mutable_method()));
  DOPPEL_RETURN_IF_ERROR(GetString(r, "target", mr->mutable_target()));
  if (mr->method().empty()) return Status::InvalidArgument("request.method is missing");
  if (mr->target().empty()) return Status::InvalidArgument("request.target is missing");
  u = 11;
  DOPPEL_RETURN_IF_ERROR(GetUint(r, "version", &u));
  mr->set_version(static_cast<uint32_t>(u));
  DOPPEL_RETURN_IF_ERROR(GetHeaders(r, "request", mr->mutable_headers()));
  bool truncated = false;
  uint64_t size = 0;
  DOPPEL_RETURN_IF_ERROR(GetBody(r, "request", mr->mutable_body(), &truncated, &size));
  mr->set_body_truncated(truncated);
  mr->set_body_size(size);

  auto* resp = o.if_contains("response");
  if (resp && resp->is_object()) {
    const auto& s = resp->get_object();
    auto* ms = e->mutable_response();
    u = 0;
    DOPPEL_RETURN_IF_ERROR(GetUint(s, "status", &u));
    if (u > 999) return Status::InvalidArgument("response.status must be 100..999");
    ms->set_status(static_cast<uint32_t>(u));
    DOPPEL_RETURN_IF_ERROR(GetString(s, "reason", ms->mutable_reason()));
    u = 11;
    DOPPEL_RETURN_IF_ERROR(GetUint(s, "version", &u));
    ms->set_version(static_cast<uint32_t>(u));
    DOPPEL_RETURN_IF_ERROR(GetHeaders(s, "response", ms->mutable_headers()));
    DOPPEL_RETURN_IF_ERROR(GetHeaders(s, "response", ms->mutable_trailers(), "trailers"));
    truncated = false;
    DOPPEL_RETURN_IF_ERROR(GetBody(s, "response", ms->mutable_body(), &truncated, &size));
    ms->set_body_truncated(truncated);
    ms->set_body_size(size);
    u = 0;
    DOPPEL_RETURN_IF_ERROR(GetUint(s, "latency_us", &u));
    ms->set_latency_us(u);
    DOPPEL_RETURN_IF_ERROR(ChunksFromJson(s, ms->mutable_chunks()));
    truncated = false;
    DOPPEL_RETURN_IF_ERROR(GetBool(s, "chunks_truncated", &truncated));
    ms->set_chunks_truncated(truncated);
  } else if (resp && !resp->is_null()) {
    return Status::InvalidArgument("'response' must be an object");
  }
  if (auto* w = o.if_contains("websocket"); w && !w->is_null()) {
    DOPPEL_RETURN_IF_ERROR(WebSocketFromJson(*w, e->mutable_websocket()));
  }
  return Status::Ok();
}

}  // namespace doppel::interop
