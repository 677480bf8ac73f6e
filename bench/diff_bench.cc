// doppel-bench-diff: throughput of Differ::Compare on one thread, on pairs built from the
// benchmark corpus. Prints a Markdown report on stdout; bench/diff.sh puts it into
// bench/RESULTS.md.
//
// A pair is (expected = a recorded JSON response from the corpus, actual = a copy of it with
// one realistic change, or none). Changes, applied with Boost.JSON to the decoded body, the
// Content-Length header kept consistent:
//   value      one scalar changed (number +1, string suffixed, bool flipped)
//   removed    one object member removed
//   volatile   one timestamp or UUID value changed: compares equal after normalization
//   reorder    the first two elements of an array swapped
// Sets: identical pairs, each change on every pair, a mix (MIX_PCT % of pairs changed,
// the four kinds in turn), and the identical and mix sets again with both bodies
// gzip-encoded (Content-Encoding: gzip), which adds the decompression of both sides.
// Each set is timed over whole passes until --seconds have passed; the rate is pairs per
// second of the calling thread's CPU time (wall-clock rate shown too: the machine is shared).

#include <sched.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/enum_names.h"
#include "bench/corpus/corpus.h"
#include "diff/diff.h"
#include "net/codings.h"

namespace doppel::bench {
namespace {

namespace json = boost::json;
using doppel::v1::Envelope;
using doppel::v1::HttpResponse;
using Clock = std::chrono::steady_clock;

// Keeps the timed comparisons' results observable so they cannot be optimized away.
volatile size_t g_sink = 0;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string CpuModel() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

enum class Change { kNone, kValue, kRemoved, kVolatile, kReorder, kMaxValue = kReorder };

constexpr EnumNames<Change, 5> kChangeNames{{"none", "value", "removed", "volatile", "reorder"}};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// "2026-11-27T00:00:00..." (RFC 3339 prefix) or a canonical UUID.
bool LooksVolatile(std::string_view s) {
  if (s.size() >= 19 && IsDigit(s[0]) && IsDigit(s[3]) && s[4] == '-' && s[7] == '-' &&
      (s[10] == 'T' || s[10] == 't') && s[13] == ':' && s[16] == ':')
    return true;
  if (s.size() == 36) {
    for (size_t i = 0; i < 36; ++i) {
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
    }
    return true;
  }
  return false;
}

struct Places {
  std::vector<json::value*> scalars;    // numbers, bools, non-volatile strings
  std::vector<json::value*> volatiles;  // timestamp and UUID strings
  std::vector<std::pair<json::object*, std::string>> members;
  std::vector<json::array*> arrays;  // two or more elements
};

void Collect(json::value& v, Places* p) {
  switch (v.kind()) {
    case json::kind::object:
      for (auto& kv : v.as_object()) {
        p->members.emplace_back(&v.as_object(), std::string(kv.key()));
        Collect(kv.value(), p);
      }
      break;
    case json::kind::array:
      if (v.as_array().size() >= 2) p->arrays.push_back(&v.as_array());
      for (auto& e : v.as_array()) Collect(e, p);
      break;
    case json::kind::string:
      (LooksVolatile(v.as_string()) ? p->volatiles : p->scalars).push_back(&v);
      break;
    case json::kind::null:
      break;
    default:
      p->scalars.push_back(&v);
      break;
  }
}

// Applies `change` to `body` (JSON); returns false when the body offers no place for it.
bool Mutate(Change change, std::mt19937_64& rng, std::string* body) {
  boost::system::error_code ec;
  json::value doc = json::parse(*body, ec);
  if (ec) return false;
  Places p;
  Collect(doc, &p);
  switch (change) {
    case Change::kNone:
      return true;
    case Change::kValue: {
      if (p.scalars.empty()) return false;
      json::value& v = *p.scalars[rng() % p.scalars.size()];
      if (v.is_int64())
        v = v.as_int64() + 1;
      else if (v.is_uint64())
        v = v.as_uint64() + 1;
      else if (v.is_double())
        v = v.as_double() * 1.5 + 1;
      else if (v.is_bool())
        v = !v.as_bool();
      else
        v.as_string().append("-changed");
      break;
    }
    case Change::kRemoved: {
      if (p.members.empty()) return false;
      auto& [obj, key] = p.members[rng() % p.members.size()];
      obj->erase(key);
      break;
    }
    case Change::kVolatile: {
      if (p.volatiles.empty()) return false;
      json::string& s = p.volatiles[rng() % p.volatiles.size()]->as_string();
      // A different second (timestamps) or hex digit (UUIDs): still well-formed.
      size_t i = s.size() == 36 ? 0 : 18;
      s[i] = s[i] == '1' ? '2' : '1';
      break;
    }
    case Change::kReorder: {
      if (p.arrays.empty()) return false;
      json::array* a = p.arrays[rng() % p.arrays.size()];
      if ((*a)[0] == (*a)[1]) return false;
      std::swap((*a)[0], (*a)[1]);
      break;
    }
  }
  *body = json::serialize(doc);
  return true;
}

void SetBody(HttpResponse* r, std::string body, bool gzip) {
  if (gzip) body = net::EncodeContent(body, "gzip").value();
  for (auto& h : *r->mutable_headers()) {
    if (h.name() == "Content-Length") h.set_value(std::to_string(body.size()));
  }
  if (gzip) {
    auto* h = r->add_headers();
    h->set_name("Content-Encoding");
    h->set_value("gzip");
  }
  r->set_body_size(body.size());
  r->set_body(std::move(body));
}

struct Pair {
  std::string method, target;
  HttpResponse expected, actual;
  Change change = Change::kNone;
};

struct SetSpec {
  std::string name;
  std::vector<Change> changes;  // applied in turn; kNone = identical
  int changed_pct = 100;        // share of pairs that get a change
  bool gzip = false;
};

struct SetResult {
  std::string name;
  size_t pairs = 0;
  double body_bytes = 0;  // mean decoded expected body
  uint64_t compared = 0;
  double cpu_s = 0, wall_s = 0;
  double match_share = 0;
  std::string by_change;  // "value 100 % mismatch, ..."
};

std::vector<Pair> BuildSet(const SetSpec& spec, const std::vector<Envelope>& corpus,
                           uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Pair> pairs;
  pairs.reserve(corpus.size());
  size_t turn = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const Envelope& e = corpus[i];
    Pair p;
    p.method = e.request().method();
    p.target = e.request().target();
    p.expected = e.response();
    p.actual = e.response();
    std::string body = e.response().body();
    // Spread changed pairs evenly: pair i is changed when its share-bucket says so.
    bool changed = (i * spec.changed_pct) / 100 != ((i + 1) * spec.changed_pct) / 100;
    if (changed) {
      // Try the kinds in turn from this pair's kind; a body without (say) an array gets the next.
      for (size_t k = 0; k < spec.changes.size(); ++k) {
        Change c = spec.changes[(turn + k) % spec.changes.size()];
        std::string candidate = body;
        if (Mutate(c, rng, &candidate)) {
          body = std::move(candidate);
          p.change = c;
          break;
        }
      }
      ++turn;
    }
    SetBody(&p.expected, e.response().body(), spec.gzip);
    SetBody(&p.actual, body, spec.gzip);
    pairs.push_back(std::move(p));
  }
  return pairs;
}

SetResult Measure(const SetSpec& spec, const std::vector<Pair>& pairs, const diff::Differ& differ,
                  double seconds, size_t original_bytes) {
  SetResult r;
  r.name = spec.name;
  r.pairs = pairs.size();
  r.body_bytes = static_cast<double>(original_bytes) / pairs.size();

  // One untimed pass: warms caches and checks what the engine says about each change.
  std::map<Change, std::pair<uint64_t, uint64_t>> mismatches;  // change -> (mismatch, total)
  uint64_t matches = 0;
  for (const Pair& p : pairs) {
    bool match = differ.Compare(p.method, p.target, p.expected, p.actual).match;
    matches += match;
    auto& [mm, total] = mismatches[p.change];
    mm += !match;
    ++total;
  }
  r.match_share = 100.0 * matches / pairs.size();
  for (const auto& [change, counts] : mismatches) {
    if (!r.by_change.empty()) r.by_change += ", ";
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s %llu/%llu", std::string(kChangeNames.Name(change)).c_str(),
                  (unsigned long long)counts.first, (unsigned long long)counts.second);
    r.by_change += buf;
  }

  const double cpu0 = ThreadCpuSeconds();
  const auto wall0 = Clock::now();
  do {
    for (const Pair& p : pairs) {
      diff::DiffResult d = differ.Compare(p.method, p.target, p.expected, p.actual);
      g_sink = g_sink + d.diffs.size();
    }
    r.compared += pairs.size();
  } while (ThreadCpuSeconds() - cpu0 < seconds);
  r.cpu_s = ThreadCpuSeconds() - cpu0;
  r.wall_s = std::chrono::duration<double>(Clock::now() - wall0).count();
  return r;
}

std::string Grouped(double v) {
  std::string s = std::to_string(static_cast<long long>(v + 0.5));
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(i, ",");
  return s;
}

}  // namespace
}  // namespace doppel::bench

int main(int argc, char** argv) {
  using namespace doppel::bench;
  CLI::App app{"doppel-bench-diff: Differ::Compare throughput on corpus response pairs"};
  size_t n = 20000;
  uint64_t seed = 1;
  double seconds = 2;
  int repeat = 3;
  int mix_pct = 25;
  size_t min_body = 256, max_body = 4096;
  std::string only;
  app.add_option("--n", n, "pairs per set (distinct corpus responses)");
  app.add_option("--seed", seed, "corpus seed");
  app.add_option("--seconds", seconds, "CPU seconds per set and repetition (at least)");
  app.add_option("--repeat", repeat, "repetitions per set; the median is reported");
  app.add_option("--mix-pct", mix_pct, "share of changed pairs in the mix sets");
  app.add_option("--min-body", min_body, "smallest JSON response body taken from the corpus");
  app.add_option("--max-body", max_body, "largest JSON response body taken from the corpus");
  app.add_option("--only", only, "measure only the sets whose name contains this (profiling)");
  CLI11_PARSE(app, argc, argv);

  const std::string load_before = ReadFile("/proc/loadavg");

  // Responses with a JSON body in the ~1 KB range, as the corpus records them.
  std::vector<Envelope> corpus;
  {
    CorpusGenerator gen(seed);
    Envelope e;
    uint64_t scanned = 0;
    while (corpus.size() < n && scanned < 50 * n) {
      gen.Next(&e);
      ++scanned;
      size_t size = e.response().body().size();
      if (size >= min_body && size <= max_body && e.response().body()[0] == '{')
        corpus.push_back(e);
    }
  }
  if (corpus.empty()) {
    std::cerr << "no corpus responses within --min-body/--max-body\n";
    return 2;
  }
  size_t original_bytes = 0;
  for (const Envelope& e : corpus) original_bytes += e.response().body().size();

  auto created = doppel::diff::Differ::Create(doppel::diff::DiffConfig());
  if (!created.ok()) {
    std::cerr << created.status().ToString() << "\n";
    return 2;
  }
  const doppel::diff::Differ& differ = **created;

  const std::vector<Change> all = {Change::kValue, Change::kRemoved, Change::kVolatile,
                                   Change::kReorder};
  const std::vector<SetSpec> specs = {
      {"identical", {Change::kNone}, 0, false},
      {"value changed", {Change::kValue}, 100, false},
      {"field removed", {Change::kRemoved}, 100, false},
      {"timestamp/UUID changed (normalized)", {Change::kVolatile}, 100, false},
      {"array reordered", {Change::kReorder}, 100, false},
      {"mix: " + std::to_string(mix_pct) + " % changed", all, mix_pct, false},
      {"gzip, identical", {Change::kNone}, 0, true},
      {"gzip, mix: " + std::to_string(mix_pct) + " % changed", all, mix_pct, true},
  };

  std::vector<SetResult> results;
  for (const SetSpec& spec : specs) {
    if (spec.name.find(only) == std::string::npos) continue;
    std::cerr << "measuring " << spec.name << "...\n";
    std::vector<Pair> pairs = BuildSet(spec, corpus, seed);
    std::vector<SetResult> runs;
    for (int i = 0; i < repeat; ++i)
      runs.push_back(Measure(spec, pairs, differ, seconds, original_bytes));
    std::sort(runs.begin(), runs.end(), [](const SetResult& a, const SetResult& b) {
      return a.compared / a.cpu_s < b.compared / b.cpu_s;
    });
    results.push_back(runs[runs.size() / 2]);
  }
  const std::string load_after = ReadFile("/proc/loadavg");

  std::printf(
      "Pairs: %zu corpus responses (seed %llu) with a JSON body of %zu..%zu B, %.0f B on "
      "average; each set compares the same responses with a different change applied "
      "(see `bench/diff_bench.cc`). Default `DiffConfig` (all normalizers on, no rules). "
      "One thread; rates are pairs per CPU-second of that thread (median of %d runs of "
      ">= %.1f CPU-s each), wall-clock rate beside it.\n\n",
      corpus.size(), (unsigned long long)seed, min_body, max_body,
      static_cast<double>(original_bytes) / corpus.size(), repeat, seconds);
  std::printf(
      "| set | pairs/CPU-s | µs/pair (CPU) | pairs/s (wall) | pairs matching | mismatches "
      "by change |\n");
  std::printf("|---|---:|---:|---:|---:|---|\n");
  bool all_met = true;
  for (const SetResult& r : results) {
    double rate = r.compared / r.cpu_s;
    all_met = all_met && rate >= 100000;
    std::printf("| %s | %s | %.2f | %s | %.1f %% | %s |\n", r.name.c_str(), Grouped(rate).c_str(),
                1e6 * r.cpu_s / r.compared, Grouped(r.compared / r.wall_s).c_str(), r.match_share,
                r.by_change.c_str());
  }
  std::printf("\nTarget ≥ 100,000 pairs/s on one core: %s.\n\n",
              all_met ? "met by every set" : "NOT met by every set (see the rows)");

  utsname u{};
  uname(&u);
  std::string lb = load_before, la = load_after;
  if (!lb.empty() && lb.back() == '\n') lb.pop_back();
  if (!la.empty() && la.back() == '\n') la.pop_back();
  std::printf(
      "Machine: %s, %ld CPUs online, Linux %s, build %s. Load average (/proc/loadavg) "
      "before: %s; after: %s.\n",
      CpuModel().c_str(), sysconf(_SC_NPROCESSORS_ONLN), u.release, DOPPEL_BUILD_TYPE, lb.c_str(),
      la.c_str());
  return 0;
}
