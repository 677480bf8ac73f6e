// HAR 1.2 import (http://www.softwareishard.com/blog/har-12-spec/). The mapping onto
// envelopes, and the `_doppel` extension fields that carry what HAR cannot say, are in
// docs/interop.md.
//
// Import streams: a SAX parser walks the document and only the entry being read is built as
// a JSON value (log.entries[i]); everything outside log.entries is skipped unread.
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cmath>
#include <memory>

#include "base/strings.h"
#include "interop/envelope_json.h"
#include "interop/internal.h"
#include "interop/interop.h"
#include "interop/text_source.h"
#include "net/codings.h"
#include "net/proto_headers.h"
#include "net/url.h"

namespace doppel::interop {
namespace {

namespace json = boost::json;
using doppel::v1::Envelope;
using doppel::v1::Header;
using Headers = google::protobuf::RepeatedPtrField<Header>;

// ---------------------------------------------------------------------------------------
// Reading one entry (a JSON object) into an envelope.

// Field readers: absent (or null) is fine unless required; present with the wrong type is an
// error naming the field by its path inside the entry.
const json::value* Member(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && !v->is_null() ? v : nullptr;
}

Status Missing(const std::string& path) { return Status::InvalidArgument(path + " is missing"); }

Status GetObject(const json::object& o, std::string_view key, const std::string& path,
                 const json::object** out, bool required = false) {
  *out = nullptr;
  const json::value* v = Member(o, key);
  if (!v) return required ? Missing(path) : Status::Ok();
  if (!v->is_object()) return Status::InvalidArgument(path + " must be an object");
  *out = &v->get_object();
  return Status::Ok();
}

Status GetArray(const json::object& o, std::string_view key, const std::string& path,
                const json::array** out) {
  *out = nullptr;
  const json::value* v = Member(o, key);
  if (!v) return Status::Ok();
  if (!v->is_array()) return Status::InvalidArgument(path + " must be an array");
  *out = &v->get_array();
  return Status::Ok();
}

Status GetString(const json::object& o, std::string_view key, const std::string& path,
                 std::string* out, bool required = false, bool* present = nullptr) {
  const json::value* v = Member(o, key);
  if (present) *present = v != nullptr;
  if (!v) return required ? Missing(path) : Status::Ok();
  if (!v->is_string()) return Status::InvalidArgument(path + " must be a string");
  out->assign(v->get_string().data(), v->get_string().size());
  return Status::Ok();
}

// Any JSON number; `*present` says whether it was there.
Status GetNumber(const json::object& o, std::string_view key, const std::string& path, double* out,
                 bool* present) {
  const json::value* v = Member(o, key);
  *present = v != nullptr;
  if (!v) return Status::Ok();
  if (v->is_int64())
    *out = static_cast<double>(v->get_int64());
  else if (v->is_uint64())
    *out = static_cast<double>(v->get_uint64());
  else if (v->is_double())
    *out = v->get_double();
  else
    return Status::InvalidArgument(path + " must be a number");
  return Status::Ok();
}

// A HAR byte count (`bodySize`, `content.size`): a number, where -1 (any negative) means
// unknown; a fraction is cut to whole bytes. One past 2^53 cannot have been counted and is
// refused rather than cast, since a double out of uint64_t's range has no conversion.
Status GetByteCount(const json::object& o, std::string_view key, const std::string& path,
                    uint64_t* out, bool* present) {
  double n = 0;
  DOPPEL_RETURN_IF_ERROR(GetNumber(o, key, path, &n, present));
  if (!*present) return Status::Ok();
  constexpr double kMaxCount = 9007199254740992.0;  // 2^53
  if (n > kMaxCount)
    return Status::InvalidArgument(path + " is " + json::serialize(*Member(o, key)) +
                                   ": a byte count must be at most 2^53 (-1 for unknown)");
  *present = n >= 0;
  *out = *present ? static_cast<uint64_t>(n) : 0;
  return Status::Ok();
}

Status GetUint(const json::object& o, std::string_view key, const std::string& path, uint64_t* out,
               bool* present) {
  const json::value* v = Member(o, key);
  *present = v != nullptr;
  if (!v) return Status::Ok();
  if (v->is_uint64())
    *out = v->get_uint64();
  else if (v->is_int64() && v->get_int64() >= 0)
    *out = static_cast<uint64_t>(v->get_int64());
  else
    return Status::InvalidArgument(path + " must be a non-negative integer");
  return Status::Ok();
}

Status GetBool(const json::object& o, std::string_view key, const std::string& path, bool* out) {
  const json::value* v = Member(o, key);
  if (!v) return Status::Ok();
  if (!v->is_bool()) return Status::InvalidArgument(path + " must be true or false");
  *out = v->get_bool();
  return Status::Ok();
}

// "HTTP/1.1", "http/1.0", "h2", "HTTP/2.0", "h3", ... -> 10, 11, 20, 30. Unknown -> 11.
uint32_t VersionFromHar(std::string_view v) {
  std::string s = AsciiLower(v);
  if (s == "http/1.0") return 10;
  if (s == "h2" || s == "http/2" || s == "http/2.0" || s == "h2c") return 20;
  if (s == "h3" || s == "http/3" || s == "http/3.0" || s.rfind("h3-", 0) == 0) return 30;
  return 11;
}

// headers[] of a request or response. HTTP/2 and /3 pseudo-headers (":authority", ":path",
// ...) are dropped; ":authority" is returned so a Host header can be made from it.
Status ReadHeaders(const json::object& msg, const std::string& where, Headers* out,
                   std::string* authority) {
  const json::array* arr;
  DOPPEL_RETURN_IF_ERROR(GetArray(msg, "headers", where + ".headers", &arr));
  if (!arr) return Status::Ok();
  for (size_t i = 0; i < arr->size(); ++i) {
    const std::string path = where + ".headers[" + std::to_string(i) + "]";
    if (!(*arr)[i].is_object()) return Status::InvalidArgument(path + " must be an object");
    const json::object& h = (*arr)[i].get_object();
    std::string name, value, b64;
    bool has_b64 = false;
    DOPPEL_RETURN_IF_ERROR(GetString(h, "name", path + ".name", &name, true));
    DOPPEL_RETURN_IF_ERROR(GetString(h, "value", path + ".value", &value));
    DOPPEL_RETURN_IF_ERROR(
        GetString(h, "_value_base64", path + "._value_base64", &b64, false, &has_b64));
    if (has_b64 && !Base64Decode(b64, &value))
      return Status::InvalidArgument(path + "._value_base64 is not base64");
    if (name.empty()) return Status::InvalidArgument(path + ".name is empty");
    if (name[0] == ':') {
      if (authority && EqualsIgnoreCase(name, ":authority")) *authority = value;
      continue;
    }
    Header* hdr = out->Add();
    hdr->set_name(std::move(name));
    hdr->set_value(std::move(value));
  }
  net::StripHopByHop(out);
  return Status::Ok();
}

struct SplitUrl {
  std::string scheme, authority, target;
};

// "https://user@host:8443/a/b?x=1#frag" -> https, host:8443, /a/b?x=1 (Boost.URL). A relative
// URL ("/a?b") gives only the target.
Result<SplitUrl> SplitHarUrl(std::string_view url) {
  SplitUrl out;
  if (url == "*") {
    out.target = "*";
    return out;
  }
  const Status not_absolute =
      Status::InvalidArgument("request.url '" + std::string(url.substr(0, 200)) +
                              "' is not an absolute URL (scheme://host/path)");
  // Only "scheme://…" and paths reach Boost.URL (net::HasSchemeAndAuthority).
  if (!url.starts_with('/') && !net::HasSchemeAndAuthority(url)) return not_absolute;
  auto parsed = boost::urls::parse_uri_reference(url);
  if (!parsed) return not_absolute;
  const boost::urls::url_view& u = *parsed;
  std::string_view path = u.encoded_path();
  out.target = path.empty() || path[0] != '/' ? "/" + std::string(path) : std::string(path);
  if (u.has_query()) out.target += "?" + std::string(u.encoded_query());
  if (!u.has_scheme()) return out;
  out.scheme = AsciiLower(u.scheme());
  out.authority = std::string(u.encoded_host_and_port());
  if (out.authority.empty())
    return Status::InvalidArgument("request.url '" + std::string(url) + "' has no host");
  return out;
}

// Percent-encodes for application/x-www-form-urlencoded (postData.params).
std::string FormEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// The `_doppel` extension object: what HAR cannot say, so that store -> HAR -> store keeps
// every field (docs/interop.md).
struct Extension {
  const json::object* o = nullptr;
  Status Uint(std::string_view key, uint64_t* out, bool* present) const {
    *present = false;
    return o ? GetUint(*o, key, "_doppel." + std::string(key), out, present) : Status::Ok();
  }
  Status Bool(std::string_view key, bool* out) const {
    return o ? GetBool(*o, key, "_doppel." + std::string(key), out) : Status::Ok();
  }
  Status String(std::string_view key, std::string* out, bool* present = nullptr) const {
    if (present) *present = false;
    return o ? GetString(*o, key, "_doppel." + std::string(key), out, false, present)
             : Status::Ok();
  }
};

Status RequestFromHar(const json::object& req, const Extension& ext, Envelope* e) {
  auto* r = e->mutable_request();
  DOPPEL_RETURN_IF_ERROR(GetString(req, "method", "request.method", r->mutable_method(), true));
  if (r->method().empty()) return Status::InvalidArgument("request.method is empty");
  std::string url, version;
  DOPPEL_RETURN_IF_ERROR(GetString(req, "url", "request.url", &url, true));
  DOPPEL_ASSIGN_OR_RETURN(auto split, SplitHarUrl(url));
  r->set_target(split.target);
  e->set_scheme(split.scheme);
  DOPPEL_RETURN_IF_ERROR(GetString(req, "httpVersion", "request.httpVersion", &version));
  r->set_version(VersionFromHar(version));

  std::string authority;
  DOPPEL_RETURN_IF_ERROR(ReadHeaders(req, "request", r->mutable_headers(), &authority));
  bool no_host = false;
  DOPPEL_RETURN_IF_ERROR(ext.Bool("no_host", &no_host));
  if (!no_host && !net::FindHeader(r->headers(), "Host")) {
    if (authority.empty()) authority = split.authority;
    if (!authority.empty()) {
      // Host goes first, where an HTTP/1.1 client puts it.
      r->mutable_headers()->Add();
      for (int i = r->headers_size() - 1; i > 0; --i) r->mutable_headers()->SwapElements(i, i - 1);
      r->mutable_headers(0)->set_name("Host");
      r->mutable_headers(0)->set_value(authority);
    }
  }

  const json::object* post;
  DOPPEL_RETURN_IF_ERROR(GetObject(req, "postData", "request.postData", &post));
  bool has_text = false;
  if (post) {
    std::string text, encoding;
    DOPPEL_RETURN_IF_ERROR(
        GetString(*post, "text", "request.postData.text", &text, false, &has_text));
    DOPPEL_RETURN_IF_ERROR(GetString(*post, "encoding", "request.postData.encoding", &encoding));
    if (has_text && EqualsIgnoreCase(encoding, "base64")) {
      if (!Base64Decode(text, r->mutable_body()))
        return Status::InvalidArgument("request.postData.text is not valid base64");
    } else if (has_text) {
      r->set_body(std::move(text));
    } else {
      const json::array* params;
      DOPPEL_RETURN_IF_ERROR(GetArray(*post, "params", "request.postData.params", &params));
      if (params) {
        has_text = true;
        std::string body;
        for (size_t i = 0; i < params->size(); ++i) {
          const std::string path = "request.postData.params[" + std::to_string(i) + "]";
          if (!(*params)[i].is_object())
            return Status::InvalidArgument(path + " must be an object");
          std::string name, value;
          DOPPEL_RETURN_IF_ERROR(
              GetString((*params)[i].get_object(), "name", path + ".name", &name, true));
          DOPPEL_RETURN_IF_ERROR(
              GetString((*params)[i].get_object(), "value", path + ".value", &value));
          body += (body.empty() ? "" : "&") + FormEncode(name) + "=" + FormEncode(value);
        }
        r->set_body(std::move(body));
      }
    }
  }
  r->set_body_size(r->body().size());
  bool present = false, truncated = false;
  uint64_t size = 0;
  DOPPEL_RETURN_IF_ERROR(ext.Bool("request_body_truncated", &truncated));
  DOPPEL_RETURN_IF_ERROR(ext.Uint("request_body_size", &size, &present));
  if (!has_text && !present) {
    // No body recorded but HAR says there was one: the browser did not keep it.
    uint64_t body_size = 0;
    bool har_size = false;
    DOPPEL_RETURN_IF_ERROR(
        GetByteCount(req, "bodySize", "request.bodySize", &body_size, &har_size));
    if (har_size && body_size > 0) {
      truncated = true;
      size = body_size;
      present = true;
    }
  }
  r->set_body_truncated(truncated);
  if (present) r->set_body_size(size);
  return Status::Ok();
}

Status ResponseFromHar(const json::object& resp, const Extension& ext, Envelope* e,
                       ImportStats* stats) {
  auto* s = e->mutable_response();
  double status = 0;
  bool present = false;
  DOPPEL_RETURN_IF_ERROR(GetNumber(resp, "status", "response.status", &status, &present));
  if (status < 0 || status > 999 || status != std::floor(status))
    return Status::InvalidArgument("response.status must be an integer 0..999");
  s->set_status(static_cast<uint32_t>(status));
  std::string version;
  DOPPEL_RETURN_IF_ERROR(GetString(resp, "statusText", "response.statusText", s->mutable_reason()));
  DOPPEL_RETURN_IF_ERROR(GetString(resp, "httpVersion", "response.httpVersion", &version));
  s->set_version(VersionFromHar(version));
  DOPPEL_RETURN_IF_ERROR(ReadHeaders(resp, "response", s->mutable_headers(), nullptr));

  const json::object* content;
  DOPPEL_RETURN_IF_ERROR(GetObject(resp, "content", "response.content", &content));
  bool has_text = false, raw = false, truncated = false;
  if (content) {
    std::string text, encoding;
    DOPPEL_RETURN_IF_ERROR(
        GetString(*content, "text", "response.content.text", &text, false, &has_text));
    DOPPEL_RETURN_IF_ERROR(GetString(*content, "encoding", "response.content.encoding", &encoding));
    if (has_text && EqualsIgnoreCase(encoding, "base64")) {
      if (!Base64Decode(text, s->mutable_body()))
        return Status::InvalidArgument("response.content.text is not valid base64");
    } else if (has_text) {
      s->set_body(std::move(text));
    } else {
      uint64_t size = 0;
      bool has_size = false;
      DOPPEL_RETURN_IF_ERROR(
          GetByteCount(*content, "size", "response.content.size", &size, &has_size));
      if (has_size && size > 0) {  // the browser did not keep the body
        truncated = true;
        s->set_body_size(size);
      }
    }
  }
  DOPPEL_RETURN_IF_ERROR(ext.Bool("response_body_raw", &raw));
  DOPPEL_RETURN_IF_ERROR(ext.Bool("response_body_truncated", &truncated));
  if (!truncated) s->set_body_size(s->body().size());

  // HAR keeps bodies Content-Encoding-decoded; the store keeps them as they were sent.
  // Redo the codings (net/codings.h; the diff engine decodes them again); a coding this
  // cannot redo is dropped from the headers and the body kept decoded, and counted.
  const std::string* coding = net::FindHeader(s->headers(), "Content-Encoding");
  if (coding && !raw && !truncated && has_text && !s->body().empty() &&
      !EqualsIgnoreCase(TrimSpaces(*coding), "identity")) {
    Result<std::string> encoded = net::EncodeContent(s->body(), *coding);
    if (encoded.ok()) {
      s->set_body(std::move(encoded).value());
      s->set_body_size(s->body().size());
      net::ReplaceHeader(s->mutable_headers(), "Content-Length", std::to_string(s->body().size()));
    } else {
      net::RemoveHeader(s->mutable_headers(), "Content-Encoding");
      net::ReplaceHeader(s->mutable_headers(), "Content-Length", std::to_string(s->body().size()));
      ++stats->decoded_bodies;
    }
  }
  uint64_t size = 0;
  DOPPEL_RETURN_IF_ERROR(ext.Uint("response_body_size", &size, &present));
  if (present && (truncated || raw)) s->set_body_size(size);
  s->set_body_truncated(truncated);
  return Status::Ok();
}

// Latency: from the request sent to the last response byte = timings.wait + receive when
// the entry has them (>= 0), else `time` (which also counts DNS, connect, blocked).
Status LatencyFromHar(const json::object& entry, uint64_t* latency_us) {
  double ms = -1;
  const json::object* timings;
  DOPPEL_RETURN_IF_ERROR(GetObject(entry, "timings", "timings", &timings));
  if (timings) {
    double wait = -1, receive = -1;
    bool has_wait = false, has_receive = false;
    DOPPEL_RETURN_IF_ERROR(GetNumber(*timings, "wait", "timings.wait", &wait, &has_wait));
    DOPPEL_RETURN_IF_ERROR(
        GetNumber(*timings, "receive", "timings.receive", &receive, &has_receive));
    if (has_wait && wait >= 0) ms = wait + (has_receive && receive > 0 ? receive : 0);
  }
  if (ms < 0) {
    double time = -1;
    bool has_time = false;
    DOPPEL_RETURN_IF_ERROR(GetNumber(entry, "time", "time", &time, &has_time));
    if (has_time && time >= 0) ms = time;
  }
  *latency_us = ms > 0 && ms < 1e12 ? static_cast<uint64_t>(std::llround(ms * 1000)) : 0;
  return Status::Ok();
}

Status EntryToEnvelope(const json::value& value, uint64_t index, Envelope* e, ImportStats* stats) {
  e->Clear();
  if (!value.is_object()) return Status::InvalidArgument("the entry is not an object");
  const json::object& entry = value.get_object();
  Extension ext;
  DOPPEL_RETURN_IF_ERROR(GetObject(entry, "_doppel", "_doppel", &ext.o));

  std::string started;
  DOPPEL_RETURN_IF_ERROR(GetString(entry, "startedDateTime", "startedDateTime", &started, true));
  auto arrival = internal::ParseIso8601Us(started);
  if (!arrival.ok()) return arrival.status().WithContext("startedDateTime");
  e->set_arrival_us(*arrival);
  uint64_t seq = index;
  bool present = false;
  DOPPEL_RETURN_IF_ERROR(ext.Uint("seq", &seq, &present));
  if (seq > UINT32_MAX) return Status::InvalidArgument("_doppel.seq is over 2^32");
  e->set_seq(static_cast<uint32_t>(seq));

  const json::object* req;
  DOPPEL_RETURN_IF_ERROR(GetObject(entry, "request", "request", &req, true));
  DOPPEL_RETURN_IF_ERROR(RequestFromHar(*req, ext, e));

  const json::object* resp;
  DOPPEL_RETURN_IF_ERROR(GetObject(entry, "response", "response", &resp));
  bool no_response = false;
  DOPPEL_RETURN_IF_ERROR(ext.Bool("no_response", &no_response));
  if (resp && !no_response) {
    DOPPEL_RETURN_IF_ERROR(ResponseFromHar(*resp, ext, e, stats));
    uint64_t latency = 0;
    DOPPEL_RETURN_IF_ERROR(LatencyFromHar(entry, &latency));
    e->mutable_response()->set_latency_us(latency);
    // Status 0 is how browsers export a request that got no answer.
    if (e->response().status() == 0) e->clear_response();
  }

  std::string text;
  DOPPEL_RETURN_IF_ERROR(ext.String("client_addr", e->mutable_client_addr()));
  DOPPEL_RETURN_IF_ERROR(ext.String("matched_rule", e->mutable_matched_rule()));
  DOPPEL_RETURN_IF_ERROR(ext.String("error_detail", e->mutable_error_detail()));
  DOPPEL_RETURN_IF_ERROR(ext.String("scheme", &text, &present));
  if (present) e->set_scheme(text);
  DOPPEL_RETURN_IF_ERROR(ext.String("error", &text, &present));
  if (present && !text.empty()) {
    doppel::v1::ProxyError pe;
    if (!doppel::v1::ProxyError_Parse(text, &pe))
      return Status::InvalidArgument("_doppel.error has unknown value '" + text + "'");
    e->set_error(pe);
  }
  if (!e->has_response()) ++stats->without_response;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------
// The SAX handler: finds log.entries[] and builds one entry at a time.

class HarHandler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = internal::kMaxRecordBytes;
  static constexpr std::size_t max_string_size = internal::kMaxRecordBytes;

  // Called with each finished entry (or a non-object element of log.entries) and its
  // 0-based index. A non-OK status stops the parse.
  using EntryFn = std::function<Status(const json::value&, uint64_t)>;
  explicit HarHandler(EntryFn fn) : on_entry_(std::move(fn)) {}

  const Status& status() const { return status_; }
  bool saw_log() const { return saw_log_; }
  bool saw_entries() const { return saw_entries_; }
  uint64_t entries() const { return entries_; }
  // True while the parser is inside log.entries (for error messages).
  bool in_entries() const { return !ctx_.empty() && ctx_.size() >= 3 && ctx_[2] == Ctx::kEntries; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }

  bool on_object_begin(json::error_code& ec) { return Begin(true, ec); }
  bool on_array_begin(json::error_code& ec) { return Begin(false, ec); }
  bool on_object_end(std::size_t n, json::error_code& ec) { return End(true, n, ec); }
  bool on_array_end(std::size_t n, json::error_code& ec) { return End(false, n, ec); }

  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    if (Building())
      st_.push_chars(s);
    else
      key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    if (Building()) {
      st_.push_key(s);
    } else {
      key_.append(s.data(), s.size());
      pending_key_.swap(key_);
      key_.clear();
    }
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    if (Building()) st_.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code& ec) {
    if (Building()) st_.push_string(s);
    return Scalar(ec);
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t i, json::string_view, json::error_code& ec) {
    if (Building()) st_.push_int64(i);
    return Scalar(ec);
  }
  bool on_uint64(uint64_t u, json::string_view, json::error_code& ec) {
    if (Building()) st_.push_uint64(u);
    return Scalar(ec);
  }
  bool on_double(double d, json::string_view, json::error_code& ec) {
    if (Building()) st_.push_double(d);
    return Scalar(ec);
  }
  bool on_bool(bool b, json::error_code& ec) {
    if (Building()) st_.push_bool(b);
    return Scalar(ec);
  }
  bool on_null(json::error_code& ec) {
    if (Building()) st_.push_null();
    return Scalar(ec);
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  enum class Ctx { kRoot, kLog, kEntries, kEntry, kInEntry, kSkip };

  bool Building() const {
    return !ctx_.empty() && (ctx_.back() == Ctx::kEntry || ctx_.back() == Ctx::kInEntry);
  }

  bool Stop(json::error_code& ec, Status s) {
    status_ = std::move(s);
    ec = boost::system::errc::make_error_code(boost::system::errc::operation_canceled);
    return false;
  }

  bool Begin(bool object, json::error_code& ec) {
    if (Building()) {
      ctx_.push_back(Ctx::kInEntry);
      return true;
    }
    const Ctx parent = ctx_.empty() ? Ctx::kSkip : ctx_.back();
    Ctx next = Ctx::kSkip;
    if (ctx_.empty()) {
      if (!object)
        return Stop(ec, Status::InvalidArgument("not a HAR file: the top level is not an object"));
      next = Ctx::kRoot;
    } else if (parent == Ctx::kRoot && pending_key_ == "log") {
      if (!object) return Stop(ec, Status::InvalidArgument("'log' must be an object"));
      saw_log_ = true;
      next = Ctx::kLog;
    } else if (parent == Ctx::kLog && pending_key_ == "entries") {
      if (object) return Stop(ec, Status::InvalidArgument("log.entries must be an array"));
      saw_entries_ = true;
      next = Ctx::kEntries;
    } else if (parent == Ctx::kEntries) {
      if (object) {
        st_.reset();
        next = Ctx::kEntry;
      } else {
        bad_array_entry_ = true;  // reported (as a bad entry) when it ends
      }
    }
    pending_key_.clear();
    ctx_.push_back(next);
    return true;
  }

  bool End(bool object, std::size_t n, json::error_code& ec) {
    const Ctx c = ctx_.back();
    ctx_.pop_back();
    if (c == Ctx::kInEntry || c == Ctx::kEntry) {
      if (object)
        st_.push_object(n);
      else
        st_.push_array(n);
      if (c == Ctx::kEntry) {
        json::value entry = st_.release();
        Status s = on_entry_(entry, entries_++);
        if (!s.ok()) return Stop(ec, s);
      }
      return true;
    }
    if (c == Ctx::kSkip && bad_array_entry_ && !ctx_.empty() && ctx_.back() == Ctx::kEntries) {
      bad_array_entry_ = false;
      return Scalar(ec);  // an array where an entry should be
    }
    return true;
  }

  // A scalar value ended. Directly inside log.entries it is a (bad) entry.
  bool Scalar(json::error_code& ec) {
    if (!ctx_.empty() && ctx_.back() == Ctx::kEntries) {
      Status s = on_entry_(json::value(), entries_++);
      if (!s.ok()) return Stop(ec, s);
    }
    if (!Building()) pending_key_.clear();
    return true;
  }

  EntryFn on_entry_;
  std::vector<Ctx> ctx_;
  std::string key_, pending_key_;
  json::value_stack st_;
  Status status_;
  bool saw_log_ = false, saw_entries_ = false, bad_array_entry_ = false;
  uint64_t entries_ = 0;
};

}  // namespace

Status ReadHar(std::istream& in, const std::string& source, const ImportOptions& options,
               const EnvelopeSink& sink, ImportStats* stats) {
  const std::string label = "HAR '" + source + "'";
  Envelope e;
  auto on_entry = [&](const json::value& v, uint64_t index) -> Status {
    ++stats->records;
    Status s = EntryToEnvelope(v, index, &e, stats);
    if (!s.ok()) {
      return internal::BadRecord(
          options, stats,
          Status::InvalidArgument(label + " entry " + std::to_string(index + 1) + " (log.entries[" +
                                  std::to_string(index) + "]): " + s.message()));
    }
    ++stats->envelopes;
    return sink(std::move(e));
  };
  json::parse_options opts;
  opts.max_depth = 64;
  json::basic_parser<HarHandler> parser(opts, on_entry);
  TextSource src(in, label);
  std::string buf(64 << 10, '\0');
  uint64_t line = 1, offset = 0;
  auto where = [&] {
    return label + " line " + std::to_string(line) + " (byte " + std::to_string(offset) + ")" +
           (parser.handler().in_entries()
                ? ", in entry " + std::to_string(parser.handler().entries() + 1)
                : std::string());
  };
  bool done = false;
  while (true) {
    size_t n = src.Read(buf.data(), buf.size());
    if (n == 0) break;
    size_t used = 0;
    if (!done) {
      json::error_code ec;
      used = parser.write_some(true, buf.data(), n, ec);
      for (size_t i = 0; i < used; ++i) line += buf[i] == '\n';
      offset += used;
      if (ec) {
        const Status& hs = parser.handler().status();
        if (hs.ok())
          return Status::InvalidArgument(where() + ": not valid JSON (" + ec.message() + ")");
        // Entry errors already name the entry; structure errors get the position.
        return hs.message().rfind(label, 0) == 0 ? hs : hs.WithContext(where());
      }
      done = parser.done();
    }
    for (size_t i = used; i < n; ++i) {  // after the document only whitespace may follow
      const char c = buf[i];
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
        return Status::InvalidArgument(where() + ": data after the end of the HAR document");
      line += c == '\n';
      ++offset;
    }
  }
  if (!src.status().ok()) return src.status();
  if (!done) {
    json::error_code ec;
    parser.write_some(false, nullptr, 0, ec);
    if (!parser.handler().status().ok()) return parser.handler().status();
    if (ec || !parser.done())
      return Status::InvalidArgument(where() +
                                     ": the file ends inside the JSON document "
                                     "(truncated)");
  }
  if (!parser.handler().saw_log())
    return Status::InvalidArgument(label + ": not a HAR file (no top-level \"log\" object)");
  if (!parser.handler().saw_entries())
    return Status::InvalidArgument(label + ": log.entries is missing");
  return Status::Ok();
}

}  // namespace doppel::interop
