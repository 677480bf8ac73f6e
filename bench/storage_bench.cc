// doppel-bench-storage: ingest rate, scan rate and stored bytes per envelope of the envelope
// store, for each compression mode, next to the same traffic written as GoReplay text and
// compressed whole with gzip -6 and zstd -19. Prints a Markdown report on stdout;
// bench/storage.sh puts it into bench/RESULTS.md.
//
// Everything goes through the public Store interface except one step: the "after full
// compaction" size reopens the closed store directory with plain RocksDB (options loaded from
// the store's own OPTIONS file) and runs a manual CompactRange on every column family, to
// show what a store settles to once background compaction has rewritten everything.

#include <rocksdb/db.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/version.h>
#include <sched.h>
#include <sys/utsname.h>
#include <time.h>
#include <zstd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/corpus/corpus.h"
#include "bench/corpus/goreplay_text.h"
#include "storage/store.h"

namespace doppel::bench {
namespace {

namespace fs = std::filesystem;
using doppel::storage::Compression;
using doppel::v1::Envelope;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// CPU time of the calling thread: the writer's own cost, independent of other load on the
// machine (RocksDB's background flush and compaction threads are not included).
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct Config {
  Compression compression;
  int level;
};

std::string ModeName(Compression c) {
  return c == Compression::kBlockZstdDict ? "kBlockZstdDict" : "kEnvelopeZstdDict";
}

struct Measurement {
  Config config;
  std::vector<double> append_s, append_flush_s, scan_s;  // one per repetition
  std::vector<double> append_cpu_s, scan_cpu_s;          // writer / reader thread CPU time
  double slowest_append_s = 0;                           // longest single Append call
  uint64_t sst_bytes_flushed = 0, sst_files_flushed = 0;
  uint64_t sst_bytes_compacted = 0, sst_files_compacted = 0;
  std::string compaction_error;  // empty when the compaction ran
  // `doppel sessions compact` (Store::CompactSession) after the full compaction: the session
  // closed, then rewritten with the settled-data settings.
  uint64_t sst_bytes_settled = 0, sst_files_settled = 0;
  double settle_s = 0;
  std::string settle_error;  // empty when it ran
  uint64_t approximate_bytes = 0;
  uint64_t counted_envelopes = 0, counted_raw_bytes = 0, counted_stored_bytes = 0;
  uint64_t mismatches = 0;  // scanned envelopes that differ from what was appended
};

struct TextMeasurement {
  std::string name;
  uint64_t bytes = 0;
  double seconds = 0;
  std::string error;
};

// Sum of *.sst file sizes under `dir` (what `du` would count for table files).
uint64_t SstBytes(const fs::path& dir, uint64_t* files) {
  uint64_t bytes = 0;
  *files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".sst") {
      bytes += entry.file_size();
      ++*files;
    }
  }
  return bytes;
}

// Reopens a closed store with RocksDB directly and compacts every column family down to the
// bottommost level, using the store's own persisted options (compression, dictionaries).
std::string CompactFully(const std::string& path) {
  rocksdb::ConfigOptions config;
  config.ignore_unknown_options = true;
  config.env = rocksdb::Env::Default();
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  rocksdb::Status s = rocksdb::LoadLatestOptions(config, path, &db_options, &families);
  if (!s.ok()) return "loading the store's OPTIONS file: " + s.ToString();
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::Open(db_options, path, families, &handles, &raw);
  if (!s.ok()) return "opening with RocksDB: " + s.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  std::string error;
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    s = db->CompactRange(compact, h, nullptr, nullptr);
    if (!s.ok() && error.empty()) error = "compacting " + h->GetName() + ": " + s.ToString();
  }
  for (rocksdb::ColumnFamilyHandle* h : handles) db->DestroyColumnFamilyHandle(h);
  s = db->Close();
  if (!s.ok() && error.empty()) error = "closing: " + s.ToString();
  return error;
}

Status OpenStore(const Config& config, const std::string& path, storage::StorePtr* store) {
  storage::StoreOptions options;
  options.compression = config.compression;
  options.zstd_level = config.level;
  return storage::Store::Open(options, path, store).WithContext("opening " + path);
}

// What `doppel sessions compact` does to the session: closes it (the bench leaves it
// recording), then Store::CompactSession; its wall time in `seconds`.
Status Settle(const Config& config, const std::string& path, double* seconds) {
  storage::StorePtr store;
  DOPPEL_RETURN_IF_ERROR(OpenStore(config, path, &store));
  DOPPEL_RETURN_IF_ERROR(store->CloseSession("bench", doppel::v1::SessionCounts()));
  const auto t0 = std::chrono::steady_clock::now();
  auto bytes = store->CompactSession("bench");
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return bytes.status();
}

// Scans the session; counts envelopes and, when `expected` is set, compares each one
// byte for byte with what was appended.
Status ScanSession(storage::Store& store, const std::vector<Envelope>* expected, uint64_t* scanned,
                   uint64_t* mismatches) {
  auto it = store.Scan("bench");
  if (!it.ok()) return it.status();
  uint64_t n = 0, checksum = 0;
  std::string a, b;
  for (storage::EnvelopeIterator& i = **it; i.Valid(); i.Next()) {
    const Envelope& e = i.envelope();
    checksum += e.response().status() + e.response().body().size();
    if (expected != nullptr) {
      if (n >= expected->size()) {
        ++*mismatches;
      } else {
        e.SerializeToString(&a);
        (*expected)[n].SerializeToString(&b);
        *mismatches += a != b;
      }
    }
    ++n;
  }
  DOPPEL_RETURN_IF_ERROR((*it)->status());
  *scanned = n;
  if (checksum == 0 && n > 0) std::fprintf(stderr, "unexpected checksum\n");
  return Status::Ok();
}

Status MeasureStore(const Config& config, const std::vector<Envelope>& corpus, size_t batch,
                    int repetitions, const fs::path& root, Measurement* m) {
  m->config = config;
  for (int rep = 0; rep < repetitions; ++rep) {
    const fs::path dir = root / ("store-" + ModeName(config.compression) + "-l" +
                                 std::to_string(config.level) + "-" + std::to_string(rep));
    fs::remove_all(dir);
    const bool first = rep == 0;
    storage::StorePtr store;
    DOPPEL_RETURN_IF_ERROR(OpenStore(config, dir.string(), &store));
    doppel::v1::SessionInfo info;
    info.set_name("bench");
    info.set_upstream("http://api.shop.example.com");
    auto created = store->CreateSession(info);
    if (!created.ok()) return created.status();

    const double cpu0 = ThreadCpuSeconds();
    const auto t0 = Clock::now();
    for (size_t i = 0; i < corpus.size(); i += batch) {
      const size_t n = std::min(batch, corpus.size() - i);
      const auto before = Clock::now();
      DOPPEL_RETURN_IF_ERROR(
          store->Append("bench", std::span<const Envelope>(corpus.data() + i, n)));
      m->slowest_append_s = std::max(m->slowest_append_s, Seconds(before, Clock::now()));
    }
    const auto t1 = Clock::now();
    m->append_cpu_s.push_back(ThreadCpuSeconds() - cpu0);
    DOPPEL_RETURN_IF_ERROR(store->Flush());
    const auto t2 = Clock::now();
    m->append_s.push_back(Seconds(t0, t1));
    m->append_flush_s.push_back(Seconds(t0, t2));

    if (first) {
      m->sst_bytes_flushed = SstBytes(dir, &m->sst_files_flushed);
      auto approx = store->ApproximateSessionBytes("bench");
      if (!approx.ok()) return approx.status();
      m->approximate_bytes = *approx;
      auto session = store->GetSession("bench");
      if (!session.ok()) return session.status();
      m->counted_envelopes = session->counts().envelopes();
      m->counted_raw_bytes = session->counts().raw_bytes();
      m->counted_stored_bytes = session->counts().stored_bytes();
    }
    store.reset();

    // Scan from a freshly opened store: no warm block cache, but the OS page cache is warm.
    DOPPEL_RETURN_IF_ERROR(OpenStore(config, dir.string(), &store));
    uint64_t scanned = 0, ignored = 0;
    const double cpu3 = ThreadCpuSeconds();
    const auto t3 = Clock::now();
    DOPPEL_RETURN_IF_ERROR(ScanSession(*store, nullptr, &scanned, &ignored));
    const auto t4 = Clock::now();
    m->scan_s.push_back(Seconds(t3, t4));
    m->scan_cpu_s.push_back(ThreadCpuSeconds() - cpu3);
    if (scanned != corpus.size()) {
      return Status::Internal("scanned " + std::to_string(scanned) + " envelopes, appended " +
                              std::to_string(corpus.size()));
    }
    if (first) {
      DOPPEL_RETURN_IF_ERROR(ScanSession(*store, &corpus, &scanned, &m->mismatches));
    }
    store.reset();

    if (first) {
      // A rewritten store must still read back whole.
      auto read_back = [&]() -> Status {
        storage::StorePtr reopened;
        DOPPEL_RETURN_IF_ERROR(OpenStore(config, dir.string(), &reopened));
        uint64_t mismatches = 0;
        DOPPEL_RETURN_IF_ERROR(ScanSession(*reopened, &corpus, &scanned, &mismatches));
        m->mismatches += mismatches;
        return Status::Ok();
      };
      m->compaction_error = CompactFully(dir.string());
      if (m->compaction_error.empty()) {
        m->sst_bytes_compacted = SstBytes(dir, &m->sst_files_compacted);
        DOPPEL_RETURN_IF_ERROR(read_back());
      }
      const Status settled = Settle(config, dir.string(), &m->settle_s);
      m->settle_error = settled.ok() ? "" : settled.ToString();
      if (settled.ok()) {
        m->sst_bytes_settled = SstBytes(dir, &m->sst_files_settled);
        DOPPEL_RETURN_IF_ERROR(read_back());
      }
    }
    fs::remove_all(dir);
  }
  return Status::Ok();
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs `command` (via /bin/sh), which writes `output`; returns its size and wall time.
TextMeasurement CompressWithTool(const std::string& name, const std::string& command,
                                 const fs::path& output) {
  TextMeasurement t;
  t.name = name;
  const auto start = Clock::now();
  const int rc = std::system(command.c_str());
  t.seconds = Seconds(start, Clock::now());
  std::error_code ec;
  if (rc != 0 || !fs::exists(output, ec)) {
    t.error = "`" + command + "` failed (exit status " + std::to_string(rc) + ")";
    return t;
  }
  t.bytes = fs::file_size(output);
  fs::remove(output, ec);
  return t;
}

bool HaveTool(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

std::string ReadFile(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string ReadFirstMatch(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "unknown";
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// 1234567 -> "1,234,567".
std::string Grouped(double v) {
  std::string digits = std::to_string(static_cast<uint64_t>(v + 0.5));
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

int Run(int argc, char** argv) {
  CLI::App app{
      "doppel storage benchmark: ingest, scan and bytes per envelope by compression "
      "mode, against GoReplay-style text compressed with gzip -6 and zstd -19"};
  size_t n = 100000;
  uint64_t seed = 1;
  size_t batch = 1000;
  int repetitions = 3;
  std::vector<int> levels{3, 1};
  std::string tmp;
  bool skip_text = false;
  std::vector<std::string> modes{"block", "envelope"};
  app.add_option("--n", n, "envelopes in the corpus")->capture_default_str();
  app.add_option("--seed", seed, "corpus seed")->capture_default_str();
  app.add_option("--batch", batch, "envelopes per Append")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--repeat", repetitions, "repetitions per mode (medians are reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--levels", levels, "zstd levels to try, first one is the main row")
      ->capture_default_str()
      ->delimiter(',');
  app.add_option("--tmp", tmp, "scratch directory (default: a new one under $TMPDIR or /tmp)");
  app.add_option("--modes", modes, "compression modes to measure: block, envelope")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::IsMember({"block", "envelope"}));
  app.add_flag("--skip-text", skip_text, "skip the GoReplay text / gzip / zstd comparison");
  CLI11_PARSE(app, argc, argv);

  fs::path root;
  if (tmp.empty()) {
    std::string pattern = (fs::temp_directory_path() / "doppel-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::cerr << "cannot create a scratch directory under " << fs::temp_directory_path()
                << "; pass --tmp DIR\n";
      return 2;
    }
    root = pattern;
  } else {
    root = fs::path(tmp) / "doppel-bench";
    fs::create_directories(root);
  }

  const std::string load_before = ReadFile("/proc/loadavg");
  std::cerr << "generating " << n << " envelopes (seed " << seed << ")...\n";
  const std::vector<Envelope> corpus = GenerateCorpus(n, seed);
  uint64_t serialized_bytes = 0, response_body_bytes = 0, request_body_bytes = 0;
  for (const Envelope& e : corpus) {
    serialized_bytes += e.ByteSizeLong();
    response_body_bytes += e.response().body().size();
    request_body_bytes += e.request().body().size();
  }
  // Floor for any ingest path: serializing each envelope once, nothing else.
  double serialize_cpu_s = 0;
  {
    std::string buffer;
    const double cpu = ThreadCpuSeconds();
    for (const Envelope& e : corpus) {
      buffer.clear();
      e.AppendToString(&buffer);
    }
    serialize_cpu_s = ThreadCpuSeconds() - cpu;
  }

  std::vector<Measurement> results;
  for (int level : levels) {
    for (const std::string& mode : modes) {
      const Compression c =
          mode == "block" ? Compression::kBlockZstdDict : Compression::kEnvelopeZstdDict;
      std::cerr << "measuring " << ModeName(c) << " zstd level " << level << "...\n";
      Measurement m;
      const Status st = MeasureStore({c, level}, corpus, batch, repetitions, root, &m);
      if (!st.ok()) {
        std::cerr << "error: " << ModeName(c) << " level " << level << ": " << st.ToString()
                  << "\n";
        fs::remove_all(root);
        return 1;
      }
      results.push_back(std::move(m));
    }
  }

  std::vector<TextMeasurement> text;
  uint64_t text_bytes = 0;
  if (!skip_text) {
    const fs::path file = root / "corpus.gor";
    std::cerr << "writing GoReplay text to " << file << "...\n";
    const Status st = WriteGoReplayFile(corpus, file.string(), &text_bytes);
    if (!st.ok()) {
      std::cerr << "error: " << st.ToString() << "\n";
      fs::remove_all(root);
      return 1;
    }
    text.push_back({"GoReplay text, uncompressed", text_bytes, 0, ""});
    // The last row is not a target: zstd -19 limited to a 64 KiB window (one store block)
    // shows how much of the whole-file ratio comes from repeats far apart in the file.
    struct Tool {
      std::string name, program, flags;
    };
    const Tool tools[] = {
        {"gzip -6 (whole file)", "gzip", "-6 -c"},
        {"zstd -19 (whole file)", "zstd", "-19 -q -c"},
        {"zstd -19, 64 KiB window (--zstd=wlog=16)", "zstd", "-19 --zstd=wlog=16 -q -c"},
    };
    for (const Tool& tool : tools) {
      if (!HaveTool(tool.program)) {
        text.push_back(
            {tool.name, 0, 0, tool.program + " not installed (bench/storage.sh installs it)"});
        continue;
      }
      std::cerr << "compressing with " << tool.program << " " << tool.flags << "...\n";
      const fs::path out = root / "corpus.gor.compressed";
      text.push_back(CompressWithTool(tool.name,
                                      tool.program + " " + tool.flags + " " + Quote(file.string()) +
                                          " > " + Quote(out.string()),
                                      out));
    }
    fs::remove(file);
  }
  fs::remove_all(root);

  // ---- report ----
  const double count = static_cast<double>(n);
  double zstd19 = 0;
  for (const TextMeasurement& t : text) {
    if (t.name == "zstd -19 (whole file)" && t.error.empty()) zstd19 = t.bytes / count;
  }
  auto vs_zstd = [&](double per_env) {
    return zstd19 > 0 ? Fixed(per_env / zstd19, 2) + "×" : std::string("n/a");
  };

  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int nproc = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
  utsname uts{};
  uname(&uts);

  std::ostringstream o;
  o << "Corpus: `bench/corpus` seed " << seed << ", " << Grouped(count)
    << " envelopes (shop JSON API, 7 endpoints); serialized envelope "
    << Grouped(serialized_bytes / count) << " B on average (response body "
    << Grouped(response_body_bytes / count) << " B, request body "
    << Grouped(request_body_bytes / count) << " B). Protobuf serialization alone runs at "
    << Grouped(count / serialize_cpu_s) << " env/CPU-s on this machine (a floor for ingest).\n"
    << "Ingest: `Store::Append` from one thread, batches of " << batch
    << "; \"+ Flush\" includes `Store::Flush()` of the memtables. Scan: `Store::Scan` over the "
       "whole session on a freshly reopened store (decode included). Rates are medians of "
    << repetitions << (repetitions == 1 ? " run" : " runs")
    << ", each on a fresh store; \"CPU\" columns divide by the CPU time of the calling thread "
       "alone (background flush/compaction threads excluded), which is what one free core "
       "would give.\n"
    << "Bytes: *.sst files in the store directory right after `Flush()`, and again after a "
       "manual full compaction (`CompactRange`, bottommost forced, with the store's own "
       "OPTIONS), and after `doppel sessions compact` (`Store::CompactSession` on the closed "
       "session: 1 MiB blocks, zstd 12, a 112 KiB dictionary; its wall time beside it); "
       "`ApproximateSessionBytes` after `Flush()`; \"value\" = `counts.stored_bytes` "
       "(bytes of the values handed to RocksDB). Ratios are against zstd -19 over the whole "
       "GoReplay file.\n\n";

  o << "| mode | zstd level | ingest env/s (Append) | ingest env/s (Append + Flush) | "
       "Append env/CPU-s | slowest Append (ms) | scan + decode env/s | scan env/CPU-s | bytes/env, "
       "SST after Flush | "
       "bytes/env, SST after full "
       "compaction | ApproximateSessionBytes/env | value bytes/env | vs zstd -19 (Flush) | "
       "vs zstd -19 (compacted) | bytes/env after `sessions compact` | vs zstd -19 (`sessions "
       "compact`) |\n"
    << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Measurement& m : results) {
    const double flushed = m.sst_bytes_flushed / count;
    const double compacted = m.sst_bytes_compacted / count;
    const bool have_compacted = m.compaction_error.empty();
    o << "| " << ModeName(m.config.compression) << " | " << m.config.level << " | "
      << Grouped(count / Median(m.append_s)) << " | " << Grouped(count / Median(m.append_flush_s))
      << " | " << Grouped(count / Median(m.append_cpu_s)) << " | "
      << Fixed(m.slowest_append_s * 1000, 0) << " | " << Grouped(count / Median(m.scan_s)) << " | "
      << Grouped(count / Median(m.scan_cpu_s)) << " | " << Fixed(flushed, 1) << " ("
      << m.sst_files_flushed << " files) | "
      << (have_compacted
              ? Fixed(compacted, 1) + " (" + std::to_string(m.sst_files_compacted) + " files)"
              : std::string("n/a"))
      << " | " << Fixed(m.approximate_bytes / count, 1) << " | "
      << Fixed(m.counted_stored_bytes / count, 1) << " | " << vs_zstd(flushed) << " | "
      << (have_compacted ? vs_zstd(compacted) : std::string("n/a")) << " | ";
    if (m.settle_error.empty()) {
      const double settled = m.sst_bytes_settled / count;
      o << Fixed(settled, 1) << " (" << m.sst_files_settled << " files, " << Fixed(m.settle_s, 1)
        << " s) | " << vs_zstd(settled) << " |\n";
    } else {
      o << "n/a | n/a |\n";
    }
  }

  if (!text.empty()) {
    o << "\n| same traffic as GoReplay text | bytes | bytes/env | vs zstd -19 | time |\n"
      << "|---|---:|---:|---:|---:|\n";
    for (const TextMeasurement& t : text) {
      if (!t.error.empty()) {
        o << "| " << t.name << " | n/a | n/a | n/a | " << t.error << " |\n";
        continue;
      }
      o << "| " << t.name << " | " << Grouped(t.bytes) << " | " << Fixed(t.bytes / count, 1)
        << " | " << vs_zstd(t.bytes / count) << " | "
        << (t.seconds > 0 ? Fixed(t.seconds, 1) + " s" : std::string("")) << " |\n";
    }
  }

  // Which mode wins, by size (settled or compacted where measured) and by ingest rate.
  auto final_bytes = [&](const Measurement& m) {
    if (m.settle_error.empty()) return m.sst_bytes_settled;
    return m.compaction_error.empty() ? m.sst_bytes_compacted : m.sst_bytes_flushed;
  };
  auto final_what = [&](const Measurement& m) {
    if (m.settle_error.empty()) return "after `sessions compact`";
    return m.compaction_error.empty() ? "compacted" : "after Flush";
  };
  auto describe = [](const Measurement& m) {
    return ModeName(m.config.compression) + " level " + std::to_string(m.config.level);
  };
  if (!results.empty()) {
    const Measurement* smallest = &results[0];
    const Measurement* fastest = &results[0];
    for (const Measurement& m : results) {
      if (final_bytes(m) < final_bytes(*smallest)) smallest = &m;
      if (Median(m.append_s) < Median(fastest->append_s)) fastest = &m;
    }
    o << "\nSmallest: " << describe(*smallest) << " (" << Fixed(final_bytes(*smallest) / count, 1)
      << " B/env). Fastest ingest (wall clock, Append): " << describe(*fastest) << " ("
      << Grouped(count / Median(fastest->append_s)) << " env/s).\n";
  }

  o << "\nChecks:";
  for (const Measurement& m : results) {
    o << "\n- " << ModeName(m.config.compression) << " level " << m.config.level << ": read back "
      << (m.mismatches == 0 ? "identical" : "with MISMATCHES") << " (" << m.mismatches
      << " differing envelopes); session counts say " << Grouped(m.counted_envelopes)
      << " envelopes, raw " << Fixed(m.counted_raw_bytes / count, 1) << " B/env";
    if (!m.compaction_error.empty()) o << "; full compaction not measured: " << m.compaction_error;
    if (!m.settle_error.empty()) o << "; `sessions compact` not measured: " << m.settle_error;
    o << "; ingest target ≥ 200,000 env/s on one writer: "
      << (count / Median(m.append_s) >= 200000 ? "met" : "NOT met")
      << "; size target ≤ 1.2× zstd -19 (issue #20): ";
    const double best = final_bytes(m) / count;
    o << (zstd19 == 0            ? "NOT measured (no zstd -19 figure: --skip-text)"
          : best <= 1.2 * zstd19 ? "met"
                                 : "NOT met");
    if (zstd19 > 0) o << " (" << Fixed(best / zstd19, 2) << "×, " << final_what(m) << ")";
  }
  o << "\n\nMachine: " << ReadFirstMatch("/proc/cpuinfo", "model name") << ", " << nproc
    << " CPUs available (nproc), " << ReadFirstMatch("/proc/meminfo", "MemTotal") << " RAM, "
    << uts.sysname << " " << uts.release << ". RocksDB " << ROCKSDB_MAJOR << "." << ROCKSDB_MINOR
    << "." << ROCKSDB_PATCH << ", libzstd " << ZSTD_versionString() << ", build "
    << DOPPEL_BUILD_TYPE << ", compiler " << __VERSION__
    << ". Load average (/proc/loadavg) "
       "before: "
    << load_before << "; after: " << ReadFile("/proc/loadavg")
    << " (other processes on the machine compete for its CPUs).\n";

  std::cout << o.str();
  return 0;
}

}  // namespace
}  // namespace doppel::bench

int main(int argc, char** argv) { return doppel::bench::Run(argc, argv); }
