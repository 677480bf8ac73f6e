// What the replayer sends for each recorded envelope: which envelopes are selected
// (percent, filters, unsafe methods) and how a request is rewritten for a target.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/enum_names.h"
#include "base/status.h"
#include "diff/grpc.h"
#include "doppel/v1/envelope.pb.h"
#include "net/regex.h"

namespace doppel::replay {

// Deterministic subset: true for about `percent` % of envelopes, decided by a hash of the
// envelope's id (arrival_us, seq) and `seed`, so reruns select the same requests.
bool InPercent(uint64_t arrival_us, uint32_t seq, double percent, uint64_t seed);

// POST, PUT, PATCH, DELETE: skipped unless --allow-unsafe-methods.
bool IsUnsafeMethod(std::string_view method);

struct SelectionOptions {
  double percent = 100;
  uint64_t seed = 0;
  std::vector<std::string> methods;  // empty = all
  // Regexes are RE2 (net/regex.h: linear time, no backreferences or lookaround) and match
  // anywhere in the value unless anchored with ^ and $.
  std::string path_regex;                 // matched against the target (path and query)
  std::vector<std::string> header_regex;  // "Name: REGEX"; every one must match some value
  bool allow_unsafe = false;
  // --proto-set: a gRPC call (a POST) to a method the set marks
  // `idempotency_level = NO_SIDE_EFFECTS` is a read, sent without allow_unsafe.
  std::shared_ptr<const diff::GrpcSchema> grpc_schema;
  // False when a target is HTTP/2, which has no Upgrade: WebSocket connections are skipped.
  bool websocket = true;
};

// Whether a recorded WebSocket connection can be sent again as recorded: no client message was
// cut at --capture-body-limit, and the messages compressed by permessage-deflate (RFC 7692)
// decompress (net::InflateWebSocketSession, at most 64 MiB in all).
bool ReplayableWebSocket(const doppel::v1::WebSocketSession& session);

// Replaces the compressed messages of a ReplayableWebSocket session by their decompressed
// payloads: the replayed handshake offers no extension, so the messages go uncompressed and
// the target's are compared with the primary's decompressed.
void DecompressWebSocketForReplay(doppel::v1::WebSocketSession* session);

// kRefused: the recording proxy refused the request and never forwarded it to the primary
// (storage::ProxyRefused); never sent, whatever the options. DecisionCounts::Count relies on
// this order.
// kWebSocket: a relayed WebSocket connection (Envelope.websocket) that cannot be replayed: not
// ReplayableWebSocket, or SelectionOptions::websocket is false.
enum class Decision {
  kSend,
  kRefused,
  kNotInPercent,
  kFiltered,
  kUnsafe,
  kWebSocket,
  kMaxValue = kWebSocket
};
// As DecisionCounts' members and a worker group's WorkerState.skipped keys.
inline constexpr EnumNames<Decision, 6> kDecisionNames{
    {"send", "refused", "not_in_percent", "filtered", "unsafe", "websocket"}};

// Envelopes by the selector's decision: the run's first pass counts them for its plan, the
// replayer while it sends.
struct DecisionCounts {
  uint64_t send = 0;
  uint64_t refused = 0;  // the recording proxy refused them: they never reached the primary
  uint64_t not_in_percent = 0, filtered = 0, unsafe = 0, websocket = 0;
  void Count(Decision d);
};

class Selector {
 public:
  // Errors name the option and what is wrong with it (bad regex, percent out of range).
  static Result<std::shared_ptr<const Selector>> Create(const SelectionOptions& options);
  Decision Decide(const doppel::v1::Envelope& envelope) const;

 private:
  bool IsReadOnlyGrpcCall(const doppel::v1::HttpRequest& request) const;
  SelectionOptions opts_;
  std::vector<std::string> methods_upper_;
  std::unique_ptr<re2::RE2> path_;
  std::vector<std::pair<std::string, std::unique_ptr<re2::RE2>>> headers_;
};

// A request ready to send, independent of the HTTP library.
struct OutgoingRequest {
  std::string method;
  std::string target;
  unsigned version = 11;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct RewriteOptions {
  std::vector<std::pair<std::string, std::string>> set_headers;  // replace or add
  std::vector<std::string> remove_headers;
  // REGEX=REPLACEMENT: every match in the target is replaced; $1..$9 (or \1..\9) are the
  // groups, $& (or \0) the whole match, $$ a dollar sign.
  std::vector<std::pair<std::string, std::string>> rewrite_path;
  bool keep_host = false;
};

class Rewriter {
 public:
  static Result<std::shared_ptr<const Rewriter>> Create(const RewriteOptions& options);

  // Builds the request for one target. `target_authority` is the target's Host value,
  // `base_path` its path prefix. Redacted header values (recorded as "hmac:…") are
  // dropped unless set_headers supplies the header; *dropped_redacted counts them.
  // Framing headers (Content-Length, Transfer-Encoding) are not copied: the sender frames
  // the body itself.
  void Build(const doppel::v1::Envelope& envelope, const std::string& target_authority,
             const std::string& base_path, OutgoingRequest* out, uint64_t* dropped_redacted) const;

 private:
  RewriteOptions opts_;
  // Compiled regex and its replacement in RE2's rewrite syntax (\1, \0, \\).
  std::vector<std::pair<std::unique_ptr<re2::RE2>, std::string>> paths_;
};

// Splits "Name=Value" / "Name: Value" (set-header) or "REGEX=REPL" (rewrite-path) at the
// first separator; false when there is none or the left side is empty.
bool SplitAssignment(std::string_view text, std::string* left, std::string* right);

}  // namespace doppel::replay
