// Replay with a group of workers (docs/distributed.md, "Replay with a group of workers"):
// `doppel replay --from redis://HOST:PORT/STREAM --group NAME --target ...`, started on N
// machines, shares the stream through a Redis consumer group, so each entry is replayed by one
// worker and counted once in the merged report.
//
//   worker                                       Redis
//   ──────                                       ─────
//   GroupSource::Next  ── own history (a restart under the same --consumer),
//                         XAUTOCLAIM (entries idle > --claim-idle: a worker died),
//                         XREADGROUP > (new entries) ──► the group's pending entries list
//   engine, RunSink, RunAggregator (as any replay)
//   GroupSink ── every --commit-interval: ──────► one EVAL: check every entry it holds is still
//                RunSink::Flush, then the            its own, HSET the worker's state (the
//                aggregator's state                  aggregator's, whole) under the group, XACK
//                                                    what that state counts, refresh the idle
//                                                    time of what it still holds
//
// Exactly once: an entry is acknowledged in the same transaction that writes the state
// counting it. A worker that dies leaves its unacknowledged entries pending, and its last
// written state counts none of them; they go idle and another worker claims and replays them.
// A worker whose entries were claimed while it was alive (paused longer than --claim-idle)
// finds out at its next commit, writes nothing and stops with an error: the entries it held
// are replayed by the others, and its earlier commits stand.
//
// --rate is the group's: each worker sends 1/N of it, N being the workers with a sign of life
// (a commit) within --claim-idle; a worker that ends leaves at once, so the others speed up.
//
// Keys beside the stream: STREAM:doppel:group:NAME:results, a hash from consumer name to its
// WorkerState (proto/doppel/v1/group.proto); STREAM:doppel:group:NAME:workers, a sorted set
// of the workers by their last commit.
//
// A sharded stream (`doppel record --sink-shards K`: streams STREAM{0} .. STREAM{K-1}, each on
// its own Redis Cluster slot) is read through one group per shard, under the same NAME, each
// with the keys above beside its shard. A worker reads every shard on a connection of its own
// (to the shard's master) and keeps one aggregator per shard beside its whole one: a commit
// writes, in each shard's slot, the state counting exactly the entries it acknowledges there,
// so exactly-once holds shard by shard without a transaction across nodes. The workers set of
// shard 0 is the one --rate is shared by. `doppel report` merges every shard's states.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "doppel/v1/group.pb.h"
#include "replay/replay.h"
#include "replay/request_plan.h"
#include "replay/source.h"
#include "report/aggregate.h"
#include "stream/envelope_stream.h"
#include "stream/redis_client.h"

namespace doppel::replay {

class RunSink;

struct GroupOptions {
  std::string url;                           // redis://[:PASSWORD@]HOST[:PORT]/STREAM
  std::string group;                         // --group
  std::string consumer;                      // --consumer; "" = HOSTNAME-PID
  uint64_t claim_idle_us = 30'000'000;       // --claim-idle
  uint64_t commit_interval_us = 1'000'000;   // state written and entries acknowledged
  uint64_t heartbeat_interval_us = 250'000;  // sign of life between commits; --rate shares
  size_t read_count = 100;                   // entries per XREADGROUP / XAUTOCLAIM, at most
  // --rate's highest rate (requests per second) for the group, 0 with --speed or --max: a
  // worker then reads about half a second of its share at a time, so that at the end no
  // worker still holds much while the others have nothing left.
  double rate = 0;
  uint64_t retry_us = 200'000;  // nothing to read, others hold entries: wait
};

// The hash of a group's worker states.
std::string GroupResultsKey(const std::string& stream, const std::string& group);
// The sorted set of a group's workers by their last sign of life (Redis's clock, ms).
std::string GroupWorkersKey(const std::string& stream, const std::string& group);

// The Redis side of one worker: the engine's source, and the commits.
class GroupSource final : public EnvelopeSource {
 public:
  // Connects, checks that the stream exists, creates the group on it (from its first entry)
  // or joins it, and loads the dictionaries; for a sharded stream, on each shard. The selector is
  // applied here: entries it leaves out are acknowledged at the next commit and counted in
  // WorkerState.skipped, and Next returns only entries it sends. Errors: a bad URL or group name,
  // Redis not reachable, no such stream (InvalidArgument/Unavailable/NotFound, for exit 2).
  // Intervals are timed and states stamped with `clock`. REQUIRES: `clock` outlives the source.
  static Result<std::unique_ptr<GroupSource>> Join(const GroupOptions& options,
                                                   std::shared_ptr<const Selector> selector,
                                                   const Clock& clock);
  ~GroupSource() override;

  bool Next(doppel::v1::Envelope* envelope) override;
  Status status() const override { return status_; }
  Status Rewind() override;
  const doppel::v1::SessionInfo& session() const override { return session_; }
  uint64_t RetryAfterUs() const override { return retry_after_us_; }

  // Before the replay. Merges the state this consumer wrote before (a worker restarted under
  // the same --consumer goes on counting where it stopped) into `aggregator`, and checks that
  // the other workers' states merge with its options (the same targets and settings), so a
  // worker started with other flags fails at once, not at `doppel report`.
  // REQUIRES: `sink` and `aggregator` outlive the replay.
  Status Start(RunSink* sink, report::RunAggregator* aggregator);
  // The engine finished the request it dispatched as `c.index` (every envelope Next returns
  // is dispatched, in order): acknowledged at the next commit when `counted`, else left
  // pending for another worker. Commits when the commit interval has passed.
  void Completed(const Completed& c, bool counted);
  // Called about once a second whatever the engine does (its progress timer): commits when
  // the commit interval has passed, else sends a heartbeat when that is due, so the entries a
  // worker holds stay its own however slowly it sends (--rate 0.01 keeps one for 100 s).
  void Tick();
  // Flushes the sink and writes the state, acknowledging every entry it counts; `finished`
  // marks the worker done, `leaving` takes it out of the workers sharing --rate. An error
  // stops the worker (status() says why).
  Status Commit(bool finished, bool leaving);
  // 1 / the workers active in the group (those with a sign of life within --claim-idle), as
  // of the last commit.
  double RateShare() const override { return rate_share_; }

  // The counters of this worker (no aggregator state), as last committed or since, over
  // every shard.
  doppel::v1::WorkerState counters() const;
  // The aggregator counting the entry dispatched as `index` apart (its shard's, for the
  // commits there), or null when the stream is not sharded (the whole one does).
  report::RunAggregator* PartOf(uint64_t index) const;
  const std::string& consumer() const { return options_.consumer; }
  // At Join: entries in the stream (XLEN; over every shard) and entries the group has not
  // read yet (its lag; the stream's length when Redis cannot tell).
  uint64_t entries() const { return entries_; }
  uint64_t unread() const { return unread_; }

 private:
  struct Held {  // an entry read and not yet acknowledged
    std::string id;
    uint64_t arrival_us = 0;
    uint32_t seq = 0;
  };
  struct Lane;  // one stream the worker reads: the URL's, or one shard of a sharded stream
  GroupSource(GroupOptions options, stream::RedisUrl url, std::shared_ptr<const Selector> selector,
              const Clock& clock);
  Status Fetch(Lane& lane);
  // The workers set: this worker's sign of life, and the share of --rate it sends.
  Status Heartbeat(bool joining);
  void MaybeHeartbeat();  // when heartbeat_interval_us has passed; an error goes to status_
  // Entries of an XREADGROUP / XAUTOCLAIM reply into the buffer (or the acknowledged-unsent).
  Status Take(Lane& lane, const stream::RedisReply& entries, bool claimed);
  Status CommitLane(Lane& lane, bool finished, bool leaving, size_t* state_bytes);
  Result<stream::RedisReply> Call(Lane& lane, std::vector<std::string> argv);
  uint64_t NowUs() const { return clock_.NowUs(); }

  GroupOptions options_;
  stream::RedisUrl url_;
  std::shared_ptr<const Selector> selector_;
  const Clock& clock_;
  doppel::v1::SessionInfo session_;
  uint64_t entries_ = 0, unread_ = 0;

  std::vector<std::unique_ptr<Lane>> lanes_;  // lanes_[0] keeps the workers set for --rate
  std::unordered_map<uint64_t, std::pair<Lane*, Held>> dispatched_;  // by dispatch index
  uint64_t next_index_ = 0;
  uint64_t retry_after_us_ = 0;
  uint64_t last_commit_us_ = 0;
  uint64_t commit_every_us_ = 0;  // commit_interval_us, longer for large states
  uint64_t last_heartbeat_us_ = 0;
  double rate_share_ = 1;
  Status status_;

  RunSink* sink_ = nullptr;
  report::RunAggregator* aggregator_ = nullptr;
};

// The ResultSink a worker's engine reports to: the run's sink first, then the group.
class GroupSink final : public ResultSink {
 public:
  static bool Interrupted(const Completed& c) {
    for (const TargetOutcome& t : *c.targets)
      if (t.error == "interrupted") return true;
    return c.secondary != nullptr && c.secondary->error == "interrupted";
  }
  GroupSink(RunSink* run_sink, GroupSource* group) : run_sink_(run_sink), group_(group) {}
  // A request cut short by SIGINT/SIGTERM on some lane is not counted here: its entry stays
  // pending and another worker replays it whole.
  void OnCompleted(const Completed& c) override;

 private:
  RunSink* run_sink_;
  GroupSource* group_;
};

// `doppel report --from redis://... --group NAME`: every worker's state merged into one
// report, with the verdict rules of a single replay (counts add; significance on the merged
// counts).
struct GroupReport {
  report::Report report;
  std::vector<doppel::v1::WorkerState> workers;  // without their aggregator states
  uint64_t entries = 0;                          // in the stream (XLEN)
  uint64_t pending = 0;                          // read by a worker, not acknowledged
  uint64_t unread = 0;                           // not read by any worker yet
  doppel::v1::WorkerState totals;                // the workers' counters added
};

// Errors: a bad URL, Redis not reachable, no such stream or group (NotFound, listing the
// groups there are), no worker results yet, states that do not merge (workers run with other
// targets or settings) or do not parse.
Result<GroupReport> LoadGroupReport(const std::string& url, const std::string& group);

}  // namespace doppel::replay
