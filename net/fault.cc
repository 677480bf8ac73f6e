#include "net/fault.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdlib>
#include <utility>

#include "base/strings.h"
#include "base/units.h"

namespace doppel::net {

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

constexpr std::string_view kGrammar =
    "expected KIND[:ARG]:PERCENT% joined with '+': delay:200ms:10%, abort:503:5%, "
    "abort:grpc=14:5%, reset:1%, bandwidth:64KiB:100%, truncate:1%";

// Splits on `sep`, keeping empty pieces.
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

Result<double> ParsePercentItem(std::string_view text) {
  if (text.empty() || text.back() != '%') {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a percentage; write it with %, e.g. 10%");
  }
  const std::string number(text.substr(0, text.size() - 1));
  char* end = nullptr;
  const double p = std::strtod(number.c_str(), &end);
  if (number.empty() || *end != '\0' || !(p >= 0 && p <= 100)) {
    return Status::InvalidArgument("'" + std::string(text) + "' must be from 0% to 100%");
  }
  return p;
}

Result<unsigned> ParseWhole(std::string_view text, unsigned lo, unsigned hi,
                            std::string_view what) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not " + std::string(what) +
                                   " (" + std::to_string(lo) + " to " + std::to_string(hi) + ")");
  }
  return v;
}

Result<Fault> ParseFault(std::string_view item) {
  const std::vector<std::string_view> parts = Split(item, ':');
  DOPPEL_ASSIGN_OR_RETURN(FaultKind kind, kFaultKindNames.ParseOrError(parts[0], "fault kind"));
  const bool takes_arg = kind != FaultKind::kReset && kind != FaultKind::kTruncate;
  if (parts.size() != (takes_arg ? 3u : 2u)) {
    return Status::InvalidArgument(
        std::string(parts[0]) +
        (takes_arg ? " takes an argument and a percentage, e.g. " : " takes a percentage, e.g. ") +
        (kind == FaultKind::kDelay       ? "delay:200ms:10%"
         : kind == FaultKind::kAbort     ? "abort:503:5% or abort:grpc=14:5%"
         : kind == FaultKind::kBandwidth ? "bandwidth:64KiB:100%"
         : kind == FaultKind::kReset     ? "reset:1%"
                                         : "truncate:1%"));
  }
  Fault f;
  f.kind = kind;
  DOPPEL_ASSIGN_OR_RETURN(f.percent, ParsePercentItem(parts.back()));
  if (!takes_arg) return f;
  const std::string_view arg = parts[1];
  switch (kind) {
    case FaultKind::kDelay: {
      auto us = ParseDurationUs(arg, 1000);
      if (!us.ok() || us.value() < 1000 || us.value() > 3'600'000'000ull) {
        return Status::InvalidArgument("delay '" + std::string(arg) +
                                       "' must be a duration from 1ms to 1h, e.g. 200ms");
      }
      f.delay = std::chrono::milliseconds(us.value() / 1000);
      return f;
    }
    case FaultKind::kAbort:
      if (arg.starts_with("grpc=")) {
        DOPPEL_ASSIGN_OR_RETURN(unsigned code,
                                ParseWhole(arg.substr(5), 1, 16, "a gRPC status code"));
        f.grpc_status = static_cast<int>(code);
        f.http_status = 200;
      } else {
        DOPPEL_ASSIGN_OR_RETURN(f.http_status, ParseWhole(arg, 200, 599, "an HTTP status"));
      }
      return f;
    case FaultKind::kBandwidth: {
      auto bytes = ParseSizeBytes(arg);
      if (!bytes.ok() || bytes.value() < 1) {
        return Status::InvalidArgument("bandwidth '" + std::string(arg) +
                                       "' must be a size a second of at least 1 byte, e.g. 64KiB");
      }
      f.bytes_per_second = bytes.value();
      return f;
    }
    default:
      return f;
  }
}

// splitmix64's finalizer: draw `i` of request `n` under `seed`, uniform in [0, 100).
double Uniform100(uint64_t seed, uint64_t n, size_t i) {
  uint64_t z = seed ^ (n * 0x9e3779b97f4a7c15ull) ^ (static_cast<uint64_t>(i + 1) << 56);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (100.0 / 9007199254740992.0);  // 53 bits
}

// ---------------------------------------------------------------- body readers

// Delivers `done` later on `executor` (a BodyReader never calls back from inside ReadSome).
void PostDone(const asio::any_io_executor& executor, BodyReader::Callback done, ClientError error,
              std::string detail, std::string_view piece, bool end) {
  asio::post(executor, [done = std::move(done), error, detail = std::move(detail), piece,
                        end]() mutable { done(error, std::move(detail), piece, end); });
}

class FixedBodyReader final : public BodyReader {
 public:
  FixedBodyReader(std::string body, bool ended_with_head, asio::any_io_executor executor)
      : body_(std::move(body)), ended_with_head_(ended_with_head), executor_(std::move(executor)) {}
  void ReadSome(Callback done) override {
    PostDone(executor_, std::move(done), ClientError::kNone, "", body_, true);
  }
  uint64_t latency_us() const override { return 0; }
  const http::fields& trailers() const override { return trailers_; }
  bool ready() const override { return true; }
  bool ended_with_head() const override { return ended_with_head_; }

 private:
  std::string body_;
  bool ended_with_head_;
  asio::any_io_executor executor_;
  http::fields trailers_;
};

class TruncatingReader final : public BodyReader {
 public:
  TruncatingReader(BodyReaderPtr inner, std::optional<uint64_t> keep,
                   asio::any_io_executor executor)
      : inner_(std::move(inner)), keep_(keep), executor_(std::move(executor)) {}
  void ReadSome(Callback done) override {
    if (cut_) {
      return PostDone(executor_, std::move(done), ClientError::kReset,
                      std::string(kTruncatedByFault), {}, false);
    }
    inner_->ReadSome([this, done = std::move(done)](ClientError error, std::string detail,
                                                    std::string_view piece, bool end) {
      if (error != ClientError::kNone) return done(error, std::move(detail), piece, end);
      if (!keep_ && !piece.empty()) keep_ = relayed_ + piece.size() / 2;
      if (keep_ && relayed_ + piece.size() >= *keep_) {
        // What is left of the allowance goes out in this piece; the next read fails.
        piece = piece.substr(0, *keep_ - relayed_);
        relayed_ = *keep_;
        cut_ = true;
        return done(ClientError::kNone, "", piece, false);
      }
      relayed_ += piece.size();
      done(ClientError::kNone, "", piece, end);
    });
  }
  uint64_t latency_us() const override { return inner_->latency_us(); }
  const http::fields& trailers() const override { return inner_->trailers(); }
  bool ready() const override { return cut_ || inner_->ready(); }

 private:
  BodyReaderPtr inner_;
  std::optional<uint64_t> keep_;
  asio::any_io_executor executor_;
  uint64_t relayed_ = 0;
  bool cut_ = false;
};

class ThrottlingReader final : public BodyReader {
 public:
  ThrottlingReader(BodyReaderPtr inner, uint64_t bytes_per_second, asio::any_io_executor executor)
      : inner_(std::move(inner)),
        rate_(bytes_per_second),
        slice_(std::max<uint64_t>(1, bytes_per_second / 10)),
        timer_(executor),
        start_(std::chrono::steady_clock::now()) {}

  void ReadSome(Callback done) override {
    if (!rest_.empty()) return Deliver(std::move(done));
    if (inner_end_) {
      return PostDone(timer_.get_executor(), std::move(done), ClientError::kNone, "", {}, true);
    }
    inner_->ReadSome([this, done = std::move(done)](ClientError error, std::string detail,
                                                    std::string_view piece, bool end) mutable {
      if (error != ClientError::kNone) return done(error, std::move(detail), piece, end);
      rest_ = piece;
      inner_end_ = end;
      if (rest_.empty()) return done(ClientError::kNone, "", {}, end);
      Deliver(std::move(done));
    });
  }
  uint64_t latency_us() const override { return inner_->latency_us(); }
  const http::fields& trailers() const override { return inner_->trailers(); }
  bool ready() const override { return false; }

 private:
  // The next slice of the current piece once the byte budget allows it.
  void Deliver(Callback done) {
    const std::string_view slice = rest_.substr(0, slice_);
    rest_.remove_prefix(slice.size());
    const bool end = inner_end_ && rest_.empty();
    const auto due = start_ + std::chrono::microseconds(sent_ * 1'000'000 / rate_);
    sent_ += slice.size();
    timer_.expires_at(due);
    timer_.async_wait([done = std::move(done), slice, end](boost::system::error_code ec) {
      if (ec) return done(ClientError::kReset, "throttled body abandoned", {}, false);
      done(ClientError::kNone, "", slice, end);
    });
  }

  BodyReaderPtr inner_;
  uint64_t rate_;
  uint64_t slice_;  // bytes let out at once: a tenth of a second's worth
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point start_;
  uint64_t sent_ = 0;
  std::string_view rest_;  // of the inner reader's current piece
  bool inner_end_ = false;
};

}  // namespace

bool FaultSpec::Has(FaultKind kind) const {
  return std::any_of(faults.begin(), faults.end(),
                     [kind](const Fault& f) { return f.kind == kind; });
}

Result<FaultSpec> ParseFaultSpec(std::string_view text) {
  FaultSpec spec;
  spec.text = std::string(text);
  if (TrimSpaces(text).empty()) {
    return Status::InvalidArgument("empty fault spec; " + std::string(kGrammar));
  }
  for (std::string_view item : Split(text, '+')) {
    auto fault = ParseFault(TrimSpaces(item));
    if (!fault.ok()) {
      return Status::InvalidArgument("fault '" + std::string(item) + "': " +
                                     fault.status().message() + "; " + std::string(kGrammar));
    }
    for (const Fault& seen : spec.faults) {
      if (seen.kind == fault->kind) {
        return Status::InvalidArgument("fault spec '" + spec.text + "' names " +
                                       std::string(kFaultKindNames.Name(seen.kind)) +
                                       " twice; give each kind once");
      }
    }
    spec.faults.push_back(*fault);
  }
  return spec;
}

std::string FaultPlan::Kinds() const {
  const bool drawn[] = {delay.has_value(), abort_status != 0, reset, bandwidth != 0, truncate};
  std::string kinds;
  for (int k = 0; k <= static_cast<int>(FaultKind::kMaxValue); ++k) {
    if (!drawn[k]) continue;
    if (!kinds.empty()) kinds += '+';
    kinds += kFaultKindNames.Name(static_cast<FaultKind>(k));
  }
  return kinds;
}

std::string FaultCountsText(const FaultCounts& counts) {
  std::string out;
  for (size_t k = 0; k < counts.size(); ++k) {
    if (counts[k] == 0) continue;
    if (!out.empty()) out += ", ";
    out += kFaultKindNames.Name(static_cast<FaultKind>(k));
    out += ' ' + std::to_string(counts[k]);
  }
  return out;
}

FaultCounts FaultInjector::injected_by_kind() const {
  FaultCounts out{};
  for (size_t k = 0; k < out.size(); ++k) out[k] = injected(static_cast<FaultKind>(k));
  return out;
}

FaultInjector::FaultInjector(Options options, std::string where, MetricsRegistry* registry)
    : options_(std::move(options)), where_(std::move(where)) {
  if (registry == nullptr) return;
  for (int k = 0; k <= static_cast<int>(FaultKind::kMaxValue); ++k) {
    counters_[k] = registry->AddCounter(
        "doppel_faults_injected_total", "faults injected (--fault), by kind and where",
        "kind=\"" + std::string(kFaultKindNames.Name(static_cast<FaultKind>(k))) + "\",where=\"" +
            where_ + "\"");
  }
  skipped_counter_ = registry->AddCounter(
      "doppel_faults_skipped_total",
      "faults drawn but not injected because --max-active-faults were in flight",
      "where=\"" + where_ + "\"");
}

std::optional<FaultPlan> FaultInjector::PlanFromHeaders(const RequestView& request) const {
  if (!options_.from_headers || !request.header) return std::nullopt;
  FaultPlan plan;
  if (auto v = request.header(kFaultDelayHeader)) {
    unsigned ms = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), ms);
    if (ec == std::errc() && end == v->data() + v->size() && ms > 0 && ms <= 3'600'000) {
      plan.delay = std::chrono::milliseconds(ms);
    }
  }
  if (auto v = request.header(kFaultAbortHeader)) {
    unsigned status = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), status);
    if (ec == std::errc() && end == v->data() + v->size() && status >= 200 && status <= 599) {
      plan.abort_status = status;
    } else if (v->starts_with("grpc=")) {
      auto code = ParseWhole(v->substr(5), 1, 16, "a gRPC status code");
      if (code.ok()) {
        plan.abort_status = 200;
        plan.abort_grpc = static_cast<int>(*code);
      }
    }
  }
  if (!plan.any()) return std::nullopt;
  return plan;
}

FaultPlan FaultInjector::Draw(const RequestView& request) {
  if (options_.rule != nullptr && !BlockMatches(*options_.rule, request)) return {};
  FaultPlan plan;
  if (auto from_headers = PlanFromHeaders(request)) {
    plan = std::move(*from_headers);
  } else {
    const uint64_t n = draws_.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < options_.spec.faults.size(); ++i) {
      const Fault& f = options_.spec.faults[i];
      if (!(Uniform100(options_.seed, n, i) < f.percent)) continue;
      switch (f.kind) {
        case FaultKind::kDelay:
          plan.delay = f.delay;
          break;
        case FaultKind::kAbort:
          plan.abort_status = f.http_status;
          plan.abort_grpc = f.grpc_status;
          break;
        case FaultKind::kReset:
          plan.reset = true;
          break;
        case FaultKind::kBandwidth:
          plan.bandwidth = f.bytes_per_second;
          break;
        case FaultKind::kTruncate:
          plan.truncate = true;
          break;
      }
    }
  }
  if (!plan.any()) return plan;
  // A reset leaves nothing to abort or shape; an abort nothing to shape.
  if (plan.reset) plan.abort_status = 0;
  if (plan.replaces_response()) {
    plan.bandwidth = 0;
    plan.truncate = false;
  }
  if (!Take(plan)) return {};
  Count(plan);
  return plan;
}

bool FaultInjector::Take(FaultPlan& plan) {
  if (options_.max_active > 0) {
    size_t now = active_->load(std::memory_order_relaxed);
    do {
      if (now >= options_.max_active) {
        skipped_.fetch_add(1, std::memory_order_relaxed);
        if (skipped_counter_) skipped_counter_->Inc();
        return false;
      }
    } while (!active_->compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  } else {
    active_->fetch_add(1, std::memory_order_relaxed);
  }
  // The slot goes back when the last copy of the plan is dropped (the request ended).
  std::shared_ptr<std::atomic<size_t>> active = active_;
  plan.active = std::shared_ptr<void>(
      nullptr, [active](void*) { active->fetch_sub(1, std::memory_order_relaxed); });
  return true;
}

void FaultInjector::Count(const FaultPlan& plan) {
  auto count = [this](FaultKind kind) {
    const int k = static_cast<int>(kind);
    counts_[k].fetch_add(1, std::memory_order_relaxed);
    if (counters_[k]) counters_[k]->Inc();
  };
  if (plan.delay) count(FaultKind::kDelay);
  if (plan.abort_status != 0) count(FaultKind::kAbort);
  if (plan.reset) count(FaultKind::kReset);
  if (plan.bandwidth != 0) count(FaultKind::kBandwidth);
  if (plan.truncate) count(FaultKind::kTruncate);
}

uint64_t FaultInjector::injected(FaultKind kind) const {
  return counts_[static_cast<int>(kind)].load(std::memory_order_relaxed);
}

uint64_t FaultInjector::injected_total() const {
  uint64_t total = 0;
  for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
  return total;
}

boost::json::object FaultInjector::StatusJson() const {
  boost::json::object o;
  o["spec"] = options_.spec.text;
  o["rule"] = options_.rule ? options_.rule->name : "";
  o["headers"] = options_.from_headers;
  boost::json::object injected;
  for (int k = 0; k <= static_cast<int>(FaultKind::kMaxValue); ++k) {
    const auto kind = static_cast<FaultKind>(k);
    injected[kFaultKindNames.Name(kind)] = this->injected(kind);
  }
  o["injected"] = std::move(injected);
  o["skipped"] = skipped();
  o["active"] = active();
  return o;
}

FaultAbort MakeFaultAbort(const FaultPlan& plan, asio::any_io_executor executor) {
  FaultAbort abort;
  abort.head.version(11);
  abort.head.set(http::field::server, "doppel");
  abort.head.set("x-doppel-fault", "abort");
  if (plan.abort_grpc >= 0) {
    // gRPC's trailers-only answer: the status travels in the only HEADERS frame.
    abort.head.result(http::status::ok);
    abort.head.set(http::field::content_type, "application/grpc");
    abort.head.set("grpc-status", std::to_string(plan.abort_grpc));
    abort.head.set("grpc-message", "fault injected by doppel");
    abort.head.content_length(0);
    abort.body = FixedBody("", /*ended_with_head=*/true, std::move(executor));
    return abort;
  }
  abort.head.result(plan.abort_status);
  std::string body = "doppel: fault injected (abort " + std::to_string(plan.abort_status) + ")\n";
  abort.head.set(http::field::content_type, "text/plain; charset=utf-8");
  abort.head.content_length(body.size());
  abort.body = FixedBody(std::move(body), /*ended_with_head=*/false, std::move(executor));
  return abort;
}

BodyReaderPtr ThrottleBody(BodyReaderPtr inner, uint64_t bytes_per_second,
                           asio::any_io_executor executor) {
  return std::make_unique<ThrottlingReader>(std::move(inner), bytes_per_second,
                                            std::move(executor));
}

BodyReaderPtr TruncateBody(BodyReaderPtr inner, std::optional<uint64_t> keep,
                           asio::any_io_executor executor) {
  return std::make_unique<TruncatingReader>(std::move(inner), keep, std::move(executor));
}

BodyReaderPtr FixedBody(std::string body, bool ended_with_head, asio::any_io_executor executor) {
  return std::make_unique<FixedBodyReader>(std::move(body), ended_with_head, std::move(executor));
}

}  // namespace doppel::net
