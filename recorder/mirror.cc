// Live mirroring (see mirror.h). The Beast/Asio async code is in net/http_client.cc; this
// file only copies requests, decides and counts.
#include "recorder/mirror.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <unordered_set>

#include "base/log.h"
#include "base/strings.h"
#include "base/thread.h"
#include "base/units.h"
#include "base/worker_pool.h"
#include "diff/diff.h"
#include "diff/request_class.h"
#include "net/headers.h"
#include "recorder/sampler.h"

namespace doppel::recorder {

namespace http = boost::beast::http;

namespace {

bool ValidLabel(std::string_view s) {
  if (s.empty() || s.size() > 100) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
           c == ':' || c == '[' || c == ']';
  });
}

bool ValidHeaderName(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool ValidHeaderValue(std::string_view s) {
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// "api:9000" -> "api-shadow:9000", "api" -> "api-shadow", "[::1]:80" -> "[::1]-shadow:80".
std::string ShadowHost(std::string_view host) {
  size_t port = std::string_view::npos;
  const size_t bracket = host.rfind(']');
  const size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    port = colon;
  }
  if (port == std::string_view::npos) return std::string(host) + "-shadow";
  return std::string(host.substr(0, port)) + "-shadow" + std::string(host.substr(port));
}

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A response as compared: without its hop-by-hop headers (the proxy strips them too).
void ToComparable(net::HttpResponse&& res, doppel::v1::HttpResponse* out) {
  net::StripHopByHop(res);
  net::ToProto(std::move(res), out);
}

}  // namespace

Result<MirrorSpec> ParseMirrorSpec(std::string_view text) {
  MirrorSpec spec;
  spec.text = std::string(text);
  const std::vector<std::string> items = net::SplitItems(text);
  const std::string where = "--mirror '" + spec.text + "'";
  auto url = net::ParseUrl(items[0]);
  if (!url.ok()) return url.status().WithContext(where);
  spec.url = url.value();
  spec.name = net::HostPort{spec.url.host, spec.url.port}.ToString();
  bool items_have_percent = false;
  for (size_t i = 1; i < items.size(); ++i) {
    const std::string& item = items[i];
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    auto bad = [&](const std::string& what) {
      return Status::InvalidArgument(where + ": " + what);
    };
    if (key == "insecure" && eq == std::string::npos) {
      spec.tls.verify = false;
      continue;
    }
    if (key == "adaptive" && eq == std::string::npos) {
      spec.adaptive = true;
      continue;
    }
    if (eq == std::string::npos) {
      return bad("'" + item +
                 "' is not KEY=VALUE; known keys: percent, timeout, max-inflight, rule, name, "
                 "set-header, remove-header, ca, cert, key, insecure, fault, adaptive, mode, "
                 "budget");
    }
    if (key == "percent") {
      items_have_percent = true;
      char* end = nullptr;
      const double p = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(p >= 0 && p <= 100)) {
        return bad("percent='" + value + "' must be a number from 0 to 100");
      }
      spec.percent = p;
    } else if (key == "timeout") {
      auto us = ParseDurationUs(value, 1000000);
      if (!us.ok() || us.value() < 1000) {
        return bad("timeout='" + value + "' must be a duration of at least 1ms, e.g. 2s");
      }
      spec.timeout = std::chrono::milliseconds(us.value() / 1000);
    } else if (key == "max-inflight") {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 1 || n > 1000000) {
        return bad("max-inflight='" + value + "' must be a whole number from 1 to 1000000");
      }
      spec.max_inflight = n;
    } else if (key == "rule") {
      if (value.empty()) return bad("rule= needs the name of a match rule");
      spec.rule = value;
    } else if (key == "name") {
      if (!ValidLabel(value)) {
        return bad("name='" + value + "' may only use letters, digits and . _ - :");
      }
      spec.name = value;
    } else if (key == "set-header") {
      const size_t colon = value.find(':');
      const std::string name = value.substr(0, colon);
      std::string v = colon == std::string::npos ? "" : value.substr(colon + 1);
      if (colon == std::string::npos || !ValidHeaderName(name) || !ValidHeaderValue(v)) {
        return bad("set-header='" + value + "' must be NAME:VALUE with a valid header name");
      }
      spec.set_headers.emplace_back(name, std::string(TrimSpaces(v)));
    } else if (key == "remove-header") {
      if (!ValidHeaderName(value)) return bad("remove-header='" + value + "' is not a header name");
      spec.remove_headers.push_back(value);
    } else if (key == "ca") {
      if (value.empty()) return bad("ca= needs a PEM file");
      spec.tls.ca_file = value;
    } else if (key == "cert") {
      if (value.empty()) return bad("cert= needs a PEM certificate file (with key=FILE)");
      spec.tls.cert_file = value;
    } else if (key == "key") {
      if (value.empty()) return bad("key= needs a PEM private key file (with cert=FILE)");
      spec.tls.key_file = value;
    } else if (key == "fault") {
      auto fault = net::ParseFaultSpec(value);
      if (!fault.ok()) return bad(fault.status().message());
      for (const net::Fault& f : fault->faults) {
        if (f.kind != net::FaultKind::kDelay && f.kind != net::FaultKind::kAbort) {
          return bad("fault=" + std::string(net::kFaultKindNames.Name(f.kind)) +
                     ": a mirror takes delay and abort faults (the others shape an answer "
                     "no client sees)");
        }
      }
      spec.fault = std::move(fault.value());
    } else if (key == "mode") {
      if (value != "coverage" && value != "uniform") {
        return bad("mode='" + value + "': give uniform (percent=, the default) or coverage");
      }
      spec.coverage = value == "coverage";
    } else if (key == "budget") {
      auto budget = ParseSampleBudget(value);
      if (!budget.ok()) return bad("budget=: " + budget.status().message());
      spec.budget = std::move(budget.value());
    } else {
      return bad("unknown key '" + key +
                 "'; known keys: percent, timeout, max-inflight, rule, name, set-header, "
                 "remove-header, ca, cert, key, insecure, fault, adaptive, mode, budget");
    }
  }
  const bool has_budget = !spec.budget.text.empty();
  if (spec.coverage && !has_budget) {
    return Status::InvalidArgument(where +
                                   ": mode=coverage needs budget=, e.g. budget=50/s or budget=5%");
  }
  if (has_budget && !spec.coverage) {
    return Status::InvalidArgument(where + ": budget= is for mode=coverage");
  }
  if (spec.coverage && (spec.adaptive || items_have_percent)) {
    return Status::InvalidArgument(
        where + ": mode=coverage chooses copies by class within budget=; it does not go with " +
        (spec.adaptive ? "adaptive" : "percent="));
  }
  if (spec.tls.cert_file.empty() != spec.tls.key_file.empty()) {
    return Status::InvalidArgument(where +
                                   ": cert=FILE and key=FILE go together (the client certificate "
                                   "the mirror asks for, and its private key)");
  }
  if (!spec.tls.cert_file.empty() && !spec.url.tls()) {
    return Status::InvalidArgument(where + ": cert= and key= are for an https:// mirror");
  }
  return spec;
}

// ---------------------------------------------------------------- hub

struct MirrorHub::Target {
  MirrorSpec spec;
  std::shared_ptr<boost::asio::ssl::context> tls;
  const net::MatchBlock* rule = nullptr;
  net::Counter *sent = nullptr, *succeeded = nullptr;
  // By reason (kReasons): copies that failed, requests not copied.
  net::Counter *failed_connect = nullptr, *failed_timeout = nullptr, *failed_reset = nullptr,
               *failed_5xx = nullptr, *failed_other = nullptr;
  net::Counter *dropped_cap = nullptr, *dropped_unavailable = nullptr, *dropped_bytes = nullptr,
               *skipped_sample = nullptr, *skipped_rule = nullptr, *skipped_upload = nullptr;
  // --mirror-diff only (null without it).
  net::Counter *diff_match = nullptr, *diff_mismatch = nullptr, *diff_uncompared = nullptr,
               *diff_skipped = nullptr;
  net::Histogram* latency = nullptr;
  net::Histogram* primary_latency = nullptr;
  std::atomic<uint64_t> inflight{0};
  std::unique_ptr<net::FaultInjector> faults;  // fault=: null without
  // The share copied now: spec.percent, or the adaptive controller's (set by doppel-adapt).
  std::atomic<double> effective_percent{0};
  std::atomic<uint64_t> adaptive_changes{0};   // adaptive: changes so far
  std::unique_ptr<AimdController> controller;  // adaptive only; doppel-adapt's
  AdaptiveSignals last_signals;                // doppel-adapt's; read under the hub's adapt_mu_
  SignalWindow attempts{0};                    // sent, failed + dropped (adaptive only)
  // Steady-clock ns until which copies are dropped after a failed connect (0: never failed).
  std::atomic<int64_t> unavailable_until_ns{0};
  // mode=coverage: every lane's sampler, for /status (Published() is thread-safe).
  mutable std::mutex samplers_mu;
  std::vector<std::shared_ptr<const CoverageSampler>> samplers;

  // Copies that failed and requests not copied, by reason: each row names a counter above,
  // its count in MirrorCounts, and the reason as /metrics labels it and /status keys it.
  struct Reason {
    bool failed;  // doppel_mirror_failed_total ("failed" in /status); else dropped
    const char* name;
    net::Counter* Target::*counter;
    uint64_t MirrorCounts::*count;
  };
  static const Reason kReasons[11];

  // --mirror-diff: how often each (endpoint, field path) differed — the field path alone
  // ("body.id") does not say which endpoint differs. Bounded; the rest is counted under
  // the path "(other)".
  static constexpr size_t kMaxPaths = 200;
  mutable std::mutex paths_mu;
  std::map<std::pair<std::string, std::string>, uint64_t> diff_paths;

  void CountPath(const std::string& endpoint, const std::string& path) {
    std::lock_guard<std::mutex> lock(paths_mu);
    auto it = diff_paths.find({endpoint, path});
    if (it != diff_paths.end()) {
      ++it->second;
    } else if (diff_paths.size() < kMaxPaths) {
      diff_paths.emplace(std::make_pair(endpoint, path), 1);
    } else {
      ++diff_paths[{"", "(other)"}];
    }
  }
};

const MirrorHub::Target::Reason MirrorHub::Target::kReasons[] = {
    {true, "connect", &Target::failed_connect, &MirrorCounts::failed_connect},
    {true, "timeout", &Target::failed_timeout, &MirrorCounts::failed_timeout},
    {true, "reset", &Target::failed_reset, &MirrorCounts::failed_reset},
    {true, "5xx", &Target::failed_5xx, &MirrorCounts::failed_5xx},
    {true, "bad_response", &Target::failed_other, &MirrorCounts::failed_other},
    {false, "max_inflight", &Target::dropped_cap, &MirrorCounts::dropped_cap},
    {false, "sampling", &Target::skipped_sample, &MirrorCounts::skipped_sample},
    {false, "rule", &Target::skipped_rule, &MirrorCounts::skipped_rule},
    {false, "unavailable", &Target::dropped_unavailable, &MirrorCounts::dropped_unavailable},
    {false, "max_bytes", &Target::dropped_bytes, &MirrorCounts::dropped_bytes},
    {false, "request_streamed", &Target::skipped_upload, &MirrorCounts::skipped_upload},
};

MirrorHub::MirrorHub(MirrorOptions options) : options_(std::move(options)) {}

MirrorHub::~MirrorHub() { StopAdaptive(); }

void MirrorHub::StopAdaptive() {
  {
    std::lock_guard<std::mutex> lock(adapt_mu_);
    adapt_stop_ = true;
  }
  adapt_cv_.notify_all();
  if (adapt_thread_.joinable()) adapt_thread_.join();
}

Result<std::unique_ptr<MirrorHub>> MirrorHub::Create(MirrorOptions options,
                                                     const net::MatchRules& capture_rules,
                                                     net::MetricsRegistry& registry) {
  std::unique_ptr<MirrorHub> hub(new MirrorHub(std::move(options)));
  hub->capture_rules_ = capture_rules;
  const MirrorOptions& o = hub->options_;
  if (o.max_inflight_bytes == 0) {
    return Status::InvalidArgument("--mirror-max-inflight-bytes must be above 0");
  }
  for (const auto& [name, value] : o.set_headers) {
    if (!ValidHeaderName(name) || !ValidHeaderValue(value)) {
      return Status::InvalidArgument("--mirror-set-header '" + name + "=" + value +
                                     "': give NAME=VALUE with a valid header name");
    }
  }
  for (const auto& name : o.remove_headers) {
    if (!ValidHeaderName(name)) {
      return Status::InvalidArgument("--mirror-remove-header '" + name + "' is not a header name");
    }
  }
  if (o.diff) {
    if (o.diff_threads < 1 || o.diff_queue < 1) {
      return Status::InvalidArgument("--mirror-diff needs at least 1 diff thread and queue slot");
    }
    if (o.differ) {
      hub->differ_ = o.differ;
    } else {
      diff::DiffConfig config;
      config.rules = o.diff_rules;
      config.grpc_schema = o.grpc_schema;
      config.max_diffs = 20;
      config.max_listed_paths = 20;
      auto d = diff::Differ::Create(std::move(config));
      if (!d.ok()) return d.status().WithContext("--mirror-diff-rules");
      hub->differ_ = std::move(d.value());
    }
    hub->diff_pool_ = std::make_unique<WorkerPool>("doppel-mdiff", o.diff_threads, o.diff_queue);
  }
  bool any_adaptive = false;
  for (const MirrorSpec& spec : o.mirrors) any_adaptive = any_adaptive || spec.adaptive;
  if (any_adaptive && o.budget.empty()) {
    return Status::InvalidArgument(
        "an adaptive mirror needs --mirror-budget, e.g. --mirror-budget p99=20ms,errors=5%");
  }
  if (!any_adaptive && !o.budget.empty()) {
    return Status::InvalidArgument(
        "--mirror-budget applies to adaptive mirrors: add ',adaptive' to a --mirror");
  }
  if (o.adaptive_tick.count() <= 0 || o.adaptive_window < 1) {
    return Status::InvalidArgument("the adaptive controller needs a tick and a window");
  }
  std::unordered_set<std::string> names;
  for (const MirrorSpec& spec : o.mirrors) {
    auto t = std::make_unique<Target>();
    t->spec = spec;
    t->effective_percent.store(spec.percent, std::memory_order_relaxed);
    if (spec.adaptive) {
      t->controller = std::make_unique<AimdController>(spec.percent, o.budget);
      t->attempts = SignalWindow(o.adaptive_window);
    }
    if (!names.insert(spec.name).second) {
      return Status::InvalidArgument(
          "two mirrors are named '" + spec.name +
          "': give each a distinct name= (e.g. --mirror URL,name=staging-b)");
    }
    if (!spec.rule.empty()) {
      t->rule = o.rules.Find(spec.rule);
      if (t->rule == nullptr) t->rule = hub->capture_rules_.Find(spec.rule);
      if (t->rule == nullptr) {
        return Status::InvalidArgument(
            "--mirror '" + spec.text + "': no match rule named '" + spec.rule +
            "'; define it with --mirror-match 'name=" + spec.rule + ",...' (or --match / --rules)");
      }
    }
    if (spec.url.tls()) {
      auto ctx = net::MakeClientTlsContext(spec.tls);
      if (!ctx.ok()) return ctx.status().WithContext("--mirror '" + spec.text + "'");
      t->tls = std::move(ctx.value());
    }
    if (!spec.fault.empty()) {
      t->faults = std::make_unique<net::FaultInjector>(
          net::FaultInjector::Options{spec.fault, o.fault_seed, o.max_active_faults, false,
                                      nullptr},
          "mirror:" + spec.name, &registry);
    }
    const std::string l = "mirror=\"" + spec.name + "\"";
    t->sent =
        registry.AddCounter("doppel_mirror_sent_total", "Request copies sent to a mirror.", l);
    t->succeeded = registry.AddCounter("doppel_mirror_succeeded_total",
                                       "Mirror copies answered with a status below 500.", l);
    for (const Target::Reason& r : Target::kReasons) {
      (*t).*r.counter = r.failed
                            ? registry.AddCounter("doppel_mirror_failed_total",
                                                  "Mirror copies that failed, by reason.",
                                                  l + ",reason=\"" + r.name + "\"")
                            : registry.AddCounter("doppel_mirror_dropped_total",
                                                  "Requests not copied to a mirror, by reason.",
                                                  l + ",reason=\"" + r.name + "\"");
    }
    Target* raw = t.get();
    registry.AddGaugeFunction(
        "doppel_mirror_effective_percent",
        "Share of (rule-matching) requests copied to the mirror now: its percent=, or for an "
        "adaptive mirror the controller's.",
        [raw] { return raw->effective_percent.load(std::memory_order_relaxed); }, l);
    registry.AddGaugeFunction(
        "doppel_mirror_inflight", "Mirror copies sent and not yet answered or failed.",
        [raw] { return static_cast<double>(raw->inflight.load(std::memory_order_relaxed)); }, l);
    t->latency = registry.AddHistogram("doppel_mirror_latency_seconds",
                                       "Mirror latency: copy sent to last response byte.",
                                       net::Histogram::DefaultLatencyBoundsUs(), l);
    t->primary_latency = registry.AddHistogram(
        "doppel_mirror_primary_latency_seconds",
        "Primary latency of the requests copied to this mirror (to compare with the mirror's).",
        net::Histogram::DefaultLatencyBoundsUs(), l);
    if (o.diff) {
      const char* h = "Mirror responses compared with the primary's (--mirror-diff), by result.";
      t->diff_match = registry.AddCounter("doppel_mirror_diff_total", h, l + ",result=\"match\"");
      t->diff_mismatch =
          registry.AddCounter("doppel_mirror_diff_total", h, l + ",result=\"mismatch\"");
      t->diff_uncompared =
          registry.AddCounter("doppel_mirror_diff_total", h, l + ",result=\"uncompared\"");
      t->diff_skipped = registry.AddCounter(
          "doppel_mirror_diff_skipped_total",
          "Mirror responses not compared because the diff queue was full (--mirror-diff).", l);
    }
    hub->targets_.push_back(std::move(t));
  }
  MirrorHub* raw_hub = hub.get();
  registry.AddGaugeFunction(
      "doppel_mirror_inflight_bytes",
      "Request bytes held by mirror copies in flight, all mirrors (see max_inflight_bytes).",
      [raw_hub] { return static_cast<double>(raw_hub->inflight_bytes()); });
  return hub;
}

Result<std::unique_ptr<MirrorLane>> MirrorHub::MakeLane(boost::asio::io_context& io) {
  std::vector<net::HttpClientPoolPtr> pools;
  for (const auto& t : targets_) {
    net::ClientOptions co;
    co.connect_timeout = t->spec.timeout;
    co.response_timeout = t->spec.timeout;
    co.max_idle_connections = std::min<size_t>(t->spec.max_inflight, 256);
    co.max_response_body = options_.max_response_body;
    auto pool = net::HttpClientPool::Create(io, t->spec.url, co, t->tls);
    if (!pool.ok()) return pool.status().WithContext("--mirror '" + t->spec.text + "'");
    pools.push_back(std::move(pool.value()));
  }
  std::random_device rd;
  const uint64_t seed = (uint64_t{rd()} << 32) ^ rd();
  std::unique_ptr<MirrorLane> lane(new MirrorLane(*this, io, std::move(pools), seed));
  for (const auto& t : targets_) {
    std::shared_ptr<CoverageSampler> sampler;
    if (t->spec.coverage) {
      CoverageOptions c;
      c.budget = t->spec.budget;
      // Each lane spends its share of a rate; a share of the requests is the same share of
      // each lane's.
      c.budget.per_second /= static_cast<double>(std::max<size_t>(1, options_.threads));
      sampler = std::make_shared<CoverageSampler>(std::move(c), *options_.clock);
      std::lock_guard<std::mutex> lock(t->samplers_mu);
      t->samplers.push_back(sampler);
    }
    lane->coverage_.push_back(std::move(sampler));
  }
  return lane;
}

std::vector<MirrorCounts> MirrorHub::counts() const {
  std::vector<MirrorCounts> out;
  for (const auto& t : targets_) {
    MirrorCounts c;
    c.name = t->spec.name;
    c.url = t->spec.url.ToString();
    c.sent = t->sent->value();
    c.succeeded = t->succeeded->value();
    for (const Target::Reason& r : Target::kReasons) {
      c.*r.count = ((*t).*r.counter)->value();
      if (r.failed) c.failed += c.*r.count;
    }
    c.inflight = t->inflight.load(std::memory_order_relaxed);
    if (t->diff_match != nullptr) {
      c.diff_match = t->diff_match->value();
      c.diff_mismatch = t->diff_mismatch->value();
      c.diff_uncompared = t->diff_uncompared->value();
      c.diff_skipped = t->diff_skipped->value();
    }
    c.effective_percent = t->effective_percent.load(std::memory_order_relaxed);
    c.adaptive_changes = t->adaptive_changes.load(std::memory_order_relaxed);
    if (t->faults) {
      c.faults_delayed = t->faults->injected(net::FaultKind::kDelay);
      c.faults_aborted = t->faults->injected(net::FaultKind::kAbort);
    }
    out.push_back(std::move(c));
  }
  return out;
}

void MirrorHub::StartAdaptive(const net::Histogram& primary_latency) {
  bool any = false;
  for (const auto& t : targets_) any = any || t->controller != nullptr;
  if (!any || adapt_thread_.joinable()) return;
  adapt_thread_ = std::thread([this, h = &primary_latency] { AdaptLoop(h); });
  NameThread(adapt_thread_, "doppel-adapt");
}

// Each tick: the signals over the window, then each adaptive mirror's controller.
void MirrorHub::AdaptLoop(const net::Histogram* primary_latency) {
  const size_t buckets = primary_latency->bounds_us().size() + 1;
  SignalWindow latency(options_.adaptive_window);  // the primary's histogram buckets
  SignalWindow cpu(options_.adaptive_window);      // process CPU µs, wall µs
  const double cores = std::max(1u, std::thread::hardware_concurrency());
  auto wall_us = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  };
  std::unique_lock<std::mutex> lock(adapt_mu_);
  for (;;) {
    std::vector<uint64_t> counts(buckets);
    for (size_t i = 0; i < buckets; ++i) counts[i] = primary_latency->bucket(i);
    latency.Push(std::move(counts));
    cpu.Push({ProcessCpuUs(), wall_us()});
    AdaptiveSignals shared;
    const std::vector<uint64_t> lat = latency.Delta();
    if (std::any_of(lat.begin(), lat.end(), [](uint64_t c) { return c > 0; })) {
      shared.primary_p99_us = net::QuantileUsFromBuckets(lat, primary_latency->bounds_us(), 0.99);
    }
    const std::vector<uint64_t> c = cpu.Delta();
    if (c[1] > 0) shared.cpu_percent = 100.0 * static_cast<double>(c[0]) / (c[1] * cores);
    for (const auto& t : targets_) {
      if (!t->controller) continue;
      // Attempts: copies sent or dropped (over the caps, or while unavailable); bad ones:
      // those dropped, and those sent that failed (connect, timeout, reset, 5xx, bad).
      uint64_t failed = 0;
      for (const Target::Reason& r : Target::kReasons) {
        if (r.failed) failed += ((*t).*r.counter)->value();
      }
      const uint64_t dropped =
          t->dropped_cap->value() + t->dropped_bytes->value() + t->dropped_unavailable->value();
      t->attempts.Push({t->sent->value() + dropped, failed + dropped});
      const std::vector<uint64_t> a = t->attempts.Delta();
      AdaptiveSignals signals = shared;
      if (a[0] > 0) {
        signals.errors_percent =
            std::min(100.0, 100.0 * static_cast<double>(a[1]) / static_cast<double>(a[0]));
      }
      const double before = t->controller->effective();
      const std::string reason = t->controller->Tick(signals);
      t->last_signals = signals;
      t->effective_percent.store(t->controller->effective(), std::memory_order_relaxed);
      if (!reason.empty()) {
        t->adaptive_changes.fetch_add(1, std::memory_order_relaxed);
        char line[512];
        std::snprintf(line, sizeof line, "mirror '%s' at %.3g%% (was %.3g%%): %s",
                      t->spec.name.c_str(), t->controller->effective(), before, reason.c_str());
        if (options_.log) {
          options_.log(line);
        } else {
          log::Info({"mirror", "doppel record"}, line,
                    {{"mirror", t->spec.name},
                     {"percent", t->controller->effective()},
                     {"was", before},
                     {"reason", reason}});
        }
      }
    }
    if (adapt_cv_.wait_for(lock, options_.adaptive_tick, [this] { return adapt_stop_; })) return;
  }
}

void MirrorHub::DrainDiffs() {
  if (diff_pool_) diff_pool_->Drain();
}

uint64_t MirrorHub::inflight() const {
  uint64_t n = 0;
  for (const auto& t : targets_) n += t->inflight.load(std::memory_order_relaxed);
  return n;
}

boost::json::array MirrorHub::StatusJson() const {
  boost::json::array out;
  const std::vector<MirrorCounts> all = counts();
  for (size_t i = 0; i < targets_.size(); ++i) {
    const Target& t = *targets_[i];
    const MirrorCounts& c = all[i];
    boost::json::object o;
    o["name"] = c.name;
    o["url"] = c.url;
    o["percent"] = t.spec.percent;
    o["rule"] = t.spec.rule;
    o["timeout_ms"] = t.spec.timeout.count();
    o["max_inflight"] = t.spec.max_inflight;
    o["sent"] = c.sent;
    o["succeeded"] = c.succeeded;
    boost::json::object failed, dropped;
    for (const Target::Reason& r : Target::kReasons)
      (r.failed ? failed : dropped)[r.name] = c.*r.count;
    o["failed"] = std::move(failed);
    o["dropped"] = std::move(dropped);
    o["inflight"] = c.inflight;
    if (t.faults) o["faults"] = t.faults->StatusJson();
    o["effective_percent"] = c.effective_percent;
    if (t.controller) {
      std::lock_guard<std::mutex> lock(adapt_mu_);
      boost::json::object a{{"state", t.controller->state()},
                            {"budget", options_.budget.ToString()},
                            {"last_change", t.controller->last_reason()}};
      const AdaptiveSignals& sig = t.last_signals;
      a["primary_p99_us_le"] = sig.primary_p99_us ? boost::json::value(*sig.primary_p99_us)
                                                  : boost::json::value(nullptr);
      a["cpu_percent"] =
          sig.cpu_percent ? boost::json::value(*sig.cpu_percent) : boost::json::value(nullptr);
      a["errors_percent"] = sig.errors_percent ? boost::json::value(*sig.errors_percent)
                                               : boost::json::value(nullptr);
      o["adaptive"] = std::move(a);
    }
    if (t.spec.coverage) {
      std::vector<std::shared_ptr<const CoverageSnapshot>> parts;
      {
        std::lock_guard<std::mutex> lock(t.samplers_mu);
        for (const auto& s : t.samplers) parts.push_back(s->Published());
      }
      const CoverageSnapshot cov = MergeSnapshots(parts);
      uint64_t covered = 0;
      for (const ClassStat& k : cov.classes) covered += k.kept > 0;
      o["mode"] = "coverage";
      o["coverage"] = {{"budget", t.spec.budget.text},
                       {"classes_seen", cov.classes.size()},
                       {"classes_covered", covered},
                       {"decisions", cov.decisions},
                       {"kept", cov.kept}};
    }
    // Paired: the primary's latency over the same requests that went to this mirror.
    o["latency_p50_us_le"] = t.latency->ApproximateQuantileUs(0.5);
    o["latency_p99_us_le"] = t.latency->ApproximateQuantileUs(0.99);
    o["primary_latency_p50_us_le"] = t.primary_latency->ApproximateQuantileUs(0.5);
    o["primary_latency_p99_us_le"] = t.primary_latency->ApproximateQuantileUs(0.99);
    if (options_.diff) {
      boost::json::object d{{"match", c.diff_match},
                            {"mismatch", c.diff_mismatch},
                            {"uncompared", c.diff_uncompared},
                            {"skipped", c.diff_skipped}};
      std::vector<std::pair<std::pair<std::string, std::string>, uint64_t>> paths;
      {
        std::lock_guard<std::mutex> lock(t.paths_mu);
        paths.assign(t.diff_paths.begin(), t.diff_paths.end());
      }
      std::sort(paths.begin(), paths.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
      });
      if (paths.size() > 20) paths.resize(20);
      boost::json::array top;
      for (const auto& [key, n] : paths) {
        top.push_back({{"endpoint", key.first}, {"path", key.second}, {"count", n}});
      }
      d["top_paths"] = std::move(top);
      o["diff"] = std::move(d);
    }
    out.push_back(std::move(o));
  }
  return out;
}

// ---------------------------------------------------------------- lane

namespace {
// What a copy of `r` holds: the head as serialized (roughly) and the body.
uint64_t ApproximateBytes(const net::HttpRequest& r) {
  uint64_t n = r.method_string().size() + r.target().size() + 12 + r.body().size();
  for (const auto& f : r) n += f.name_string().size() + f.value().size() + 4;
  return n;
}
}  // namespace

MirrorLane::MirrorLane(MirrorHub& hub, boost::asio::io_context& io,
                       std::vector<net::HttpClientPoolPtr> pools, uint64_t seed)
    : hub_(hub), io_(io), pools_(std::move(pools)), rng_(seed) {}

MirrorLane::~MirrorLane() = default;

double MirrorLane::NextUniform() {
  return static_cast<double>(rng_.Next() >> 11) * (100.0 / 9007199254740992.0);  // [0,100)
}

std::shared_ptr<MirroredRequest> MirrorLane::Dispatch(const net::HttpRequest& request,
                                                      const net::RequestView& view) {
  return Send(request, view, Select(view));
}

std::vector<size_t> MirrorLane::Select(const net::RequestView& view) {
  const MirrorOptions& o = hub_.options_;
  std::vector<size_t> chosen;
  const double shared_draw = o.same_sample ? NextUniform() : 0;
  for (size_t i = 0; i < hub_.targets_.size(); ++i) {
    MirrorHub::Target& t = *hub_.targets_[i];
    if (t.rule != nullptr && !net::BlockMatches(*t.rule, view)) {
      t.skipped_rule->Inc();
      continue;
    }
    const double draw = o.same_sample ? shared_draw : NextUniform();
    if (!t.spec.coverage && !(draw < t.effective_percent.load(std::memory_order_relaxed))) {
      t.skipped_sample->Inc();
      continue;
    }
    chosen.push_back(i);
  }
  return chosen;
}

std::unique_ptr<MirrorUpload> MirrorLane::HoldUpload(const net::HttpRequest& head,
                                                     const net::RequestView& view) {
  std::vector<size_t> chosen = Select(view);
  if (chosen.empty()) return nullptr;
  std::unique_ptr<MirrorUpload> upload(new MirrorUpload(*this, head, std::move(chosen)));
  // The proxy checked the Content-Length (digits only) before forwarding.
  uint64_t length = 0;
  const auto declared = head[http::field::content_length];
  std::from_chars(declared.data(), declared.data() + declared.size(), length);
  if (length > hub_.options_.max_inflight_bytes) {  // it could never be held
    upload->GiveUp();
    return nullptr;
  }
  return upload;
}

std::shared_ptr<MirroredRequest> MirrorLane::Send(const net::HttpRequest& request,
                                                  const net::RequestView& view,
                                                  const std::vector<size_t>& chosen,
                                                  net::HttpRequest* spare) {
  const MirrorOptions& o = hub_.options_;
  std::shared_ptr<MirroredRequest> mirrored;
  uint64_t bytes = 0;  // of `request`, computed for the first copy
  for (const size_t& i : chosen) {
    MirrorHub::Target& t = *hub_.targets_[i];
    net::FaultPlan fault;
    if (t.faults) {
      fault = t.faults->Draw(view);
      if (fault.abort_status != 0) continue;  // an aborted copy is not sent (counted there)
    }
    const int64_t until = t.unavailable_until_ns.load(std::memory_order_relaxed);
    if (until != 0 && SteadyNowNs() < until) {
      t.dropped_unavailable->Inc();
      continue;
    }
    if (t.inflight.fetch_add(1, std::memory_order_relaxed) >= t.spec.max_inflight) {
      t.inflight.fetch_sub(1, std::memory_order_relaxed);
      t.dropped_cap->Inc();
      continue;
    }
    if (bytes == 0) bytes = ApproximateBytes(request);
    if (hub_.inflight_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes >
        o.max_inflight_bytes) {
      hub_.inflight_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
      t.inflight.fetch_sub(1, std::memory_order_relaxed);
      t.dropped_bytes->Inc();
      continue;
    }
    if (!mirrored) {
      mirrored = std::make_shared<MirroredRequest>(hub_, std::string(request.method_string()),
                                                   std::string(request.target()));
    }
    // `request` is *spare when there is one: not read after it was moved from.
    net::HttpRequest copy = spare != nullptr && &i == &chosen.back() ? std::move(*spare) : request;
    if (!t.spec.url.base_path.empty()) copy.target(t.spec.url.TargetFor(copy.target()));
    if (o.shadow_suffix) {
      auto host = copy.find(http::field::host);
      if (host != copy.end()) copy.set(http::field::host, ShadowHost(host->value()));
    }
    copy.erase(http::field::expect);
    for (const auto& name : o.remove_headers) copy.erase(name);
    for (const auto& [name, value] : o.set_headers) copy.set(name, value);
    for (const auto& name : t.spec.remove_headers) copy.erase(name);
    for (const auto& [name, value] : t.spec.set_headers) copy.set(name, value);
    const size_t slot = mirrored->slots_.size();
    MirroredRequest::Slot& new_slot = mirrored->slots_.emplace_back();
    new_slot.mirror = i;
    new_slot.bytes = bytes;
    // Sends the copy for `owner` (taken when it goes, so a held copy does not keep its own
    // MirroredRequest alive). The callback runs later on this thread (never inside Send). A
    // fault's slot is held until the copy ends.
    auto go = [pool = pools_[i].get(), io = &io_, copy = std::move(copy), slot,
               active = fault.active,
               delay = fault.delay](const std::shared_ptr<MirroredRequest>& owner) mutable {
      auto send = [pool, copy = std::move(copy), owner, slot, active]() mutable {
        pool->Send(std::move(copy), [owner, slot, active](net::ExchangeResult&& r) {
          owner->OnMirror(slot, std::move(r));
        });
      };
      if (!delay) return send();
      // A delayed copy waits on its own timer (in flight meanwhile); at shutdown the io
      // context drops the timer, its copy and the MirroredRequest with it.
      auto timer = std::make_shared<boost::asio::steady_timer>(*io, *delay);
      timer->async_wait([timer, send = std::move(send)](boost::system::error_code ec) mutable {
        if (!ec) send();
      });
    };
    if (t.spec.coverage) {
      new_slot.deferred = std::move(go);
      new_slot.sampler = coverage_[i].get();
      new_slot.draw = rng_.Next();
      continue;
    }
    t.sent->Inc();
    go(mirrored);
  }
  return mirrored;
}

void MirrorLane::Shutdown() {
  for (auto& p : pools_) p->Shutdown();
}

// ---------------------------------------------------------------- a streamed request's copy

MirrorUpload::MirrorUpload(MirrorLane& lane, net::HttpRequest head, std::vector<size_t> chosen)
    : hub_(lane.hub_), lane_(lane), request_(std::move(head)), chosen_(std::move(chosen)) {
  request_.body().clear();
}

MirrorUpload::~MirrorUpload() {
  if (!over_) GiveUp();
}

bool MirrorUpload::Append(std::string_view piece) {
  if (over_) return false;
  std::atomic<uint64_t>& inflight = hub_.inflight_bytes_;
  if (inflight.fetch_add(piece.size(), std::memory_order_relaxed) + piece.size() >
      hub_.options_.max_inflight_bytes) {
    inflight.fetch_sub(piece.size(), std::memory_order_relaxed);
    GiveUp();
    return false;
  }
  held_ += piece.size();
  request_.body().append(piece);
  return true;
}

void MirrorUpload::GiveUp() {
  over_ = true;
  hub_.inflight_bytes_.fetch_sub(held_, std::memory_order_relaxed);
  held_ = 0;
  for (const size_t i : chosen_) hub_.targets_[i]->skipped_upload->Inc();
  request_ = {};
}

std::shared_ptr<MirroredRequest> MirrorUpload::Send(const net::RequestView& view) {
  if (over_) return nullptr;
  over_ = true;
  // The held bytes become the copies' own (each counted as it goes, as Dispatch does); the
  // last copy takes the held request itself, so a large body is not held twice.
  hub_.inflight_bytes_.fetch_sub(held_, std::memory_order_relaxed);
  held_ = 0;
  return lane_.Send(request_, view, chosen_, &request_);
}

// ---------------------------------------------------------------- one mirrored request

MirroredRequest::MirroredRequest(MirrorHub& hub, std::string method, std::string target)
    : hub_(hub), method_(std::move(method)), target_(std::move(target)) {}

MirroredRequest::~MirroredRequest() {
  // The client went away before the primary answered: held copies are not sent, answered
  // copies were never compared.
  for (Slot& s : slots_) {
    if (s.deferred) Release(s);
  }
  if (!hub_.differ_ || primary_ != Primary::kPending) return;
  for (const Slot& s : slots_) {
    if (s.done && !s.skipped) hub_.targets_[s.mirror]->diff_uncompared->Inc();
  }
}

void MirroredRequest::Release(Slot& slot) {
  MirrorHub::Target& t = *hub_.targets_[slot.mirror];
  t.inflight.fetch_sub(1, std::memory_order_relaxed);
  hub_.inflight_bytes_.fetch_sub(slot.bytes, std::memory_order_relaxed);
  t.skipped_sample->Inc();
  slot.deferred = nullptr;
  slot.skipped = slot.done = true;
}

void MirroredRequest::Decide(const net::HttpResponse* response, bool body_complete) {
  std::shared_ptr<MirroredRequest> self;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.deferred) continue;
    if (response == nullptr) {
      Release(s);
      continue;
    }
    const std::string shape = diff::ResponseShape((*response)[http::field::content_type],
                                                  (*response)[http::field::content_encoding],
                                                  response->body(), body_complete);
    const std::string label = diff::ClassLabel(hub_.options_.class_endpoints, method_, target_,
                                               response->result_int(), shape);
    if (!s.sampler->Decide(Sampler::HashKey(label), label, s.draw).keep) {
      Release(s);
      continue;
    }
    if (!self) self = shared_from_this();
    hub_.targets_[s.mirror]->sent->Inc();
    auto go = std::move(s.deferred);
    s.deferred = nullptr;
    go(self);
  }
}

void MirroredRequest::OnMirror(size_t index, net::ExchangeResult&& result) {
  Slot& slot = slots_[index];
  MirrorHub::Target& t = *hub_.targets_[slot.mirror];
  t.inflight.fetch_sub(1, std::memory_order_relaxed);
  hub_.inflight_bytes_.fetch_sub(slot.bytes, std::memory_order_relaxed);
  slot.done = true;
  switch (result.error) {
    case net::ClientError::kNone: {
      t.latency->ObserveUs(result.latency_us);
      const unsigned status = result.response.result_int();
      (status >= 500 ? t.failed_5xx : t.succeeded)->Inc();
      slot.ok = true;
      if (hub_.differ_) {
        ToComparable(std::move(result.response), &slot.response);
        net::CopyHeaders(result.trailers, slot.response.mutable_trailers());
      }
      break;
    }
    case net::ClientError::kConnect:
      t.failed_connect->Inc();
      t.unavailable_until_ns.store(
          SteadyNowNs() + std::chrono::nanoseconds(MirrorHub::kUnavailableHold).count(),
          std::memory_order_relaxed);
      break;
    case net::ClientError::kTimeout:
      t.failed_timeout->Inc();
      break;
    case net::ClientError::kReset:
      t.failed_reset->Inc();
      break;
    default:
      t.failed_other->Inc();
      break;
  }
  if (hub_.differ_ && primary_ != Primary::kPending) Compare(slot);
}

void MirroredRequest::OnPrimary(const net::HttpResponse& response,
                                const boost::beast::http::fields& trailers, uint64_t latency_us,
                                bool body_complete) {
  Decide(&response, body_complete);
  for (const Slot& s : slots_) {
    if (!s.skipped) hub_.targets_[s.mirror]->primary_latency->ObserveUs(latency_us);
  }
  if (!body_complete) return OnPrimaryFailed();
  primary_ = Primary::kOk;
  if (!hub_.differ_) return;
  net::HttpResponse copy = response;
  auto primary = std::make_shared<doppel::v1::HttpResponse>();
  ToComparable(std::move(copy), primary.get());
  net::CopyHeaders(trailers, primary->mutable_trailers());
  primary_response_ = std::move(primary);
  for (Slot& s : slots_) {
    if (s.done && !s.skipped) Compare(s);
  }
}

void MirroredRequest::OnPrimaryFailed() {
  Decide(nullptr, false);
  primary_ = Primary::kFailed;
  if (!hub_.differ_) return;
  for (Slot& s : slots_) {
    if (s.done && !s.skipped) Compare(s);
  }
}

// On the lane's thread: hands the comparison to the diff threads without waiting.
void MirroredRequest::Compare(Slot& slot) {
  MirrorHub::Target* t = hub_.targets_[slot.mirror].get();
  if (primary_ != Primary::kOk || !slot.ok) {
    t->diff_uncompared->Inc();
    return;
  }
  auto actual = std::make_shared<const doppel::v1::HttpResponse>(std::move(slot.response));
  slot.response.Clear();
  const diff::Differ* differ = hub_.differ_.get();
  const bool posted = hub_.diff_pool_->TryPost(
      [t, differ, method = method_, target = target_, primary = primary_response_, actual] {
        const diff::DiffResult r = differ->Compare(method, target, *primary, *actual);
        if (r.match) {
          t->diff_match->Inc();
        } else {
          t->diff_mismatch->Inc();
          for (const auto& d : r.diffs) t->CountPath(r.endpoint, d.path);
        }
      });
  if (!posted) t->diff_skipped->Inc();
}

}  // namespace doppel::recorder
