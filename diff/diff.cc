#include "diff/diff.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "diff/body.h"
#include "diff/headers.h"
#include "diff/rules.h"
#include "diff/websocket.h"
#include "net/url.h"

namespace doppel::diff {
namespace {

// What RuleDiffer::Prepare makes: the request's endpoint and rules, and the body prepared.
class PreparedExpected final : public Expected {
 public:
  PreparedExpected(std::string endpoint, std::vector<const CompiledRule*> rules,
                   const doppel::v1::HttpResponse& response,
                   const doppel::v1::WebSocketSession* websocket, const BodyDiffOptions& options,
                   std::string_view target)
      : endpoint_(std::move(endpoint)),
        rules_(std::move(rules)),
        websocket_(websocket),
        body_(response, options, net::TargetPath(target)) {}

  const std::string& endpoint() const override { return endpoint_; }
  const std::vector<const CompiledRule*>& rules() const { return rules_; }
  const PreparedBody& body() const { return body_; }
  const doppel::v1::HttpResponse& response() const { return body_.response(); }
  const doppel::v1::WebSocketSession* websocket() const { return websocket_; }

 private:
  const std::string endpoint_;
  const std::vector<const CompiledRule*> rules_;
  const doppel::v1::WebSocketSession* const websocket_;
  const PreparedBody body_;
};

using Headers = google::protobuf::RepeatedPtrField<doppel::v1::Header>;

bool IsGrpc(const doppel::v1::HttpResponse& r) {
  return IsGrpcContentType(FirstHeader(r.headers(), "content-type"));
}

// A gRPC answer's outcome (grpc-status, grpc-message, grpc-status-details-bin) comes in the
// trailers, or in the headers of a trailers-only answer (an error without messages). Both
// are compared as trailers, so a call that turned into an error reads
// `trailers.grpc-status`, whichever form each side took.
struct Fields {
  Headers headers, trailers;
};
Fields GrpcFields(const doppel::v1::HttpResponse& r) {
  Fields f;
  for (const doppel::v1::Header& h : r.headers()) {
    const std::string name = AsciiLower(h.name());
    const bool outcome =
        name == "grpc-status" || name == "grpc-message" || name == "grpc-status-details-bin";
    *(outcome ? f.trailers.Add() : f.headers.Add()) = h;
  }
  for (const doppel::v1::Header& h : r.trailers()) *f.trailers.Add() = h;
  return f;
}

class RuleDiffer final : public Differ {
 public:
  using Differ::Compare;
  using Differ::Prepare;

  RuleDiffer(DiffConfig config, RuleSet rules)
      : config_(std::move(config)),
        rules_(std::move(rules)),
        headers_(rules_.header_ignore(), rules_.header_compare()) {
    body_.max_decoded_bytes = config_.max_decoded_bytes;
    body_.on_expected_decoded = config_.on_expected_decoded;
    body_.json.normalizers = config_.normalizers;
    body_.json.max_depth = config_.max_json_depth;
    body_.json.max_rendered_bytes = config_.max_rendered_bytes;
    body_.text.max_rendered_bytes = config_.max_rendered_bytes;
    body_.grpc = config_.grpc_schema.get();
  }

  ExpectedPtr Prepare(std::string_view method, std::string_view target,
                      const doppel::v1::HttpResponse& expected,
                      const doppel::v1::WebSocketSession* websocket) const override {
    return std::make_unique<PreparedExpected>(Endpoint(method, target),
                                              rules_.ForRequest(method, target), expected,
                                              websocket, body_, target);
  }

  DiffResult Compare(const Expected& prepared, const doppel::v1::HttpResponse& actual,
                     const doppel::v1::WebSocketSession* websocket) const override {
    const auto& p = static_cast<const PreparedExpected&>(prepared);
    const doppel::v1::HttpResponse& expected = p.response();
    const std::vector<const CompiledRule*>& rules = p.rules();
    DiffResult result;
    result.endpoint = p.endpoint();
    DiffSink sink(&result, config_.max_diffs, config_.max_listed_paths);

    if (expected.status() != actual.status()) {
      if (IgnoresStatus(rules)) {
        sink.Ignored("status");
      } else {
        // A different status class (200 -> 500) breaks every client: high. Within a class
        // (200 -> 204) it is an ordinary value change.
        const bool class_changed = expected.status() / 100 != actual.status() / 100;
        sink.Add(FieldDiff{"status",
                           DiffKind::kValue,
                           class_changed ? Severity::kHigh : DefaultSeverity(DiffKind::kValue),
                           std::to_string(expected.status()),
                           std::to_string(actual.status()),
                           {}});
      }
    }
    // The body first (Content-Length depends on it), reported after the headers.
    DiffResult body;
    DiffSink body_sink(&body, config_.max_diffs, config_.max_listed_paths);
    DiffBodies(p.body(), actual, rules, &body_sink);
    const bool body_compared =
        std::none_of(body.diffs.begin(), body.diffs.end(),
                     [](const FieldDiff& d) { return d.kind == DiffKind::kUncompared; });
    if (IsGrpc(expected) || IsGrpc(actual)) {
      const Fields e = GrpcFields(expected), a = GrpcFields(actual);
      headers_.Diff(e.headers, a.headers, body_compared, &sink);
      headers_.Diff(e.trailers, a.trailers, body_compared, &sink, "trailers");
    } else {
      headers_.Diff(expected.headers(), actual.headers(), body_compared, &sink);
      headers_.Diff(expected.trailers(), actual.trailers(), body_compared, &sink, "trailers");
    }
    for (FieldDiff& d : body.diffs) sink.Add(std::move(d));
    result.omitted_diffs += body.omitted_diffs;
    if (body.omitted_diffs > 0) result.match = false;
    for (std::string& p : body.normalized) sink.Normalized(std::move(p));
    for (std::string& p : body.ignored) sink.Ignored(std::move(p));
    result.omitted_paths += body.omitted_paths;
    if (p.websocket() != nullptr) {
      DiffWebSocketMessages(
          *p.websocket(), websocket ? *websocket : doppel::v1::WebSocketSession::default_instance(),
          rules, body_.json, &sink);
    }
    return result;
  }

  std::string Endpoint(std::string_view method, std::string_view target) const override {
    return rules_.endpoints().Name(method, target);
  }

 private:
  static bool IgnoresStatus(const std::vector<const CompiledRule*>& rules) {
    for (const CompiledRule* r : rules) {
      if (r->path.root() == "status" && r->path.depth() == 0 &&
          (r->action == RuleAction::kIgnore || r->action == RuleAction::kPresenceOnly)) {
        return true;
      }
    }
    return false;
  }

  const DiffConfig config_;
  const RuleSet rules_;
  const HeaderPolicy headers_;
  BodyDiffOptions body_;
};

}  // namespace

DiffResult Differ::Compare(std::string_view method, std::string_view target,
                           const doppel::v1::HttpResponse& expected,
                           const doppel::v1::HttpResponse& actual) const {
  return Compare(*Prepare(method, target, expected), actual);
}

Result<DifferPtr> Differ::Create(DiffConfig config) {
  Result<RuleSet> rules = RuleSet::Compile(config.rules);
  if (!rules.ok()) return rules.status().WithContext("diff rules");
  if (config.max_diffs == 0) return Status::InvalidArgument("max_diffs must be at least 1");
  DifferPtr differ = std::make_unique<RuleDiffer>(std::move(config), std::move(rules).value());
  return differ;
}

}  // namespace doppel::diff
