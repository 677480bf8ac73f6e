// HAR 1.2 export (http://www.softwareishard.com/blog/har-12-spec/): what Chrome, Firefox
// and HAR validators read. docs/interop.md has the mapping and the `_doppel` extension.
#include <boost/json.hpp>

#include "interop/envelope_json.h"
#include "interop/internal.h"
#include "interop/interop.h"
#include "net/codings.h"
#include "net/proto_headers.h"
#include "net/url.h"
#include "storage/proxy_error.h"

namespace doppel::interop {
namespace {

namespace json = boost::json;
using doppel::v1::Envelope;
using Headers = google::protobuf::RepeatedPtrField<doppel::v1::Header>;

std::string VersionToHar(uint32_t v) {
  switch (v) {
    case 10:
      return "HTTP/1.0";
    case 20:
      return "HTTP/2.0";
    case 30:
      return "HTTP/3.0";
    default:
      return "HTTP/1.1";
  }
}

// HAR's queryString: the decoded parameters of the target. A query that is not valid
// percent-encoding, or decodes to something that is not UTF-8, is left to `url`, which
// carries the target as recorded.
json::array QueryToHar(std::string_view target) {
  json::array out;
  const std::optional<std::string_view> query = net::SplitTarget(target).query;
  if (!query) return out;
  auto items = net::DecodeQuery(*query);
  if (!items) return out;
  for (const auto& item : *items) {
    if (!IsValidUtf8(item.key) || !IsValidUtf8(item.value)) return json::array();
    json::object p;
    p["name"] = item.key;
    p["value"] = item.value;
    out.push_back(std::move(p));
  }
  return out;
}

json::array HeadersToHar(const Headers& headers) {
  json::array out;
  for (const auto& h : headers) {
    json::object o;
    o["name"] = h.name();
    if (IsValidUtf8(h.value())) {
      o["value"] = h.value();
    } else {
      o["value"] = "";
      o["_value_base64"] = Base64Encode(h.value());
    }
    out.push_back(std::move(o));
  }
  return out;
}

// Sets text (and encoding "base64" when the bytes are not UTF-8) on a HAR content/postData.
void PutText(json::object& o, const std::string& bytes) {
  if (IsValidUtf8(bytes)) {
    o["text"] = bytes;
  } else {
    o["text"] = Base64Encode(bytes);
    o["encoding"] = "base64";
  }
}

// Milliseconds as HAR wants them; whole numbers stay integers (Boost.JSON would write 14.0
// as 1.4E1).
json::value Ms(uint64_t us) {
  if (us % 1000 == 0) return json::value(us / 1000);
  return json::value(static_cast<double>(us) / 1000.0);
}

json::object EnvelopeToHar(const Envelope& e, const std::string& fallback_authority) {
  const auto& req = e.request();
  json::object ext;  // `_doppel`: only what HAR cannot carry
  ext["seq"] = e.seq();
  if (!e.client_addr().empty()) ext["client_addr"] = e.client_addr();
  if (!e.matched_rule().empty()) ext["matched_rule"] = e.matched_rule();
  if (e.error() != doppel::v1::PROXY_ERROR_NONE) {
    ext["error"] = doppel::v1::ProxyError_Name(e.error());
    ext["error_detail"] = e.error_detail();
  }
  if (e.scheme().empty()) ext["scheme"] = "";

  const std::string* host = net::FindHeader(req.headers(), "Host");
  if (!host) ext["no_host"] = true;
  std::string url;
  if (req.target().rfind("http://", 0) == 0 || req.target().rfind("https://", 0) == 0) {
    url = req.target();
  } else {
    url = (e.scheme().empty() ? std::string("http") : e.scheme()) + "://" +
          (host && !host->empty() ? *host : fallback_authority) +
          (!req.target().empty() && req.target()[0] == '/' ? "" : "/") + req.target();
  }
  const std::string* req_type = net::FindHeader(req.headers(), "Content-Type");

  json::object request;
  request["method"] = req.method();
  request["url"] = url;
  request["httpVersion"] = VersionToHar(req.version());
  request["cookies"] = json::array();
  request["headers"] = HeadersToHar(req.headers());
  request["queryString"] = QueryToHar(req.target());
  if (!req.body().empty() || req.body_truncated()) {
    json::object post;
    post["mimeType"] = req_type ? *req_type : std::string();
    PutText(post, req.body());
    request["postData"] = std::move(post);
  }
  request["headersSize"] = -1;
  request["bodySize"] = req.body_size();
  if (req.body_truncated()) {
    ext["request_body_truncated"] = true;
    ext["request_body_size"] = req.body_size();
  }

  json::object response;
  uint64_t latency_us = 0;
  if (e.has_response()) {
    const auto& resp = e.response();
    latency_us = resp.latency_us();
    const std::string* type = net::FindHeader(resp.headers(), "Content-Type");
    const std::string* coding = net::FindHeader(resp.headers(), "Content-Encoding");
    json::object content;
    content["mimeType"] = type ? *type : std::string("x-unknown");
    // HAR wants the decoded body. Where decoding is impossible (a cut body, an unknown
    // coding) the stored bytes go out as they are, marked raw.
    bool raw = resp.body_truncated();
    std::string decoded;
    if (!raw && coding && !resp.body().empty()) {
      auto d = net::DecodeContent(resp.body(), *coding, internal::kMaxRecordBytes);
      if (d.ok())
        decoded = std::move(*d);
      else
        raw = true;
    }
    if (raw || !coding || resp.body().empty()) {
      content["size"] = resp.body_size();
      PutText(content, resp.body());
    } else {
      content["size"] = decoded.size();
      if (resp.body().size() < decoded.size())
        content["compression"] = decoded.size() - resp.body().size();
      PutText(content, decoded);
    }
    if (raw && coding) ext["response_body_raw"] = true;
    if (resp.body_truncated()) {
      ext["response_body_truncated"] = true;
      ext["response_body_size"] = resp.body_size();
    }
    const std::string* location = net::FindHeader(resp.headers(), "Location");
    response["status"] = resp.status();
    response["statusText"] = resp.reason();
    response["httpVersion"] = VersionToHar(resp.version());
    response["cookies"] = json::array();
    response["headers"] = HeadersToHar(resp.headers());
    response["content"] = std::move(content);
    response["redirectURL"] = location && IsValidUtf8(*location) ? *location : std::string();
    response["headersSize"] = -1;
    response["bodySize"] = resp.body_size();
  } else {
    // What browsers write for a request that got no answer.
    ext["no_response"] = true;
    json::object content;
    content["size"] = 0;
    content["mimeType"] = "x-unknown";
    response["status"] = 0;
    response["statusText"] = "";
    response["httpVersion"] = "";
    response["cookies"] = json::array();
    response["headers"] = json::array();
    response["content"] = std::move(content);
    response["redirectURL"] = "";
    response["headersSize"] = -1;
    response["bodySize"] = -1;
    if (!e.error_detail().empty()) response["_error"] = e.error_detail();
  }

  json::object timings;
  timings["blocked"] = -1;
  timings["dns"] = -1;
  timings["connect"] = -1;
  timings["ssl"] = -1;
  timings["send"] = 0;
  timings["wait"] = Ms(latency_us);
  timings["receive"] = 0;

  json::object entry;
  entry["startedDateTime"] = internal::FormatIso8601Us(e.arrival_us());
  entry["time"] = Ms(latency_us);
  entry["request"] = std::move(request);
  entry["response"] = std::move(response);
  entry["cache"] = json::object();
  entry["timings"] = std::move(timings);
  entry["_doppel"] = std::move(ext);
  return entry;
}

}  // namespace

Status WriteHar(storage::Store& store, const std::string& session, std::ostream& out,
                ExportStats* stats) {
  DOPPEL_ASSIGN_OR_RETURN(auto info, store.GetSession(session));
  DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(session));
  ExportStats local;
  if (!stats) stats = &local;
  // A request without a Host header still needs a URL: use the session's upstream.
  std::string fallback = "localhost";
  if (auto upstream = net::ParseUrl(info.upstream()); upstream.ok())
    fallback = upstream->Authority();
  json::object creator;
  creator["name"] = "doppel";
  creator["version"] = "1";
  creator["comment"] = "session " + session;
  std::string head = "{\"log\":{\"version\":\"1.2\",\"creator\":" + json::serialize(creator) +
                     ",\"pages\":[],\"entries\":[\n";
  auto write = [&](const std::string& s) {
    stats->bytes += s.size();
    return static_cast<bool>(out.write(s.data(), static_cast<std::streamsize>(s.size())));
  };
  if (!write(head)) return Status::IoError("writing HAR failed");
  std::string text;
  for (; it->Valid(); it->Next()) {
    if (storage::ProxyRefused(it->envelope())) {
      ++stats->refused;
      continue;
    }
    text =
        (stats->envelopes ? ",\n" : "") + json::serialize(EnvelopeToHar(it->envelope(), fallback));
    if (!write(text)) return Status::IoError("writing HAR failed (disk full or closed pipe?)");
    ++stats->envelopes;
  }
  DOPPEL_RETURN_IF_ERROR(it->status());
  if (!write("\n]}}\n")) return Status::IoError("writing HAR failed");
  return Status::Ok();
}

}  // namespace doppel::interop
