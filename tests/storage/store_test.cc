#include "storage/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/slice_transform.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "storage/key_codec.h"
#include "tests/base/temp_dir.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::storage {
namespace {

using doppel::testing::MakeTempDir;
using testing::MakeEnvelope;
using v1::SessionInfo;

class StoreTest : public ::testing::TestWithParam<Compression> {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = MakeTempDir("store" + name);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen(bool read_only = false) {
    store_.reset();
    StoreOptions o;
    o.compression = GetParam();
    o.read_only = read_only;
    ASSERT_TRUE(Store::Open(o, dir_, &store_).ok());
  }
  SessionInfo Create(const std::string& name) {
    SessionInfo info;
    info.set_name(name);
    auto r = store_->CreateSession(info);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : SessionInfo();
  }
  void AppendN(const std::string& name, int n, uint64_t t0 = 1'700'000'000'000'000ull,
               uint64_t step = 1000) {
    std::vector<v1::Envelope> batch;
    for (int i = 0; i < n; ++i) {
      batch.push_back(MakeEnvelope(t0 + i * step, i, i));
      if (batch.size() == 500) {
        ASSERT_TRUE(store_->Append(name, batch).ok());
        batch.clear();
      }
    }
    if (!batch.empty()) {
      ASSERT_TRUE(store_->Append(name, batch).ok());
    }
  }
  std::vector<v1::Envelope> ScanAll(const std::string& name, ScanOptions o = {}) {
    std::vector<v1::Envelope> out;
    auto it = store_->Scan(name, o);
    EXPECT_TRUE(it.ok());
    if (!it.ok()) return out;
    for (; (*it)->Valid(); (*it)->Next()) out.push_back((*it)->envelope());
    EXPECT_TRUE((*it)->status().ok()) << (*it)->status().ToString();
    return out;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, SessionLifecycle) {
  auto a = Create("checkout");
  auto b = Create("search");
  EXPECT_NE(a.id(), b.id());
  EXPECT_EQ(a.state(), v1::SESSION_STATE_RECORDING);
  EXPECT_GT(a.created_us(), 0u);
  SessionInfo dup;
  dup.set_name("checkout");
  auto r = store_->CreateSession(dup);
  EXPECT_EQ(r.status().code(), Status::Code::kAlreadyExists);

  auto list = store_->ListSessions();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);

  AppendN("checkout", 10);
  v1::SessionCounts rc;
  rc.set_requests_seen(40);
  rc.set_sampled(10);
  ASSERT_TRUE(store_->CloseSession("checkout", rc).ok());
  auto got = store_->GetSession("checkout");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(got->counts().envelopes(), 10u);
  EXPECT_EQ(got->counts().requests_seen(), 40u);
  EXPECT_GT(got->counts().raw_bytes(), 0u);
  EXPECT_GT(got->closed_us(), 0u);
  // A closed session takes no more envelopes.
  std::vector<v1::Envelope> one = {MakeEnvelope(1, 1)};
  EXPECT_EQ(store_->Append("checkout", one).code(), Status::Code::kInvalidArgument);

  ASSERT_TRUE(store_->DeleteSession("checkout").ok());
  EXPECT_EQ(store_->GetSession("checkout").status().code(), Status::Code::kNotFound);
  // Its envelopes are gone too; the other session is untouched.
  AppendN("search", 3);
  EXPECT_EQ(ScanAll("search").size(), 3u);
  EXPECT_EQ(store_->Scan("checkout").status().code(), Status::Code::kNotFound);
}

// TakeEnvelope (what the replayer reads with) yields what envelope() shows, envelope after
// envelope, while the iterator reuses the message handed back to it.
TEST_P(StoreTest, TakeEnvelopeMatchesEnvelope) {
  Create("s");
  AppendN("s", 1200);
  const std::vector<v1::Envelope> copied = ScanAll("s");
  auto it = store_->Scan("s");
  ASSERT_TRUE(it.ok());
  v1::Envelope taken;
  size_t i = 0;
  for (; (*it)->Valid(); (*it)->Next(), ++i) {
    ASSERT_LT(i, copied.size());
    (*it)->TakeEnvelope(&taken);  // swaps the previous one back into the iterator
    ASSERT_EQ(taken.SerializeAsString(), copied[i].SerializeAsString()) << "envelope " << i;
  }
  EXPECT_EQ(i, copied.size());
  EXPECT_TRUE((*it)->status().ok());
}

TEST_P(StoreTest, ScanInTimeOrderAndRange) {
  Create("s");
  Create("other");
  // Append out of order across batches: the scan still returns time order.
  std::vector<v1::Envelope> b1, b2;
  for (int i = 0; i < 3000; ++i)
    (i % 2 ? b1 : b2).push_back(MakeEnvelope(1'000'000 + i * 10, 0, i));
  ASSERT_TRUE(store_->Append("s", b1).ok());
  ASSERT_TRUE(store_->Append("s", b2).ok());
  AppendN("other", 50, 1'000'005);
  auto all = ScanAll("s");
  ASSERT_EQ(all.size(), 3000u);
  for (size_t i = 1; i < all.size(); ++i) ASSERT_LT(all[i - 1].arrival_us(), all[i].arrival_us());
  EXPECT_EQ(all[0].request().target(), "/api/v1/orders/1000?expand=items");

  ScanOptions range;
  range.from_us = 1'000'000 + 100 * 10;
  range.to_us = 1'000'000 + 200 * 10;
  auto part = ScanAll("s", range);
  ASSERT_EQ(part.size(), 100u);
  EXPECT_EQ(part.front().arrival_us(), range.from_us);
  EXPECT_EQ(part.back().arrival_us(), range.to_us - 10);

  auto info = store_->GetSession("s");
  EXPECT_EQ(info->counts().envelopes(), 3000u);
  EXPECT_EQ(info->counts().first_arrival_us(), 1'000'000u);
  EXPECT_EQ(info->counts().last_arrival_us(), 1'000'000u + 2999 * 10);
  if (GetParam() == Compression::kEnvelopeZstdDict) {
    EXPECT_NE(info->dict_id(), 0u);  // trained on the first envelopes
    EXPECT_LT(info->counts().stored_bytes(), info->counts().raw_bytes());
  }
  // Reopening (new codec, dictionaries loaded from disk) reads the same.
  Reopen();
  EXPECT_EQ(ScanAll("s").size(), 3000u);
  Reopen(/*read_only=*/true);
  EXPECT_EQ(ScanAll("s").size(), 3000u);
  EXPECT_EQ(ScanAll("other").size(), 50u);
}

TEST_P(StoreTest, RetentionRemovesExactlyTheOldRange) {
  Create("s");
  AppendN("s", 1000, 5'000'000, 1000);  // t = 5.000s .. 5.999s
  const uint64_t cutoff = 5'000'000 + 400 * 1000;
  auto n = store_->DeleteEnvelopesBefore("s", cutoff);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->envelopes, 400u);
  EXPECT_EQ(n->runs, 0u);
  auto rest = ScanAll("s");
  ASSERT_EQ(rest.size(), 600u);
  EXPECT_EQ(rest.front().arrival_us(), cutoff);
  EXPECT_EQ(store_->GetSession("s")->counts().envelopes(), 600u);
  // Nothing before the cutoff is left, and deleting again removes nothing.
  EXPECT_EQ(store_->DeleteEnvelopesBefore("s", cutoff)->envelopes, 0u);
  Reopen();
  EXPECT_EQ(ScanAll("s").size(), 600u);
}

// Stores a completed run of `session` whose results replayed envelopes at `arrivals`.
uint32_t AddRun(Store& store, const std::string& session, std::vector<uint64_t> arrivals,
                bool from_bundle = false) {
  v1::RunInfo run;
  run.mutable_settings()->set_session(session);
  run.mutable_settings()->set_from_bundle(from_bundle);
  run.set_state(v1::RUN_STATE_COMPLETED);
  run.set_report_json("{\"excerpt\": \"recorded body\"}");
  auto created = store.CreateRun(run);
  EXPECT_TRUE(created.ok()) << created.status().ToString();
  std::vector<v1::RunResult> results;
  for (uint64_t a : arrivals) {
    v1::RunResult r;
    r.set_index(results.size());
    r.set_arrival_us(a);
    results.push_back(r);
  }
  EXPECT_TRUE(store.AppendRunResults(created->id(), results).ok());
  return created->id();
}

std::set<uint32_t> RunIds(Store& store) {
  std::set<uint32_t> ids;
  auto runs = store.ListRuns();
  EXPECT_TRUE(runs.ok()) << runs.status().ToString();
  if (runs.ok())
    for (const auto& r : *runs) ids.insert(r.id());
  return ids;
}

uint64_t ResultCount(Store& store, uint32_t run_id) {
  auto it = store.ScanRunResults(run_id);
  uint64_t n = 0;
  for (; (*it)->Valid(); (*it)->Next()) ++n;
  return n;
}

// The runs of a session quote its traffic: removing the session removes them and their
// results, and nothing else.
TEST_P(StoreTest, DeletingASessionDeletesItsRuns) {
  Create("s");
  Create("t");
  AppendN("s", 10, 5'000'000);
  const uint32_t s1 = AddRun(*store_, "s", {5'000'000, 5'001'000});
  const uint32_t s2 = AddRun(*store_, "s", {5'002'000});
  const uint32_t t1 = AddRun(*store_, "t", {5'000'000});
  const uint32_t bundle = AddRun(*store_, "s", {5'000'000}, /*from_bundle=*/true);
  auto deleted = store_->DeleteSession("s");
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(deleted->envelopes, 10u);
  EXPECT_EQ(deleted->runs, 2u);
  EXPECT_EQ(RunIds(*store_), (std::set<uint32_t>{t1, bundle}));
  EXPECT_EQ(store_->GetRun(s1).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(ResultCount(*store_, s1), 0u);
  EXPECT_EQ(ResultCount(*store_, s2), 0u);
  EXPECT_EQ(ResultCount(*store_, t1), 1u);
  Reopen();
  EXPECT_EQ(RunIds(*store_), (std::set<uint32_t>{t1, bundle}));
}

// Retention removes the runs that replayed an envelope older than the cutoff (their reports
// quote it); runs of newer envelopes only, and other sessions' runs, stay.
TEST_P(StoreTest, RetentionDeletesTheRunsThatReplayedOldEnvelopes) {
  Create("s");
  Create("t");
  AppendN("s", 1000, 5'000'000, 1000);
  const uint64_t cutoff = 5'400'000;
  const uint32_t old_and_new = AddRun(*store_, "s", {5'600'000, 5'399'000, 5'700'000});
  const uint32_t only_new = AddRun(*store_, "s", {5'400'000, 5'999'000});
  const uint32_t other = AddRun(*store_, "t", {5'000'000});
  auto deleted = store_->DeleteEnvelopesBefore("s", cutoff);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(deleted->envelopes, 400u);
  EXPECT_EQ(deleted->runs, 1u);
  EXPECT_EQ(RunIds(*store_), (std::set<uint32_t>{only_new, other}));
  EXPECT_EQ(ResultCount(*store_, old_and_new), 0u);
  EXPECT_EQ(ResultCount(*store_, only_new), 2u);
}

TEST_P(StoreTest, RunsAndResults) {
  v1::RunInfo run;
  run.mutable_settings()->set_session("s");
  run.mutable_settings()->add_targets("http://127.0.0.1:1");
  auto r1 = store_->CreateRun(run);
  auto r2 = store_->CreateRun(run);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_NE(r1->id(), r2->id());
  std::vector<v1::RunResult> results;
  for (int i = 0; i < 250; ++i) {
    v1::RunResult r;
    r.set_index(i);
    r.set_status(200);
    r.set_verdict(i % 10 ? v1::RunResult::VERDICT_MATCH : v1::RunResult::VERDICT_MISMATCH);
    results.push_back(r);
  }
  ASSERT_TRUE(store_->AppendRunResults(r1->id(), results).ok());
  ASSERT_TRUE(store_->AppendRunResults(r2->id(), std::span(results).first(5)).ok());
  auto list = store_->ListRuns();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  {
    auto it = store_->ScanRunResults(r1->id());
    ASSERT_TRUE(it.ok());
    uint64_t n = 0;
    for (; (*it)->Valid(); (*it)->Next()) EXPECT_EQ((*it)->result().index(), n++);
    EXPECT_EQ(n, 250u);
  }
  // A run left RUNNING by a dead replayer opens as INTERRUPTED.
  Reopen();
  EXPECT_EQ(store_->GetRun(r1->id())->state(), v1::RUN_STATE_INTERRUPTED);
  r1->set_state(v1::RUN_STATE_COMPLETED);
  ASSERT_TRUE(store_->UpdateRun(*r1).ok());
  ASSERT_TRUE(store_->DeleteRun(r2->id()).ok());
  EXPECT_EQ(store_->ListRuns()->size(), 1u);
  EXPECT_EQ(store_->GetRun(r1->id())->state(), v1::RUN_STATE_COMPLETED);
}

TEST_P(StoreTest, CorruptValueNamesSessionAndKeyAndCanBeSkipped) {
  auto info = Create("s");
  AppendN("s", 20);
  store_.reset();
  {
    // Overwrite one value with garbage through RocksDB directly.
    rocksdb::DBOptions dbo;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n : {"default", "sessions", "envelopes", "dicts", "runs"})
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    cfs[2].options.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(dbo, dir_, cfs, &h, &db).ok());
    std::string key = EncodeEnvelopeKey({info.id(), 1'700'000'000'000'000ull + 5 * 1000, 5});
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), h[2], key, std::string("\x01garbage", 8)).ok());
    for (auto* x : h) db->DestroyColumnFamilyHandle(x);
    delete db;
  }
  Reopen();
  auto it = store_->Scan("s");
  ASSERT_TRUE(it.ok());
  int n = 0;
  for (; (*it)->Valid(); (*it)->Next()) ++n;
  EXPECT_EQ(n, 5);
  Status s = (*it)->status();
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find("session 's'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("#5"), std::string::npos) << s.message();

  ScanOptions skip;
  skip.skip_corrupt = true;
  auto it2 = store_->Scan("s", skip);
  n = 0;
  for (; (*it2)->Valid(); (*it2)->Next()) ++n;
  EXPECT_EQ(n, 19);
  EXPECT_EQ((*it2)->skipped(), 1u);
  EXPECT_TRUE((*it2)->status().ok());
}

TEST_P(StoreTest, StoreDirectoryIsPrivate) {
  struct stat st;
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  // TempDir created it already; a store created fresh gets 0700.
  std::string fresh = dir_ + "/nested";
  std::unique_ptr<Store> s;
  ASSERT_TRUE(Store::Open(StoreOptions(), fresh, &s).ok());
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

INSTANTIATE_TEST_SUITE_P(Compression, StoreTest,
                         ::testing::Values(Compression::kBlockZstdDict,
                                           Compression::kEnvelopeZstdDict),
                         [](const auto& info) {
                           return info.param == Compression::kBlockZstdDict ? "Block" : "Envelope";
                         });

uint64_t TableFileBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".sst") n += e.file_size();
  return n;
}

// Issue #20: a closed session smaller than a memtable stayed in the uncompressed log.
// Issue #23: an envelope larger than a table block (a large captured body) is compressed
// when it is appended, in either mode: it does not sit raw in a 64 MB memtable until a flush.
// It reads back whole, between the small envelopes around it.
TEST_P(StoreTest, ALargeEnvelopeIsCompressedWhenAppended) {
  Create("big");
  std::vector<v1::Envelope> batch{MakeEnvelope(1'000, 0, 0), MakeEnvelope(2'000, 1, 1),
                                  MakeEnvelope(3'000, 2, 2)};
  batch[1].mutable_response()->set_body(std::string(1 << 20, 'b') + "end");
  ASSERT_TRUE(store_->Append("big", batch).ok());
  auto info = store_->GetSession("big");
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->counts().raw_bytes(), 1u << 20);
  EXPECT_LT(info->counts().stored_bytes(), 64u << 10);
  for (bool reopened : {false, true}) {
    if (reopened) Reopen();
    const auto all = ScanAll("big");
    ASSERT_EQ(all.size(), batch.size());
    for (size_t i = 0; i < all.size(); ++i)
      EXPECT_EQ(all[i].SerializeAsString(), batch[i].SerializeAsString()) << "envelope " << i;
  }
}

TEST_P(StoreTest, ClosingASessionWritesItToCompressedTableFiles) {
  Create("small");
  AppendN("small", 2000);
  EXPECT_EQ(TableFileBytes(dir_), 0u) << "appends alone should not have flushed";
  ASSERT_TRUE(store_->CloseSession("small", v1::SessionCounts()).ok());
  const uint64_t tables = TableFileBytes(dir_);
  auto info = store_->GetSession("small");
  ASSERT_TRUE(info.ok());
  EXPECT_GT(tables, 0u);
  EXPECT_LT(tables, info->counts().raw_bytes()) << "compressed";
  EXPECT_EQ(ScanAll("small").size(), 2000u);
}

// Issue #20: `doppel sessions compact` rewrites a closed session with the settled-data
// settings; what it reads back is unchanged, a session being recorded is refused, and the
// store keeps taking appends afterwards.
TEST_P(StoreTest, CompactingASessionKeepsItWholeAndRefusesARecordingOne) {
  Create("settled");
  AppendN("settled", 6000);
  auto refused = store_->CompactSession("settled");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("still being recorded"), std::string::npos)
      << refused.status().ToString();
  ASSERT_TRUE(store_->CloseSession("settled", v1::SessionCounts()).ok());
  const std::vector<v1::Envelope> before = ScanAll("settled");
  ASSERT_EQ(before.size(), 6000u);

  auto bytes = store_->CompactSession("settled");
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_GT(bytes->before, 0u);
  EXPECT_GT(bytes->after, 0u);
  if (GetParam() == Compression::kBlockZstdDict) {
    // 1 MiB blocks at level 12 against 64 KiB at level 3: these near-identical envelopes
    // shrink by well over a tenth.
    EXPECT_LT(bytes->after, bytes->before * 9 / 10)
        << "before " << bytes->before << ", after " << bytes->after;
  }
  Reopen();
  const std::vector<v1::Envelope> after = ScanAll("settled");
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    ASSERT_EQ(after[i].SerializeAsString(), before[i].SerializeAsString()) << "envelope " << i;
  }
  Create("next");
  AppendN("next", 100);
  EXPECT_EQ(ScanAll("next").size(), 100u);
  EXPECT_FALSE(store_->CompactSession("no-such-session").ok());
}

TEST(StoreOpen, MissingStoreIsAClearError) {
  StoreOptions o;
  o.read_only = true;
  std::unique_ptr<Store> s;
  Status st = Store::Open(o, "/nonexistent/doppel-store", &s);
  EXPECT_EQ(st.code(), Status::Code::kNotFound);
  EXPECT_NE(st.message().find("--store"), std::string::npos);
}

TEST(StoreOpen, SecondWriterIsRefusedButReadersWork) {
  std::string dir = MakeTempDir("lock");
  std::unique_ptr<Store> a, b, c;
  ASSERT_TRUE(Store::Open(StoreOptions(), dir, &a).ok());
  Status st = Store::Open(StoreOptions(), dir, &b);
  EXPECT_EQ(st.code(), Status::Code::kUnavailable) << st.ToString();
  StoreOptions ro;
  ro.read_only = true;
  EXPECT_TRUE(Store::Open(ro, dir, &c).ok());
  a.reset();
  c.reset();
  std::filesystem::remove_all(dir);
}

TEST(StoreOpen, RefusesNewerFormatVersion) {
  std::string dir = MakeTempDir("version");
  {
    std::unique_ptr<Store> s;
    ASSERT_TRUE(Store::Open(StoreOptions(), dir, &s).ok());
  }
  {
    rocksdb::DBOptions dbo;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* n : {"default", "sessions", "envelopes", "dicts", "runs"})
      cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(dbo, dir, cfs, &h, &db).ok());
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), h[0], "meta/format_version", std::string("\0\0\0\x63", 4))
            .ok());
    for (auto* x : h) db->DestroyColumnFamilyHandle(x);
    delete db;
  }
  std::unique_ptr<Store> s;
  Status st = Store::Open(StoreOptions(), dir, &s);
  EXPECT_EQ(st.code(), Status::Code::kUnsupported);
  EXPECT_NE(st.message().find("newer doppel"), std::string::npos) << st.message();
  std::filesystem::remove_all(dir);
}

// A child process appends batches and reports each acknowledged one through a pipe; the
// parent SIGKILLs it mid-stream. After reopening, every acknowledged batch is present and
// readable, and the session is INTERRUPTED.
TEST(StoreCrash, AcknowledgedBatchesSurviveSigkill) {
  for (int round = 0; round < 3; ++round) {
    std::string dir = MakeTempDir("crash" + std::to_string(round));
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      std::unique_ptr<Store> s;
      if (!Store::Open(StoreOptions(), dir, &s).ok()) ::_exit(3);
      SessionInfo info;
      info.set_name("live");
      if (!s->CreateSession(info).ok()) ::_exit(4);
      for (uint32_t b = 0;; ++b) {
        std::vector<v1::Envelope> batch;
        for (int i = 0; i < 200; ++i)
          batch.push_back(
              MakeEnvelope(1'000'000ull + b * 1000 + i, 0, static_cast<int>(b * 200 + i)));
        if (!s->Append("live", batch).ok()) ::_exit(5);
        if (::write(fds[1], &b, sizeof(b)) != sizeof(b)) ::_exit(6);
      }
    }
    ::close(fds[1]);
    uint32_t acked = 0, last = 0;
    int got = 0;
    // Let it run for a varying number of batches, then kill it without warning.
    const uint32_t kill_after = 20 + round * 37;
    while (::read(fds[0], &last, sizeof(last)) == sizeof(last)) {
      acked = last + 1;
      if (++got >= static_cast<int>(kill_after)) break;
    }
    ::kill(pid, SIGKILL);
    // Drain acknowledgements written before the kill landed.
    while (::read(fds[0], &last, sizeof(last)) == sizeof(last)) acked = last + 1;
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    ::close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited early with " << WEXITSTATUS(wstatus);
    ASSERT_GE(acked, kill_after);

    std::unique_ptr<Store> s;
    ASSERT_TRUE(Store::Open(StoreOptions(), dir, &s).ok());
    auto info = s->GetSession("live");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->state(), v1::SESSION_STATE_INTERRUPTED);
    std::set<uint64_t> seen;
    {
      auto it = s->Scan("live");
      ASSERT_TRUE(it.ok());
      for (; (*it)->Valid(); (*it)->Next()) seen.insert((*it)->envelope().arrival_us());
      ASSERT_TRUE((*it)->status().ok()) << (*it)->status().ToString();
    }
    for (uint32_t b = 0; b < acked; ++b)
      for (int i = 0; i < 200; ++i)
        ASSERT_TRUE(seen.count(1'000'000ull + b * 1000 + i)) << "batch " << b << " lost";
    // Counts in the session record match what is there (they share the batch).
    EXPECT_EQ(info->counts().envelopes(), seen.size());
    s.reset();
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace doppel::storage
