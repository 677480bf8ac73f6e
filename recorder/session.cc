#include "recorder/session.h"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <utility>

#include "base/units.h"
#include "diff/grpc.h"
#include "diff/rules.h"
#include "net/match.h"
#include "net/rules_file.h"
#include "net/url.h"
#include "recorder/capture_writer.h"
#include "recorder/coverage_history.h"
#include "recorder/mirror.h"
#include "recorder/record_config.h"
#include "recorder/redis_sink.h"
#include "storage/store.h"
#include "stream/envelope_stream.h"
#include "stream/redis_client.h"

namespace doppel::recorder {
namespace {

// A size flag's value in bytes; errors name the flag.
Result<uint64_t> ParseSize(const std::string& flag, const std::string& text) {
  auto bytes = ParseSizeBytes(text);
  if (!bytes.ok()) return bytes.status().WithContext(flag);
  return bytes;
}

// "rec-20260102-030405" for a wall time in µs since the epoch (UTC).
std::string DefaultSessionName(uint64_t wall_us) {
  const std::time_t t = static_cast<std::time_t>(wall_us / 1000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "rec-%Y%m%d-%H%M%S", &tm);
  return buf;
}

Status ParseMirrorOptions(const SessionOptions& f, MirrorOptions* m) {
  const bool any_mirror_flag = f.no_shadow_suffix || f.mirror_same_sample || f.mirror_diff ||
                               !f.mirror_diff_rules.empty() || !f.mirror_set_headers.empty() ||
                               !f.mirror_remove_headers.empty() || !f.mirror_match.empty() ||
                               !f.mirror_rules_file.empty() || !f.mirror_proto_set.empty();
  if (f.mirrors.empty()) {
    if (any_mirror_flag) {
      return Status::InvalidArgument(
          "--mirror-* options need at least one --mirror URL[,percent=P,...]");
    }
    return Status::Ok();
  }
  for (const std::string& text : f.mirrors) {
    DOPPEL_ASSIGN_OR_RETURN(auto spec, ParseMirrorSpec(text));
    m->mirrors.push_back(std::move(spec));
  }
  m->shadow_suffix = !f.no_shadow_suffix;
  m->same_sample = f.mirror_same_sample;
  auto max_bytes = ParseSize("--mirror-max-inflight-bytes", f.mirror_max_inflight_bytes);
  if (!max_bytes.ok()) return max_bytes.status();
  m->max_inflight_bytes = max_bytes.value();
  m->diff = f.mirror_diff || !f.mirror_diff_rules.empty() || !f.mirror_proto_set.empty();
  if (!f.mirror_diff_rules.empty()) {
    auto rules = diff::LoadRulesFile(f.mirror_diff_rules);
    if (!rules.ok()) return rules.status().WithContext("--mirror-diff-rules");
    m->diff_rules = std::move(rules.value());
  }
  if (!f.mirror_proto_set.empty()) {
    auto schema = diff::GrpcSchema::Load(f.mirror_proto_set);
    if (!schema.ok()) return schema.status().WithContext("--mirror-proto-set");
    m->grpc_schema = std::move(schema.value());
  }
  for (const std::string& kv : f.mirror_set_headers) {
    const size_t eq = kv.find_first_of("=:");
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("--mirror-set-header '" + kv +
                                     "': give NAME=VALUE, e.g. X-Shadow=1");
    }
    m->set_headers.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  m->remove_headers = f.mirror_remove_headers;
  auto rules = net::MatchRules::FromFlags(f.mirror_match);
  if (!rules.ok()) return rules.status().WithContext("--mirror-match");
  m->rules = std::move(rules.value());
  if (!f.mirror_rules_file.empty()) {
    auto from_file = net::MatchRules::FromFile(f.mirror_rules_file);
    if (!from_file.ok()) return from_file.status().WithContext("--mirror-rules");
    DOPPEL_RETURN_IF_ERROR(m->rules.Merge(std::move(from_file.value())));
  }
  if (!f.mirror_budget.empty()) {
    auto budget = ParseMirrorBudget(f.mirror_budget);
    if (!budget.ok()) return budget.status();
    m->budget = std::move(budget.value());
  }
  return Status::Ok();
}

// Where captured envelopes go (--sink), checked before anything is opened.
struct SinkPlan {
  bool store = false;
  std::vector<stream::RedisUrl> redis;
};

Result<SinkPlan> ParseSinks(const SessionOptions& f) {
  SinkPlan plan;
  plan.store = f.sinks.empty();
  for (const std::string& text : f.sinks) {
    if (text == "store") {
      plan.store = true;
      continue;
    }
    if (!stream::IsRedisUrl(text)) {
      return Status::InvalidArgument("--sink '" + text +
                                     "': give 'store' or redis://[:PASSWORD@]HOST[:PORT]/STREAM");
    }
    auto url = stream::ParseRedisUrl(text);
    if (!url.ok()) return url.status().WithContext("--sink");
    for (const auto& other : plan.redis) {
      if (other.ToString() == url->ToString()) {
        return Status::InvalidArgument("--sink " + url->ToString() + " is given twice");
      }
    }
    plan.redis.push_back(std::move(url.value()));
  }
  if (plan.redis.empty() &&
      (f.sink_maxlen > 0 || f.sink_optional || !f.recorder_id.empty() || f.sink_shards > 0)) {
    return Status::InvalidArgument(
        "--sink-maxlen, --sink-shards, --sink-optional and --recorder-id apply to redis:// "
        "sinks: add --sink redis://HOST:PORT/STREAM");
  }
  if (f.sink_shards > stream::kMaxShards) {
    return Status::InvalidArgument("--sink-shards " + std::to_string(f.sink_shards) + ": at most " +
                                   std::to_string(stream::kMaxShards));
  }
  for (const auto& url : plan.redis) {
    if (f.sink_shards > 0 && url.stream.find_first_of("{}") != std::string::npos) {
      return Status::InvalidArgument(
          "--sink " + url.ToString() + " with --sink-shards: the shards are named " +
          stream::ShardStreamName(url.stream, 0) +
          ", ..., whose hash tags place them; give a stream name without braces");
    }
  }
  return plan;
}

// Everything that can be checked without the store or the network; errors name the flag.
Result<RecorderOptions> ParseOptions(const SessionOptions& f) {
  RecorderOptions o;
  auto listen = net::ParseHostPort(f.listen);
  if (!listen.ok()) return listen.status().WithContext("--listen");
  o.listen = listen.value();
  if (f.upstream.empty()) {
    return Status::InvalidArgument(
        "--upstream URL is required (or upstream.url in the --config file)");
  }
  auto upstream = net::ParseUrl(f.upstream);
  if (!upstream.ok()) return upstream.status().WithContext("--upstream");
  o.upstream = upstream.value();
  if (!f.admin.empty()) {
    auto admin = net::ParseHostPort(f.admin);
    if (!admin.ok()) return admin.status().WithContext("--admin");
    o.admin = admin.value();
    boost::system::error_code ec;
    const auto ip = boost::asio::ip::make_address(o.admin->host, ec);
    if (!ec && !ip.is_loopback() && !f.admin_allow_remote) {
      return Status::InvalidArgument(
          "--admin " + f.admin +
          " is not a loopback address: /status and /metrics would be open to the network "
          "(upstream, traffic counts); use 127.0.0.1:PORT, or pass --admin-allow-remote if "
          "that is really wanted");
    }
  }
  o.log_bodies = f.log_bodies;
  o.threads = f.threads;
  if (o.threads < 1) return Status::InvalidArgument("--threads must be at least 1");
  o.sample_percent = f.sample;
  o.sample_key = f.sample_key;
  if (f.sample_mode == "coverage") {
    if (f.sample != 100) {
      return Status::InvalidArgument(
          "--sample and --sample-mode coverage do not go together: coverage sampling spends "
          "--sample-budget (e.g. 5% or 200/s) instead");
    }
    if (f.sample_budget.empty()) {
      return Status::InvalidArgument(
          "--sample-mode coverage needs --sample-budget, e.g. 5% (of the requests) or 200/s");
    }
    if (f.per_class_min < 0 || f.per_class_min > 1000000) {
      return Status::InvalidArgument("--per-class-min must be between 0 and 1000000 (got " +
                                     std::to_string(f.per_class_min) + ")");
    }
    CoverageOptions c;
    DOPPEL_ASSIGN_OR_RETURN(c.budget, ParseSampleBudget(f.sample_budget));
    c.per_class_min = static_cast<uint32_t>(f.per_class_min);
    o.coverage = std::move(c);
  } else if (f.sample_mode == "uniform") {
    if (!f.sample_budget.empty()) {
      return Status::InvalidArgument(
          "--sample-budget applies to --sample-mode coverage; uniform sampling takes --sample "
          "PERCENT");
    }
  } else {
    return Status::InvalidArgument("--sample-mode '" + f.sample_mode +
                                   "': give uniform (the default) or coverage");
  }

  auto rules = net::MatchRules::FromFlags(f.match);
  if (!rules.ok()) return rules.status();
  o.rules = std::move(rules.value());
  if (!f.rules_file.empty()) {
    auto from_file = net::MatchRules::FromFile(f.rules_file);
    if (!from_file.ok()) return from_file.status().WithContext("--rules");
    DOPPEL_RETURN_IF_ERROR(o.rules.Merge(std::move(from_file.value())));
  }

  struct SizeFlag {
    const char* name;
    const std::string* text;
    uint64_t* out;
  };
  uint64_t header_size = 0;
  for (const SizeFlag& s :
       {SizeFlag{"--max-request-body", &f.max_request_body, &o.max_request_body},
        SizeFlag{"--request-buffer", &f.request_buffer, &o.request_buffer},
        SizeFlag{"--max-header-size", &f.max_header_size, &header_size},
        SizeFlag{"--capture-body-limit", &f.capture_body_limit, &o.capture_body_limit}}) {
    DOPPEL_ASSIGN_OR_RETURN(auto v, ParseSize(s.name, *s.text));
    *s.out = v;
  }
  if (header_size < 1024 || header_size > (1u << 20)) {
    return Status::InvalidArgument("--max-header-size must be between 1KiB and 1MiB");
  }
  o.max_header_bytes = static_cast<uint32_t>(header_size);

  struct DurationFlag {
    const char* name;
    const std::string* text;
    std::chrono::milliseconds* out;
  };
  for (const DurationFlag& d :
       {DurationFlag{"--idle-timeout", &f.idle_timeout, &o.idle_timeout},
        DurationFlag{"--request-timeout", &f.request_timeout, &o.request_timeout},
        DurationFlag{"--upstream-connect-timeout", &f.upstream_connect_timeout,
                     &o.upstream_client.connect_timeout},
        DurationFlag{"--upstream-idle-timeout", &f.upstream_idle_timeout,
                     &o.upstream_client.read_idle_timeout},
        DurationFlag{"--upstream-timeout", &f.upstream_timeout,
                     &o.upstream_client.response_timeout},
        DurationFlag{"--drain-timeout", &f.drain_timeout, &o.drain_timeout}}) {
    if (d.text->empty() && d.out == &o.upstream_client.response_timeout) {
      *d.out = std::chrono::milliseconds(0);  // unset: no total limit
      continue;
    }
    auto us = ParseDurationUs(*d.text);
    if (!us.ok()) return us.status().WithContext(d.name);
    const std::chrono::milliseconds ms((us.value() + 500) / 1000);
    if (ms.count() <= 0 && std::string(d.name) != "--drain-timeout") {
      return Status::InvalidArgument(std::string(d.name) + " must be at least 1ms");
    }
    *d.out = ms;
  }
  o.max_connections = f.max_connections;
  if (f.h2_max_concurrent_streams < 1 || f.h2_max_concurrent_streams > 0x7fffffffu) {
    return Status::InvalidArgument("--h2-max-concurrent-streams must be between 1 and 2147483647");
  }
  o.h2_max_concurrent_streams = f.h2_max_concurrent_streams;
  o.tls_cert_file = f.tls_cert;
  o.tls_key_file = f.tls_key;
  o.tls_client_ca_file = f.tls_client_ca;
  o.queue.queue_size = std::max<size_t>(1, f.queue_size);
  o.upstream_tls.verify = !f.upstream_insecure;
  o.upstream_tls.ca_file = f.upstream_ca;
  if (f.upstream_cert.empty() != f.upstream_key.empty()) {
    return Status::InvalidArgument(
        "--upstream-cert and --upstream-key go together: give both (PEM files) to present a "
        "client certificate to the primary");
  }
  o.upstream_tls.cert_file = f.upstream_cert;
  o.upstream_tls.key_file = f.upstream_key;
  DOPPEL_RETURN_IF_ERROR(ParseMirrorOptions(f, &o.mirror));
  if (!f.class_rules.empty()) {
    const bool coverage_mirror = std::any_of(o.mirror.mirrors.begin(), o.mirror.mirrors.end(),
                                             [](const MirrorSpec& m) { return m.coverage; });
    if (!o.coverage && !coverage_mirror) {
      return Status::InvalidArgument(
          "--class-rules names the endpoints of request classes: it needs --sample-mode "
          "coverage or a --mirror with mode=coverage");
    }
    auto namer = diff::LoadEndpointNamer(f.class_rules);
    if (!namer.ok()) return namer.status().WithContext("--class-rules");
    o.class_endpoints = std::move(*namer);
  }
  if (!f.fault.empty()) {
    auto spec = net::ParseFaultSpec(f.fault);
    if (!spec.ok()) return spec.status().WithContext("--fault");
    o.fault.spec = std::move(spec.value());
  }
  o.fault.from_headers = f.fault_headers;
  bool mirror_faults = false;
  for (const MirrorSpec& m : o.mirror.mirrors) mirror_faults = mirror_faults || !m.fault.empty();
  if (o.fault.spec.empty() && !f.fault_headers && !f.fault_rule.empty()) {
    return Status::InvalidArgument("--fault-rule needs --fault SPEC or --fault-headers");
  }
  if (o.fault.spec.empty() && !f.fault_headers && !mirror_faults &&
      (f.fault_seed != 0 || f.max_active_faults != 0)) {
    return Status::InvalidArgument(
        "--fault-seed and --max-active-faults need --fault SPEC, --fault-headers or a "
        "--mirror ...,fault=SPEC");
  }
  o.mirror.fault_seed = f.fault_seed;
  o.mirror.max_active_faults = f.max_active_faults;
  o.fault.seed = f.fault_seed;
  o.fault.max_active = f.max_active_faults;
  o.fault_rule = f.fault_rule;
  if (f.fault_rule.find('=') != std::string::npos) {
    // An inline rule ('uri^=/api'): scopes the faults without limiting the recording.
    auto inline_rule = net::MatchRules::FromFlags({f.fault_rule});
    if (!inline_rule.ok()) return inline_rule.status().WithContext("--fault-rule");
    o.fault_rules = std::move(inline_rule.value());
    o.fault_rule = o.fault_rules.blocks().front().name;
  }
  return o;
}

}  // namespace

// Destruction order matters: the recorder (whose writer appends through `sink`) goes first,
// then the sink, the redactor and the store.
struct Session::State {
  RecorderOptions options;
  std::unique_ptr<storage::Store> store;
  bool store_is_sink = false;                  // else the store only holds the redaction key
  std::unique_ptr<redact::Redactor> redactor;  // null with --no-redact
  std::vector<CaptureSinkPtr> sinks;
  RecorderPtr recorder;
  SessionSummary summary;
  // Reloads: the configuration in force as options, and where a reload resolves it from.
  std::mutex reload_mu;  // one reload at a time; guards current, options' live fields, stopped
  SessionOptions current;
  std::shared_ptr<const RecordConfigSource> source;
  std::function<void(const ReloadOutcome&)> on_reload;
  bool stopped = false;
};

ReloadOutcome Session::ReloadState(State& s, const net::ConfigDoc* doc, std::string origin) {
  std::unique_lock<std::mutex> lock(s.reload_mu);
  ReloadOutcome out;
  out.origin = std::move(origin);
  auto done = [&]() -> ReloadOutcome {
    lock.unlock();
    if (s.on_reload) s.on_reload(out);
    return out;
  };
  if (s.stopped || s.recorder == nullptr) {
    out.status = Status::Unavailable("the session is starting or stopping");
    return done();
  }
  out.generation = s.recorder->generation();
  auto next = doc != nullptr ? ApplyRecordConfig(*s.source, s.current, *doc)
                             : ResolveRecordConfig(*s.source);
  if (!next.ok()) {
    out.status = next.status();
    return done();
  }
  next->store_path = s.current.store_path;
  const std::vector<const RecordConfigField*> changed = ChangedRecordConfigFields(s.current, *next);
  std::string restart;
  for (const RecordConfigField* f : changed) {
    if (f->live) continue;
    restart += std::string(restart.empty() ? "" : "; ") + std::string(f->path) + " (" +
               std::string(f->flag) + ") '" + RecordConfigValueText(*f, s.current) + "' -> '" +
               RecordConfigValueText(*f, *next) + "'";
  }
  if (!restart.empty()) {
    out.status = Status::InvalidArgument(
        "these need a restart of doppel record, not a reload: " + restart +
        " (reloads change sampling percent and key, capture rules, mirroring and faults)");
    return done();
  }
  auto parsed = ParseOptions(*next);
  if (!parsed.ok()) {
    out.status = parsed.status();
    return done();
  }
  // The mirrors are rebuilt (new connections, adaptive state from the top) only when something
  // they depend on may have changed: their settings, the capture rules a rule=NAME can name,
  // the fault draws, or a rules file read again.
  bool mirrors_changed = !next->mirror_rules_file.empty() || !next->mirror_diff_rules.empty() ||
                         !next->mirror_proto_set.empty() || !next->rules_file.empty();
  for (const RecordConfigField* f : changed) {
    mirrors_changed = mirrors_changed || f->path.starts_with("mirroring.") ||
                      f->path.starts_with("capture.") || f->path.starts_with("faults.");
  }
  if (Status st = s.recorder->Reconfigure(*parsed, mirrors_changed); !st.ok()) {
    out.status = st;
    return done();
  }
  RecorderOptions& o = s.options;
  o.rules = parsed->rules;
  o.sample_percent = parsed->sample_percent;
  o.sample_key = parsed->sample_key;
  o.mirror = parsed->mirror;
  o.fault = parsed->fault;
  o.fault_rule = parsed->fault_rule;
  o.fault_rules = parsed->fault_rules;
  for (const RecordConfigField* f : changed) {
    out.changed.push_back(std::string(f->path) + ": " + RecordConfigValueText(*f, s.current) +
                          " -> " + RecordConfigValueText(*f, *next));
  }
  s.current = std::move(next.value());
  out.generation = s.recorder->generation();
  return done();
}

ReloadOutcome Session::Reload(const net::ConfigDoc* doc, std::string origin) {
  return ReloadState(*s_, doc, std::move(origin));
}

Session::Session(std::unique_ptr<State> state) : s_(std::move(state)) {}

Session::~Session() {
  // The summary's status was for the caller to see; a Session dropped without Stop() still
  // leaves a closed record behind when it can.
  (void)Stop();
}

const std::string& Session::name() const { return s_->options.session; }
const RecorderOptions& Session::recorder_options() const { return s_->options; }
const Recorder& Session::recorder() const { return *s_->recorder; }

Result<std::unique_ptr<Session>> Session::Start(SessionOptions f, const Clock& clock) {
  auto s = std::make_unique<State>();
  DOPPEL_ASSIGN_OR_RETURN(auto parsed, ParseOptions(f));
  s->options = std::move(parsed);
  DOPPEL_ASSIGN_OR_RETURN(SinkPlan plan, ParseSinks(f));
  s->store_is_sink = plan.store;
  RecorderOptions& o = s->options;
  o.session = f.name.empty() ? DefaultSessionName(clock.WallUs()) : f.name;
  o.clock = &clock;

  storage::StoreOptions store_options;
  store_options.sync = f.sync;
  store_options.clock = &clock;
  Status st = storage::Store::Open(store_options, f.store_path, &s->store);
  if (!st.ok()) return st.WithContext("opening the store " + f.store_path);

  auto redactor = redact::Redactor::ForStore(f.store_path, f.redact);
  if (!redactor.ok()) return redactor.status();
  s->redactor = std::move(redactor.value());

  v1::SessionInfo info;
  info.set_name(o.session);
  info.set_state(v1::SESSION_STATE_RECORDING);
  info.set_created_us(clock.WallUs());
  info.set_upstream(o.upstream.ToString());
  info.set_source("record");
  info.mutable_sampling()->set_percent(o.sample_percent);
  info.mutable_sampling()->set_key(o.sample_key);
  for (const auto& b : o.rules.blocks()) info.mutable_sampling()->add_rules(b.name);
  std::vector<NamedSink> named;
  for (const stream::RedisUrl& url : plan.redis) {
    RedisSinkOptions ro;
    ro.writer.recorder_id = f.recorder_id.empty() ? stream::DefaultClientName() : f.recorder_id;
    ro.writer.maxlen = f.sink_maxlen;
    ro.shards = f.sink_shards;
    ro.sample_key = f.sample_key;
    ro.optional = f.sink_optional;
    DOPPEL_ASSIGN_OR_RETURN(auto sink, MakeRedisSink(url, ro));
    named.push_back({url.ToString(), sink.get()});
    s->sinks.push_back(std::move(sink));
  }
  if (o.coverage && !f.no_class_history) {
    auto history = LoadClassHistory(*s->store, info.upstream(), o.session);
    if (!history.ok()) return history.status().WithContext("reading class history");
    o.coverage->history = std::move(history->classes);
    o.coverage->history_sessions = std::move(history->sessions);
  }
  if (plan.store) {
    auto created = s->store->CreateSession(info);
    if (!created.ok()) {
      return created.status().WithContext("session '" + o.session +
                                          "' (pick another --session name)");
    }
    s->sinks.insert(s->sinks.begin(), MakeStoreSink(s->store.get(), o.session));
    named.insert(named.begin(), {"store", s->sinks.front().get()});
  }

  // POST /config: the fields the document names, over the configuration in force. Refused
  // (400) with the reason; applied: the new generation and what changed.
  o.post_config = [state = s.get()](std::string_view body) -> AdminReply {
    const bool json = body.find_first_not_of(" \t\r\n") != std::string_view::npos &&
                      body[body.find_first_not_of(" \t\r\n")] == '{';
    auto doc = net::ParseConfig(body, json ? net::ConfigFormat::kJson : net::ConfigFormat::kYaml);
    ReloadOutcome out;
    if (doc.ok()) {
      out = ReloadState(*state, &doc.value(), "POST /config");
    } else {
      out.origin = "POST /config";
      out.status = doc.status();
      {
        std::lock_guard<std::mutex> lock(state->reload_mu);
        if (state->recorder) out.generation = state->recorder->generation();
      }
      if (state->on_reload) state->on_reload(out);
    }
    boost::json::array changed;
    for (const std::string& c : out.changed) changed.emplace_back(c);
    boost::json::object reply{{"applied", out.status.ok()},
                              {"generation", out.generation},
                              {"changed", std::move(changed)}};
    if (!out.status.ok()) reply["error"] = out.status.ToString();
    return {out.status.ok() ? 200u : 400u, "application/json",
            boost::json::serialize(reply) + "\n"};
  };
  s->on_reload = f.on_reload;
  auto started = Recorder::Start(o, std::move(named), s->redactor.get());
  if (!started.ok()) {
    // Nothing was recorded: the session name is free again. A failure to delete leaves an
    // empty RECORDING record (INTERRUPTED on the next open); the start error is the news.
    if (plan.store) (void)s->store->DeleteSession(o.session);
    return started.status();
  }
  std::lock_guard<std::mutex> lock(s->reload_mu);
  s->recorder = std::move(started.value());
  s->summary.name = o.session;
  s->source = std::move(f.config_source);
  if (!s->source) {
    auto own = std::make_shared<RecordConfigSource>();
    own->defaults = f;
    own->flags = f;
    s->source = std::move(own);
  }
  s->current = std::move(f);
  s->summary.mirror_diff = o.mirror.diff;
  return std::unique_ptr<Session>(new Session(std::move(s)));
}

const SessionSummary& Session::Stop() {
  State& s = *s_;
  {
    std::lock_guard<std::mutex> lock(s.reload_mu);
    if (s.stopped) return s.summary;
    s.stopped = true;
  }
  s.recorder->Stop();  // drain, then flush the capture queue
  SessionSummary& sum = s.summary;
  sum.counts = s.recorder->counts();
  sum.mirrors = s.recorder->mirror_counts();
  sum.coverage = s.recorder->coverage();
  const RecorderCounts& c = sum.counts;
  v1::SessionCounts counts;
  counts.set_requests_seen(c.requests);
  counts.set_sampled(c.sampled);
  counts.set_dropped(c.dropped);
  counts.set_errors(c.errors);
  counts.set_first_arrival_us(c.first_arrival_us);
  counts.set_last_arrival_us(c.last_arrival_us);
  if (sum.coverage) {
    for (const ClassStat& k : sum.coverage->classes) {
      v1::ClassCount* row = counts.add_classes();
      row->set_label(*k.label);
      row->set_requests(k.seen);
      row->set_id(k.id);
    }
  }
  const Status closed =
      s.store_is_sink ? s.store->CloseSession(s.options.session, counts) : Status::Ok();
  if (closed.ok() && s.store_is_sink) {
    // Approximate, and only what the summary shows: a failure leaves it unset.
    auto disk = s.store->ApproximateSessionBytes(s.options.session);
    if (disk.ok()) sum.disk_bytes = *disk;
  }
  const Status capture = s.recorder->capture_error();
  if (!closed.ok()) {
    sum.status = closed.WithContext("closing session " + s.options.session);
  } else if (!capture.ok()) {
    sum.status = capture.WithContext(std::to_string(c.dropped) + " envelopes were not stored");
  }
  return sum;
}

}  // namespace doppel::recorder
