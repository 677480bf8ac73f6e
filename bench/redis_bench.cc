// doppel-bench-redis: ingest of the same corpus into the RocksDB store (Store::Append, the
// store sink's path) and into a Redis stream (StreamWriter::Append: zstd with a trained
// dictionary, XADDs pipelined, the Redis sink's path), in batches of the capture writer's
// size, paired and interleaved (store, redis, redis, store, ...) so machine drift falls on both.
// Prints a Markdown table on stdout; bench/redis.sh runs it against a fresh redis-server.
//
// CPU per envelope: the writing thread's own CPU time, plus (for Redis) redis-server's CPU
// time over the run, read from /proc/PID/stat (--redis-pid).

#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/corpus/corpus.h"
#include "storage/store.h"
#include "stream/envelope_stream.h"
#include "stream/redis_client.h"

namespace doppel::bench {
namespace {

namespace fs = std::filesystem;
using doppel::v1::Envelope;
using Clock = std::chrono::steady_clock;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// utime + stime of a process, in seconds; 0 when it cannot be read.
double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Run {
  double seconds = 0;
  double cpu_seconds = 0;  // writer thread (+ redis-server)
};

Result<Run> RunStore(const std::vector<Envelope>& corpus, size_t batch, const fs::path& dir) {
  fs::remove_all(dir);
  storage::StorePtr store;
  DOPPEL_RETURN_IF_ERROR(storage::Store::Open({}, dir.string(), &store));
  doppel::v1::SessionInfo info;
  info.set_name("bench");
  DOPPEL_ASSIGN_OR_RETURN(auto created, store->CreateSession(info));
  (void)created;  // the record itself is not needed
  Run r;
  const double cpu0 = ThreadCpuSeconds();
  const auto t0 = Clock::now();
  for (size_t i = 0; i < corpus.size(); i += batch) {
    const size_t n = std::min(batch, corpus.size() - i);
    DOPPEL_RETURN_IF_ERROR(store->Append("bench", std::span(corpus.data() + i, n)));
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.cpu_seconds = ThreadCpuSeconds() - cpu0;
  store.reset();
  fs::remove_all(dir);
  return r;
}

Result<Run> RunRedis(const std::vector<Envelope>& corpus, size_t batch, const stream::RedisUrl& url,
                     int redis_pid) {
  auto client = stream::RedisClient::Connect(url);
  if (!client.ok()) return client.status();
  DOPPEL_ASSIGN_OR_RETURN(
      auto del, (*client)->Command({"DEL", url.stream, stream::DictionariesKey(url.stream)}));
  (void)del;  // a fresh stream for every run
  stream::StreamWriter writer(url, {"bench", 0, {}, {}, 0});
  DOPPEL_RETURN_IF_ERROR(writer.Connect());
  Run r;
  const double cpu0 = ThreadCpuSeconds();
  const double redis0 = ProcessCpuSeconds(redis_pid);
  const auto t0 = Clock::now();
  for (size_t i = 0; i < corpus.size(); i += batch) {
    const size_t n = std::min(batch, corpus.size() - i);
    DOPPEL_RETURN_IF_ERROR(writer.Append(std::span(corpus.data() + i, n)));
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.cpu_seconds = ThreadCpuSeconds() - cpu0 + ProcessCpuSeconds(redis_pid) - redis0;
  DOPPEL_ASSIGN_OR_RETURN(auto len, (*client)->Command({"XLEN", url.stream}));
  if (len.integer != static_cast<long long>(corpus.size())) {
    return Status::Internal("XLEN " + std::to_string(len.integer) + ", expected " +
                            std::to_string(corpus.size()));
  }
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Main(int argc, char** argv) {
  CLI::App app("doppel-bench-redis: store Append vs Redis stream XADD ingest");
  size_t n = 20000, batch = 512;
  int rounds = 3, redis_pid = 0;
  uint64_t seed = 1;
  std::string url_text, dir = "/tmp/doppel-bench-redis";
  app.add_option("--n", n, "envelopes in the corpus")->capture_default_str();
  app.add_option("--batch", batch, "envelopes per Append")->capture_default_str();
  app.add_option("--rounds", rounds, "paired rounds (store, redis / redis, store)")
      ->capture_default_str();
  app.add_option("--seed", seed, "corpus seed")->capture_default_str();
  app.add_option("--redis", url_text, "redis://HOST:PORT/STREAM")->required();
  app.add_option("--redis-pid", redis_pid, "redis-server's pid, for its CPU time");
  app.add_option("--dir", dir, "scratch directory for the stores")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto url = stream::ParseRedisUrl(url_text);
  if (!url.ok()) {
    std::cerr << url.status().ToString() << "\n";
    return 2;
  }
  const std::vector<Envelope> corpus = GenerateCorpus(n, seed);
  std::vector<double> store_rate, redis_rate, store_cpu, redis_cpu, ratio;
  std::ostringstream runs;
  for (int r = 1; r <= rounds; ++r) {
    double s_rate = 0, x_rate = 0;
    for (int k = 0; k < 2; ++k) {
      const bool store_first = r % 2 == 1;
      const bool store_now = (k == 0) == store_first;
      auto run = store_now ? RunStore(corpus, batch, fs::path(dir) / "store")
                           : RunRedis(corpus, batch, *url, redis_pid);
      if (!run.ok()) {
        std::cerr << (store_now ? "store: " : "redis: ") << run.status().ToString() << "\n";
        return 1;
      }
      const double rate = static_cast<double>(n) / run->seconds;
      const double cpu_us = run->cpu_seconds * 1e6 / static_cast<double>(n);
      (store_now ? store_rate : redis_rate).push_back(rate);
      (store_now ? store_cpu : redis_cpu).push_back(cpu_us);
      (store_now ? s_rate : x_rate) = rate;
      runs << "| " << r << " | " << (store_now ? "store Append" : "Redis XADD") << " | "
           << static_cast<long long>(rate) << " | " << std::fixed << std::setprecision(1) << cpu_us
           << " |\n";
      std::cerr << "round " << r << " " << (store_now ? "store" : "redis") << ": "
                << static_cast<long long>(rate) << " envelopes/s\n";
    }
    ratio.push_back(x_rate / s_rate);
  }
  std::cout << "Corpus: `bench/corpus` seed " << seed << ", " << n << " envelopes, batches of "
            << batch << " (the capture writer's `max_batch`), " << rounds
            << " paired rounds, order alternating.\n\n";
  std::cout << "| round | sink | envelopes/s | CPU µs/envelope |\n|---|---|---|---|\n"
            << runs.str() << "\n";
  std::cout
      << std::fixed << std::setprecision(2) << "Median: store Append "
      << static_cast<long long>(Median(store_rate)) << " envelopes/s (" << std::setprecision(1)
      << Median(store_cpu)
      << " µs CPU each, writer thread only: RocksDB's background flush and compaction are not "
         "counted), Redis XADD "
      << static_cast<long long>(Median(redis_rate)) << " envelopes/s (" << Median(redis_cpu)
      << " µs CPU each, writer thread + redis-server); Redis/store per round: median "
      << std::setprecision(2) << Median(ratio) << "×.\n";
  return 0;
}

}  // namespace
}  // namespace doppel::bench

int main(int argc, char** argv) { return doppel::bench::Main(argc, argv); }
