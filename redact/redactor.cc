#include "redact/redactor.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "base/strings.h"
#include "diff/body.h"
#include "diff/headers.h"
#include "net/codings.h"
#include "net/proto_headers.h"
#include "net/url.h"

namespace doppel::redact {

namespace json = boost::json;
using diff::PathStep;
using Headers = google::protobuf::RepeatedPtrField<doppel::v1::Header>;

namespace {

constexpr size_t kKeyBytes = 32;
constexpr unsigned kMaxJsonDepth = 256;  // deeper documents do not parse (and are dropped)

// "hmac:" and 64 lowercase hex digits: what Hash() returns. Such a value is left as it is,
// so importing what doppel exported (JSON Lines, HAR) does not hash the hashes again.
bool IsHash(std::string_view v) {
  return v.size() == 69 && v.substr(0, 5) == "hmac:" &&
         std::all_of(v.begin() + 5, v.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string HashUnlessHashed(const Redactor& r, std::string_view value) {
  return IsHash(value) ? std::string(value) : r.Hash(value);
}

void RedactHeaders(Headers* headers, const Redactor& r) {
  for (auto& h : *headers) {
    if (r.ShouldRedact(h.name())) h.set_value(HashUnlessHashed(r, h.value()));
  }
}

// Replaces the value of each query parameter named in `names` ("a=1&token=x" ->
// "a=1&token=hmac:..."). Names compare as written (no percent-decoding); a parameter without
// '=' has no value to hide. Everything else in the target is kept byte for byte.
void RedactQuery(std::string* target, const std::vector<std::string>& names, const Redactor& r) {
  if (names.empty()) return;
  const std::optional<std::string_view> query = net::SplitTarget(*target).query;
  if (!query) return;
  const size_t begin = query->data() - target->data(), end = begin + query->size();
  std::string out = target->substr(0, begin);
  bool first = true;
  for (const net::EncodedQueryItem& item : net::SplitQuery(*query)) {
    if (!first) out += '&';
    first = false;
    out.append(item.key);
    if (!item.has_value) continue;
    out += '=';
    if (std::find(names.begin(), names.end(), item.key) != names.end())
      out += HashUnlessHashed(r, item.value);
    else
      out.append(item.value);
  }
  out.append(*target, end, std::string::npos);
  *target = std::move(out);
}

// Walks a parsed body, replacing every value a pattern matches by its hash. Descends only as
// deep as the deepest pattern.
class JsonRedaction {
 public:
  JsonRedaction(const std::vector<diff::PathPattern>& patterns, const Redactor& r)
      : patterns_(patterns), redactor_(r) {
    for (const auto& p : patterns_) max_depth_ = std::max(max_depth_, p.depth());
  }
  bool changed() const { return changed_; }

  void Walk(json::value& v) {
    if (steps_.size() >= max_depth_) return;
    if (auto* obj = v.if_object()) {
      for (auto& kv : *obj) Visit(PathStep::Key(kv.key()), kv.value());
    } else if (auto* arr = v.if_array()) {
      for (size_t i = 0; i < arr->size(); ++i) Visit(PathStep::Index(i), (*arr)[i]);
    }
  }

 private:
  void Visit(PathStep step, json::value& child) {
    steps_.push_back(step);
    const bool hit = std::any_of(patterns_.begin(), patterns_.end(),
                                 [&](const auto& p) { return p.Matches("body", steps_); });
    if (hit) {
      if (!child.is_string() || !IsHash(child.get_string())) {
        child = json::string(redactor_.Hash(child.is_string() ? std::string_view(child.get_string())
                                                              : json::serialize(child)));
        changed_ = true;
      }
    } else {
      Walk(child);
    }
    steps_.pop_back();
  }

  const std::vector<diff::PathPattern>& patterns_;
  const Redactor& redactor_;
  size_t max_depth_ = 0;
  std::vector<PathStep> steps_;
  bool changed_ = false;
};

// The body is not stored: emptied and marked truncated, its original size kept.
template <typename Message>
void DropBody(Message* m) {
  m->set_body_size(std::max<uint64_t>(m->body_size(), m->body().size()));
  m->clear_body();
  m->set_body_truncated(true);
}

}  // namespace

const std::vector<std::string>& Redactor::DefaultHeaders() {
  static const std::vector<std::string> kHeaders = {"authorization", "proxy-authorization",
                                                    "cookie", "set-cookie", "x-api-key"};
  return kHeaders;
}

Result<std::string> Redactor::LoadOrCreateKey(const std::string& store_dir) {
  const std::string path = store_dir + "/redaction.key";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    unsigned char key[kKeyBytes];
    if (RAND_bytes(key, sizeof key) != 1) {
      return Status::Internal("cannot get random bytes for the redaction key");
    }
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      const bool ok =
          ::write(fd, key, sizeof key) == static_cast<ssize_t>(sizeof key) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) {
        ::unlink(path.c_str());
        return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
      }
      return std::string(reinterpret_cast<const char*>(key), sizeof key);
    }
    if (errno != EEXIST) {
      return Status::IoError("cannot create " + path + ": " + std::strerror(errno));
    }
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // another process won the race
  }
  if (fd < 0) return Status::IoError("cannot read " + path + ": " + std::strerror(errno));
  std::string key(256, '\0');
  const ssize_t n = ::read(fd, key.data(), key.size());
  ::close(fd);
  if (n < 16) {
    return Status::Corruption(path +
                              " is shorter than 16 bytes; remove it to make a new key "
                              "(earlier hashes will then no longer match)");
  }
  key.resize(static_cast<size_t>(n));
  return key;
}

Result<std::unique_ptr<Redactor>> Redactor::ForStore(const std::string& store_dir,
                                                     const RedactOptions& options) {
  if (options.off) {
    if (!options.headers.empty() || !options.query_params.empty() || !options.json_paths.empty())
      return Status::InvalidArgument(
          "--no-redact stores everything verbatim: drop it, or drop --redact-header, "
          "--redact-query and --redact-json-path");
    return std::unique_ptr<Redactor>();
  }
  DOPPEL_ASSIGN_OR_RETURN(auto key, LoadOrCreateKey(store_dir));
  return WithKey(std::move(key), options);
}

Result<std::unique_ptr<Redactor>> Redactor::WithKey(std::string key, const RedactOptions& options) {
  auto r = std::make_unique<Redactor>(std::move(key), options.headers);
  for (const std::string& name : options.query_params) {
    if (name.empty()) return Status::InvalidArgument("--redact-query needs a parameter name");
    r->query_params_.push_back(name);
  }
  for (const std::string& text : options.json_paths) {
    auto p = diff::PathPattern::Parse(text);
    if (!p.ok())
      return Status::InvalidArgument("--redact-json-path '" + text + "': " + p.status().message());
    if (p->root() != "body" || p->depth() == 0)
      return Status::InvalidArgument("--redact-json-path '" + text +
                                     "': a path names a field of a JSON body, so it starts with "
                                     "'body.' (e.g. body.user.ssn, body.items[*].card)");
    r->json_paths_.push_back(std::move(p.value()));
  }
  r->max_decoded_bytes_ = options.max_decoded_bytes;
  return r;
}

Redactor::Redactor(std::string key, const std::vector<std::string>& extra_headers)
    : key_(std::move(key)), headers_(DefaultHeaders()) {
  for (const std::string& h : extra_headers) headers_.push_back(AsciiLower(h));
}

bool Redactor::ShouldRedact(std::string_view header_name) const {
  return std::any_of(headers_.begin(), headers_.end(),
                     [&](const std::string& h) { return EqualsIgnoreCase(h, header_name); });
}

std::string Redactor::Hash(std::string_view value) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(value.data()), value.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "hmac:";
  out.reserve(5 + 2 * len);
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

template <typename Message>
bool Redactor::RedactBody(Message* m) const {
  if (json_paths_.empty() || m->body().empty()) return true;
  const std::string_view coding = TrimSpaces(diff::FirstHeader(m->headers(), "Content-Encoding"));
  const bool encoded = !coding.empty() && !EqualsIgnoreCase(coding, "identity");
  std::string decoded;
  if (encoded) {
    auto d = net::DecodeContent(m->body(), coding, max_decoded_bytes_);
    if (!d.ok()) {
      DropBody(m);
      return false;
    }
    decoded = std::move(d.value());
  }
  const std::string_view text = encoded ? std::string_view(decoded) : std::string_view(m->body());
  json::parse_options po;
  po.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, {}, po);
  if (ec) {
    const std::string_view type = diff::FirstHeader(m->headers(), "Content-Type");
    if (diff::BodyKindOf(type, text) != diff::BodyKind::kJson) return true;  // not JSON at all
    DropBody(m);
    return false;
  }
  JsonRedaction walk(json_paths_, *this);
  walk.Walk(v);
  if (!walk.changed()) return true;  // nothing to hide: the bytes stay as they were
  m->set_body(json::serialize(v));
  m->set_body_size(m->body().size());
  m->set_body_truncated(false);
  if (encoded) net::RemoveHeader(m->mutable_headers(), "Content-Encoding");
  net::ReplaceHeader(m->mutable_headers(), "Content-Length", std::to_string(m->body().size()));
  return true;
}

RedactCounts Redactor::Redact(doppel::v1::Envelope* envelope) const {
  RedactCounts counts;
  auto* rq = envelope->mutable_request();
  auto* rs = envelope->mutable_response();
  RedactHeaders(rq->mutable_headers(), *this);
  RedactHeaders(rs->mutable_headers(), *this);
  RedactQuery(rq->mutable_target(), query_params_, *this);
  if (!RedactBody(rq)) ++counts.dropped_bodies;
  if (!RedactBody(rs)) ++counts.dropped_bodies;
  return counts;
}

}  // namespace doppel::redact
