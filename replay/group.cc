#include "replay/group.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <utility>

#include "replay/run_sink.h"

namespace doppel::replay {
namespace {

using stream::RedisReply;

// Both scripts keep the workers set: a worker's last sign of life on Redis's clock (ZADD),
// those silent longer than the window dropped, one that leaves removed; `active` is how many
// are left, whose share of --rate each worker sends.

// KEYS: the workers set. ARGV: consumer, window (ms), "1" when joining. Returns {active
// workers, -1}; when joining while a worker of the same name showed a sign of life within the
// window, {0, milliseconds since}, writing nothing. Sent at Join and every heartbeat interval,
// so a worker that joins is counted at once.
constexpr char kHeartbeatScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if ARGV[3] == '1' then
  local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if seen then return {0, now - tonumber(seen)} end
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
return {redis.call('ZCARD', KEYS[1]), -1}
)lua";

// KEYS: the stream, the results hash, the workers set. ARGV: group, consumer, the worker's
// state, window (ms), "1" when the worker leaves, the number of entries to acknowledge, "1"
// when the worker has read back all its own pending entries (then its pending count is
// checked; else each entry's owner), the number of entries released, the entries to
// acknowledge, the entries released (left pending, to go idle and be claimed by another
// worker), then the entries the worker still holds (their idle time is reset). Returns {-1, 0},
// writing nothing, when any entry given is no longer pending for this consumer (another worker
// claimed it); else {acknowledged, active workers}.
constexpr char kCommitScript[] = R"lua(
local stream, results, workers = KEYS[1], KEYS[2], KEYS[3]
local group, consumer, state = ARGV[1], ARGV[2], ARGV[3]
local n_done, n_released = tonumber(ARGV[6]), tonumber(ARGV[8])
local first, last = 9, #ARGV
if ARGV[7] == '1' then
  -- The worker knows every entry pending for it: it holds them all exactly when its count
  -- of pending entries is theirs (entries leave a consumer only by XACK or a claim).
  local summary = redis.call('XPENDING', stream, group)
  local mine = 0
  if summary[4] then
    for _, c in ipairs(summary[4]) do
      if c[1] == consumer then mine = tonumber(c[2]) end
    end
  end
  if mine ~= last - first + 1 then return {-1, 0} end
else
  for i = first, last do
    local p = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)
    if #p == 0 or p[1][2] ~= consumer then return {-1, 0} end
  end
end
redis.call('HSET', results, consumer, state)
local function in_chunks(from, to, head, tail)
  local i = from
  while i <= to do
    local args = {}
    for _, a in ipairs(head) do args[#args + 1] = a end
    local j = math.min(i + 499, to)
    for k = i, j do args[#args + 1] = ARGV[k] end
    for _, a in ipairs(tail) do args[#args + 1] = a end
    redis.call(unpack(args))
    i = j + 1
  end
end
in_chunks(first, first + n_done - 1, {'XACK', stream, group}, {})
in_chunks(first + n_done + n_released, last, {'XCLAIM', stream, group, consumer, '0'},
          {'JUSTID'})
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[5] == '1' then
  redis.call('ZREM', workers, consumer)
else
  redis.call('ZADD', workers, now, consumer)
end
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now - tonumber(ARGV[4]))
return {n_done, redis.call('ZCARD', workers)}
)lua";

// A group name goes into key names and error messages: printable, no spaces.
Status CheckGroupName(const std::string& group) {
  if (group.empty()) return Status::InvalidArgument("--group needs a name (e.g. --group ci-42)");
  if (group.size() > 200 || std::any_of(group.begin(), group.end(),
                                        [](unsigned char c) { return c <= ' ' || c >= 0x7f; })) {
    return Status::InvalidArgument("--group '" + group +
                                   "' must be 1 to 200 printable characters without spaces");
  }
  return Status::Ok();
}

// The group's checks of one stream it reads (a client's url().stream): a stream, or, for a
// shard, no key yet (*exists false); on a Redis Cluster, the group's keys beside it in its slot.
Status CheckStream(stream::RedisClient& client, const std::string& group, bool shard,
                   bool* exists) {
  const std::string& key = client.url().stream;
  DOPPEL_ASSIGN_OR_RETURN(RedisReply type, client.Command({"TYPE", key}));
  DOPPEL_RETURN_IF_ERROR(stream::ExpectType(type, RedisReply::Type::kStatus, "TYPE"));
  *exists = type.str != "none";
  if (type.str == "none" && !shard)
    return Status::NotFound(client.url().ToString() +
                            ": no such stream; record into it first (doppel record --sink " +
                            client.url().ToString() + ")");
  if (*exists && type.str != "stream")
    return Status::InvalidArgument(client.url().ToString() + ": the key holds a " + type.str +
                                   ", not a stream");
  return stream::CheckSameSlot(client, {stream::DictionariesKey(key), GroupResultsKey(key, group),
                                        GroupWorkersKey(key, group)});
}

// The fields of a flat [name, value, name, value, ...] reply (XINFO).
const RedisReply* Field(const RedisReply& flat, std::string_view name) {
  for (size_t i = 0; i + 1 < flat.elements.size(); i += 2)
    if (flat.elements[i].str == name) return &flat.elements[i + 1];
  return nullptr;
}

struct GroupInfo {
  bool found = false;
  uint64_t pending = 0;
  // Entries not yet delivered to the group. Redis 7 answers nil when it cannot tell (entries
  // deleted after the group's position, a group set to an id in mid-stream): UnreadOf counts.
  std::optional<uint64_t> lag;
  std::string last_delivered;  // the id of the last entry delivered to the group
  std::vector<std::string> names;
};

Result<GroupInfo> InfoOf(stream::RedisClient& client, const std::string& key,
                         const std::string& group) {
  DOPPEL_ASSIGN_OR_RETURN(RedisReply groups, client.Command({"XINFO", "GROUPS", key}));
  DOPPEL_RETURN_IF_ERROR(stream::ExpectType(groups, RedisReply::Type::kArray, "XINFO GROUPS"));
  GroupInfo info;
  for (const RedisReply& g : groups.elements) {
    const RedisReply* name = Field(g, "name");
    if (name == nullptr) continue;
    info.names.push_back(name->str);
    if (name->str != group) continue;
    info.found = true;
    if (const RedisReply* p = Field(g, "pending"); p && p->type == RedisReply::Type::kInteger)
      info.pending = static_cast<uint64_t>(std::max(0LL, p->integer));
    if (const RedisReply* l = Field(g, "lag"); l && l->type == RedisReply::Type::kInteger)
      info.lag = static_cast<uint64_t>(std::max(0LL, l->integer));
    if (const RedisReply* id = Field(g, "last-delivered-id")) info.last_delivered = id->str;
  }
  return info;
}

// The entries of stream `key` the group has not been delivered yet: its lag, or, where Redis
// cannot tell it, a count of the entries after its last delivered id (XRANGE, a page at a time).
Result<uint64_t> UnreadOf(stream::RedisClient& client, const std::string& key,
                          const GroupInfo& info) {
  if (info.lag) return *info.lag;
  constexpr int kPage = 1000;
  uint64_t unread = 0;
  std::string after = info.last_delivered.empty() ? "0-0" : info.last_delivered;
  for (;;) {
    DOPPEL_ASSIGN_OR_RETURN(RedisReply page, client.Command({"XRANGE", key, "(" + after, "+",
                                                             "COUNT", std::to_string(kPage)}));
    DOPPEL_RETURN_IF_ERROR(stream::ExpectType(page, RedisReply::Type::kArray, "XRANGE " + key));
    unread += page.elements.size();
    if (page.elements.size() < static_cast<size_t>(kPage)) return unread;
    const RedisReply& last = page.elements.back();
    if (last.elements.empty() || last.elements[0].str.empty())
      return Status::Internal("XRANGE " + key + " answered an entry without an id");
    after = last.elements[0].str;
  }
}

Result<uint64_t> LengthOf(stream::RedisClient& client, const std::string& key) {
  DOPPEL_ASSIGN_OR_RETURN(RedisReply len, client.Command({"XLEN", key}));
  DOPPEL_RETURN_IF_ERROR(stream::ExpectType(len, RedisReply::Type::kInteger, "XLEN"));
  return static_cast<uint64_t>(std::max(0LL, len.integer));
}

Result<doppel::v1::WorkerState> ParseWorkerState(const std::string& key, const std::string& field,
                                                 const std::string& value) {
  doppel::v1::WorkerState w;
  if (!w.ParseFromString(value))
    return Status::Corruption(key + " field '" + field +
                              "' is not a replay worker's state (it does not parse)");
  return w;
}

void AddCounters(const doppel::v1::WorkerState& from, doppel::v1::WorkerState* to) {
  to->set_replayed(to->replayed() + from.replayed());
  to->set_claimed(to->claimed() + from.claimed());
  to->set_undecodable(to->undecodable() + from.undecodable());
  to->set_trimmed(to->trimmed() + from.trimmed());
  for (const auto& [reason, n] : from.skipped()) (*to->mutable_skipped())[reason] += n;
}

}  // namespace

struct GroupSource::Lane {
  stream::RedisClientPtr client;  // its url().stream is the lane's stream
  stream::EntryDecoder decoder;
  const std::string& key() const { return client->url().stream; }

  std::deque<std::pair<Held, doppel::v1::Envelope>> buffer;  // read, not yet returned
  size_t in_flight = 0;                                      // returned by Next, not completed yet
  std::vector<std::string> done;  // counted or skipped, to acknowledge at the next commit
  // Left to the others (cut short by SIGINT): still pending for this worker, not refreshed.
  std::vector<std::string> released;
  bool history_done = false;  // this consumer's own pending entries read back
  std::string history_cursor = "0";
  std::string claim_cursor = "0-0";
  uint64_t last_claim_us = 0;
  bool new_entries = true;    // the last XREADGROUP > had entries
  bool others_hold = false;   // the last fetch found nothing, and other workers hold entries
  uint64_t dry_since_us = 0;  // the last fetch found nothing (0: it found entries)
  bool written = false;       // this worker has a state here (read an entry, or before)

  doppel::v1::WorkerState counters;             // of this lane's entries
  report::RunAggregator* aggregator = nullptr;  // counts this lane's entries
  std::unique_ptr<report::RunAggregator> part;  // sharded: the lane's own aggregator
};

std::string GroupResultsKey(const std::string& stream, const std::string& group) {
  return stream + ":doppel:group:" + group + ":results";
}

std::string GroupWorkersKey(const std::string& stream, const std::string& group) {
  return stream + ":doppel:group:" + group + ":workers";
}

void GroupSink::OnCompleted(const Completed& c) {
  const bool counted = !Interrupted(c);
  if (counted) run_sink_->OnCompleted(c, group_->PartOf(c.index));
  group_->Completed(c, counted);
}

GroupSource::GroupSource(GroupOptions options, stream::RedisUrl url,
                         std::shared_ptr<const Selector> selector, const Clock& clock)
    : options_(std::move(options)),
      url_(std::move(url)),
      selector_(std::move(selector)),
      clock_(clock) {}

GroupSource::~GroupSource() = default;

Result<std::unique_ptr<GroupSource>> GroupSource::Join(const GroupOptions& options,
                                                       std::shared_ptr<const Selector> selector,
                                                       const Clock& clock) {
  DOPPEL_RETURN_IF_ERROR(CheckGroupName(options.group));
  DOPPEL_ASSIGN_OR_RETURN(stream::RedisUrl url, stream::ParseRedisUrl(options.url));
  if (options.claim_idle_us < 3'000'000)
    return Status::InvalidArgument(
        "--claim-idle must be at least 3s: a worker's entries are claimed by the others once "
        "they have been idle that long, and a live worker refreshes them about once a second");
  GroupOptions o = options;
  if (o.consumer.empty()) o.consumer = stream::DefaultClientName();
  DOPPEL_ASSIGN_OR_RETURN(stream::StreamSet streams, stream::OpenStreams(url));
  std::unique_ptr<GroupSource> source(
      new GroupSource(std::move(o), url, std::move(selector), clock));
  GroupSource& s = *source;
  const std::string& group = s.options_.group;
  for (stream::RedisClientPtr& client : streams.clients) {
    auto lane = std::make_unique<Lane>();
    lane->client = std::move(client);
    const std::string& key = lane->key();
    bool exists = false;
    DOPPEL_RETURN_IF_ERROR(CheckStream(*lane->client, group, streams.shards > 0, &exists));
    // A shard nothing was written to yet is created empty: a recorder may still fill it.
    std::vector<std::string> create = {"XGROUP", "CREATE", key, group, "0"};
    if (!exists) create.push_back("MKSTREAM");
    DOPPEL_ASSIGN_OR_RETURN(RedisReply created, lane->client->Command(std::move(create)));
    if (created.is_error() && created.str.rfind("BUSYGROUP", 0) != 0)
      return Status::Internal("XGROUP CREATE " + key + " " + group + ": " + created.str);
    DOPPEL_RETURN_IF_ERROR(lane->decoder.LoadDictionaries(*lane->client));
    DOPPEL_ASSIGN_OR_RETURN(const uint64_t entries, LengthOf(*lane->client, key));
    DOPPEL_ASSIGN_OR_RETURN(GroupInfo info, InfoOf(*lane->client, key, group));
    DOPPEL_ASSIGN_OR_RETURN(const uint64_t unread, UnreadOf(*lane->client, key, info));
    s.entries_ += entries;
    s.unread_ += unread;
    lane->counters.set_consumer(s.options_.consumer);
    s.lanes_.push_back(std::move(lane));
  }
  s.session_.set_name(url.stream);
  DOPPEL_RETURN_IF_ERROR(s.Heartbeat(/*joining=*/true));
  return source;
}

Status GroupSource::Heartbeat(bool joining) {
  Lane& lane = *lanes_[0];
  DOPPEL_ASSIGN_OR_RETURN(
      RedisReply r,
      Call(lane, {"EVAL", kHeartbeatScript, "1", GroupWorkersKey(lane.key(), options_.group),
                  options_.consumer, std::to_string(options_.claim_idle_us / 1000),
                  joining ? "1" : "0"}));
  if (r.type != RedisReply::Type::kArray || r.elements.size() != 2 ||
      r.elements[0].type != RedisReply::Type::kInteger ||
      r.elements[1].type != RedisReply::Type::kInteger)
    return Status::Internal("heartbeat to group '" + options_.group + "': Redis answered " +
                            stream::DescribeReply(r));
  if (r.elements[0].integer < 1) {
    return Status::InvalidArgument(
        "a worker named '" + options_.consumer + "' showed a sign of life in group '" +
        options_.group + "' " + std::to_string(r.elements[1].integer) +
        " ms ago: give each worker its own --consumer (a worker that died may take its name "
        "again once --claim-idle has passed)");
  }
  rate_share_ = 1.0 / static_cast<double>(r.elements[0].integer);
  last_heartbeat_us_ = NowUs();
  return Status::Ok();
}

void GroupSource::MaybeHeartbeat() {
  if (!status_.ok() || NowUs() - last_heartbeat_us_ < options_.heartbeat_interval_us) return;
  if (Status s = Heartbeat(/*joining=*/false); !s.ok()) status_ = s;
}

Status GroupSource::Rewind() {
  return Status::InvalidArgument(
      "a worker group's stream is read once; --loop is not available with --group");
}

Result<RedisReply> GroupSource::Call(Lane& lane, std::vector<std::string> argv) {
  auto reply = lane.client->Command(argv);
  if (!reply.ok() && lane.client->broken()) {
    // One reconnect: a dropped idle connection is not a reason to stop a worker.
    DOPPEL_RETURN_IF_ERROR(lane.client->Reconnect());
    reply = lane.client->Command(std::move(argv));
  }
  return reply;
}

doppel::v1::WorkerState GroupSource::counters() const {
  doppel::v1::WorkerState total;
  total.set_consumer(options_.consumer);
  for (const auto& lane : lanes_) AddCounters(lane->counters, &total);
  return total;
}

report::RunAggregator* GroupSource::PartOf(uint64_t index) const {
  if (lanes_.size() == 1) return nullptr;
  auto it = dispatched_.find(index);
  return it == dispatched_.end() ? nullptr : it->second.first->aggregator;
}

Status GroupSource::Start(RunSink* sink, report::RunAggregator* aggregator) {
  sink_ = sink;
  aggregator_ = aggregator;
  const v1::AggregatorState mine = aggregator->SaveState();
  DOPPEL_ASSIGN_OR_RETURN(report::AggregatorOptions options,
                          report::RunAggregator::OptionsOf(mine));
  for (auto& lane_ptr : lanes_) {
    Lane& lane = *lane_ptr;
    if (lanes_.size() == 1) {
      lane.aggregator = aggregator;
    } else {
      lane.part = std::make_unique<report::RunAggregator>(options);
      lane.aggregator = lane.part.get();
    }
    const std::string key = GroupResultsKey(lane.key(), options_.group);
    DOPPEL_ASSIGN_OR_RETURN(RedisReply all, Call(lane, {"HGETALL", key}));
    DOPPEL_RETURN_IF_ERROR(stream::ExpectType(all, RedisReply::Type::kArray, "HGETALL " + key));
    for (size_t i = 0; i + 1 < all.elements.size(); i += 2) {
      const std::string& consumer = all.elements[i].str;
      DOPPEL_ASSIGN_OR_RETURN(doppel::v1::WorkerState w,
                              ParseWorkerState(key, consumer, all.elements[i + 1].str));
      if (consumer == options_.consumer) {
        Status merged = aggregator->MergeState(w.aggregator());
        if (merged.ok() && lane.part) merged = lane.part->MergeState(w.aggregator());
        if (!merged.ok())
          return merged.WithContext("consumer '" + consumer + "' of group '" + options_.group +
                                    "' has results from a replay with other flags; give another "
                                    "--consumer, or a new --group");
        AddCounters(w, &lane.counters);
        lane.written = true;
        continue;
      }
      report::RunAggregator check(options);
      if (Status s = check.MergeState(w.aggregator()); !s.ok())
        return s.WithContext("worker '" + consumer + "' of group '" + options_.group +
                             "' replays with other flags; every worker of a group needs the "
                             "same --target list, --secondary and --fail-* settings");
    }
  }
  last_commit_us_ = NowUs();
  commit_every_us_ = options_.commit_interval_us;
  return Status::Ok();
}

Status GroupSource::Take(Lane& lane, const RedisReply& entries, bool claimed) {
  for (const RedisReply& entry : entries.elements) {
    lane.written = true;
    // A pending entry deleted from the stream (MAXLEN) comes back as [id, nil].
    if (entry.type == RedisReply::Type::kArray && entry.elements.size() == 2 &&
        entry.elements[0].type == RedisReply::Type::kString &&
        entry.elements[1].type == RedisReply::Type::kNil) {
      lane.counters.set_trimmed(lane.counters.trimmed() + 1);
      lane.done.push_back(entry.elements[0].str);
      continue;
    }
    stream::StreamEnvelope decoded;
    Status s = lane.decoder.Decode(*lane.client, entry, &decoded);
    if (!s.ok()) {
      if (s.code() != Status::Code::kCorruption) return s;
      // Acknowledged and counted, never retried: no worker could decode it either.
      lane.counters.set_undecodable(lane.counters.undecodable() + 1);
      lane.done.push_back(entry.elements[0].str);
      continue;
    }
    if (claimed) lane.counters.set_claimed(lane.counters.claimed() + 1);
    const Decision d = selector_->Decide(decoded.envelope);
    if (d != Decision::kSend) {
      ++(*lane.counters.mutable_skipped())[std::string(kDecisionNames.Name(d))];
      lane.done.push_back(std::move(decoded.entry_id));
      continue;
    }
    Held held{std::move(decoded.entry_id), decoded.envelope.arrival_us(), decoded.envelope.seq()};
    lane.buffer.emplace_back(std::move(held), std::move(decoded.envelope));
  }
  return Status::Ok();
}

// Refills the lane's buffer: this consumer's own pending entries first (left by an earlier
// process under the same --consumer), then entries idle past --claim-idle (a worker died),
// then new ones. Sets lane.others_hold when there are none but other workers still hold
// entries.
Status GroupSource::Fetch(Lane& lane) {
  lane.others_hold = false;
  size_t n = options_.read_count;
  if (options_.rate > 0) {
    // About half a second of this worker's share, over all its lanes.
    const double half_second =
        std::ceil(options_.rate * rate_share_ * 0.5 / static_cast<double>(lanes_.size()));
    n = static_cast<size_t>(std::clamp(half_second, 1.0, static_cast<double>(n)));
  }
  const std::string count = std::to_string(n);
  const std::string& key = lane.key();
  const std::string& group = options_.group;
  const std::string& me = options_.consumer;
  // [[stream, [entries]]], or nil when there are none.
  auto entries_of = [&](const RedisReply& r) -> const RedisReply* {
    if (r.type != RedisReply::Type::kArray || r.elements.size() != 1) return nullptr;
    const RedisReply& s = r.elements[0];
    if (s.type != RedisReply::Type::kArray || s.elements.size() != 2 ||
        s.elements[1].type != RedisReply::Type::kArray) {
      return nullptr;
    }
    return &s.elements[1];
  };
  if (!lane.history_done) {
    DOPPEL_ASSIGN_OR_RETURN(RedisReply r, Call(lane, {"XREADGROUP", "GROUP", group, me, "COUNT",
                                                      count, "STREAMS", key, lane.history_cursor}));
    if (r.is_error()) return Status::Internal("XREADGROUP " + key + ": " + r.str);
    const RedisReply* entries = entries_of(r);
    if (entries == nullptr || entries->elements.empty()) {
      lane.history_done = true;
    } else {
      const RedisReply& last = entries->elements.back();
      if (last.type == RedisReply::Type::kArray && !last.elements.empty())
        lane.history_cursor = last.elements[0].str;
      return Take(lane, *entries, /*claimed=*/false);
    }
  }
  // Entries of a dead worker are looked for at most once a second while new ones come, and
  // every time there are none.
  const uint64_t now = NowUs();
  if (now - lane.last_claim_us >= 1'000'000 || !lane.new_entries) {
    lane.last_claim_us = now;
    DOPPEL_ASSIGN_OR_RETURN(RedisReply r, Call(lane, {"XAUTOCLAIM", key, group, me,
                                                      std::to_string(options_.claim_idle_us / 1000),
                                                      lane.claim_cursor, "COUNT", count}));
    if (r.is_error()) return Status::Internal("XAUTOCLAIM " + key + ": " + r.str);
    if (r.type != RedisReply::Type::kArray || r.elements.size() < 2 ||
        r.elements[1].type != RedisReply::Type::kArray)
      return Status::Internal("XAUTOCLAIM " + key + " answered " + stream::DescribeReply(r));
    lane.claim_cursor = r.elements[0].str.empty() ? "0-0" : r.elements[0].str;
    if (r.elements.size() >= 3 && r.elements[2].type == RedisReply::Type::kArray)
      lane.counters.set_trimmed(lane.counters.trimmed() + r.elements[2].elements.size());
    if (!r.elements[1].elements.empty()) return Take(lane, r.elements[1], /*claimed=*/true);
  }
  {
    DOPPEL_ASSIGN_OR_RETURN(RedisReply r, Call(lane, {"XREADGROUP", "GROUP", group, me, "COUNT",
                                                      count, "STREAMS", key, ">"}));
    if (r.is_error()) {
      if (r.str.rfind("NOGROUP", 0) == 0)
        return Status::NotFound("group '" + group + "' on " + lane.client->url().ToString() +
                                " was deleted while this worker ran");
      return Status::Internal("XREADGROUP " + key + ": " + r.str);
    }
    const RedisReply* entries = entries_of(r);
    lane.new_entries = entries != nullptr && !entries->elements.empty();
    if (lane.new_entries) return Take(lane, *entries, /*claimed=*/false);
  }
  // Nothing to read: the end, unless other workers still hold entries (which may come back).
  DOPPEL_ASSIGN_OR_RETURN(RedisReply p, Call(lane, {"XPENDING", key, group}));
  if (p.type != RedisReply::Type::kArray || p.elements.empty() ||
      p.elements[0].type != RedisReply::Type::kInteger)
    return Status::Internal("XPENDING " + key + " answered " + stream::DescribeReply(p));
  uint64_t others = static_cast<uint64_t>(std::max(0LL, p.elements[0].integer));
  if (p.elements.size() >= 4 && p.elements[3].type == RedisReply::Type::kArray) {
    for (const RedisReply& c : p.elements[3].elements) {
      if (c.elements.size() != 2 || c.elements[0].str != me) continue;
      const uint64_t mine = std::strtoull(c.elements[1].str.c_str(), nullptr, 10);
      others -= std::min(others, mine);
    }
  }
  lane.others_hold = others > 0;
  return Status::Ok();
}

bool GroupSource::Next(doppel::v1::Envelope* envelope) {
  retry_after_us_ = 0;
  // A lane that came up empty is asked again when no lane has entries left, or after a
  // second: while the other shards keep the worker busy, an empty one costs no round trips.
  constexpr uint64_t kDryRecheckUs = 1'000'000;
  auto done_entries = [this] {
    size_t n = 0;
    for (const auto& lane : lanes_) n += lane->done.size();
    return n;
  };
  while (status_.ok()) {
    if (done_entries() > 0 && NowUs() - last_commit_us_ >= commit_every_us_) {
      if (Status s = Commit(false, false); !s.ok()) return false;
    }
    const size_t acknowledged = done_entries();
    bool buffered = false;
    for (const auto& lane : lanes_) buffered = buffered || !lane->buffer.empty();
    for (auto& lane_ptr : lanes_) {
      Lane& lane = *lane_ptr;
      if (!lane.buffer.empty()) continue;
      if (buffered && lane.dry_since_us != 0 && NowUs() - lane.dry_since_us < kDryRecheckUs)
        continue;
      if (Status s = Fetch(lane); !s.ok()) {
        status_ = s.WithContext("group '" + options_.group + "' on " + url_.ToString());
        return false;
      }
      lane.dry_since_us = lane.buffer.empty() ? std::max<uint64_t>(NowUs(), 1) : 0;
      buffered = buffered || !lane.buffer.empty();
    }
    // The shards merge by capture time, as a sharded stream's reader does.
    Lane* next = nullptr;
    for (auto& lane : lanes_) {
      if (lane->buffer.empty()) continue;
      if (next == nullptr ||
          lane->buffer.front().first.arrival_us < next->buffer.front().first.arrival_us)
        next = lane.get();
    }
    if (next != nullptr) {
      MaybeHeartbeat();
      auto& [held, e] = next->buffer.front();
      *envelope = std::move(e);
      dispatched_.emplace(next_index_++, std::make_pair(next, std::move(held)));
      ++next->in_flight;
      next->buffer.pop_front();
      return true;
    }
    // Entries the selection left out (or that did not decode) are no reason to stop.
    if (done_entries() == acknowledged) {
      // The end, unless other workers still hold entries (which may come back).
      for (const auto& lane : lanes_)
        if (lane->others_hold) retry_after_us_ = options_.retry_us;
      return false;
    }
  }
  return false;
}

void GroupSource::Completed(const replay::Completed& c, bool counted) {
  if (!status_.ok()) return;
  auto it = dispatched_.find(c.index);
  if (it == dispatched_.end() || it->second.second.arrival_us != c.envelope->arrival_us() ||
      it->second.second.seq != c.envelope->seq()) {
    status_ = Status::Internal("request " + std::to_string(c.index) +
                               " finished but is not the entry the group source handed out for "
                               "it; stopping without acknowledging it");
    return;
  }
  auto& [lane, held] = it->second;
  --lane->in_flight;
  if (counted) {
    lane->done.push_back(std::move(held.id));
    lane->counters.set_replayed(lane->counters.replayed() + 1);
  } else {
    lane->released.push_back(std::move(held.id));
  }
  dispatched_.erase(it);
  Tick();
}

void GroupSource::Tick() {
  if (!status_.ok() || sink_ == nullptr) return;
  if (NowUs() - last_commit_us_ >= commit_every_us_) {
    (void)Commit(false, false);  // an error is in status_
    return;
  }
  MaybeHeartbeat();
}

Status GroupSource::Commit(bool finished, bool leaving) {
  if (!status_.ok()) return status_;
  if (sink_ == nullptr || aggregator_ == nullptr)
    return status_ = Status::Internal("GroupSource::Commit before Start");
  // Results not saved in the store are reported by the run at its end; they do not hold the
  // group back.
  (void)sink_->Flush();
  size_t largest = 0;
  for (size_t i = 0; i < lanes_.size(); ++i) {
    Lane& lane = *lanes_[i];
    // Lane 0 keeps the worker in the workers set; another lane is written when it has
    // something to acknowledge, release or keep, and at the end when it has a state.
    const bool busy =
        !lane.done.empty() || !lane.released.empty() || lane.in_flight > 0 || !lane.buffer.empty();
    if (i > 0 && !busy && !((finished || leaving) && lane.written)) continue;
    size_t bytes = 0;
    if (Status s = CommitLane(lane, finished, leaving, &bytes); !s.ok()) return status_ = s;
    largest = std::max(largest, bytes);
  }
  // A large state (many fields, exemplar bodies) is written less often: a second per 4 MiB,
  // but at most a third of --claim-idle, as the commit is also what keeps held entries alive.
  const uint64_t per_4mib = 1 + largest / (4u << 20);
  commit_every_us_ = std::clamp(options_.commit_interval_us * per_4mib, options_.commit_interval_us,
                                std::max(options_.commit_interval_us, options_.claim_idle_us / 3));
  last_heartbeat_us_ = NowUs();
  last_commit_us_ = NowUs();
  return Status::Ok();
}

Status GroupSource::CommitLane(Lane& lane, bool finished, bool leaving, size_t* state_bytes) {
  doppel::v1::WorkerState w = lane.counters;
  *w.mutable_aggregator() = lane.aggregator->SaveState();
  w.set_updated_us(clock_.WallUs());
  w.set_finished(finished);
  std::string state = w.SerializeAsString();
  *state_bytes = state.size();
  std::vector<std::string> argv = {"EVAL",
                                   kCommitScript,
                                   "3",
                                   lane.key(),
                                   GroupResultsKey(lane.key(), options_.group),
                                   GroupWorkersKey(lane.key(), options_.group),
                                   options_.group,
                                   options_.consumer,
                                   std::move(state),
                                   std::to_string(options_.claim_idle_us / 1000),
                                   leaving ? "1" : "0",
                                   std::to_string(lane.done.size()),
                                   lane.history_done ? "1" : "0",
                                   std::to_string(lane.released.size())};
  argv.insert(argv.end(), lane.done.begin(), lane.done.end());
  argv.insert(argv.end(), lane.released.begin(), lane.released.end());
  for (const auto& [index, dispatched] : dispatched_)
    if (dispatched.first == &lane) argv.push_back(dispatched.second.id);
  for (const auto& [held, e] : lane.buffer) argv.push_back(held.id);
  auto reply = Call(lane, std::move(argv));
  const std::string what = "committing results to the group on " + lane.client->url().ToString();
  if (!reply.ok()) return reply.status().WithContext(what);
  if (reply->is_error()) return Status::Internal(what + ": " + reply->str);
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 2 ||
      reply->elements[0].type != RedisReply::Type::kInteger ||
      reply->elements[1].type != RedisReply::Type::kInteger)
    return Status::Internal(what + ": Redis answered " + stream::DescribeReply(*reply));
  if (reply->elements[0].integer < 0) {
    return Status::Unavailable(
        "entries this worker held were claimed by another worker (was it paused longer than "
        "--claim-idle?); its results since its last commit are left out and the others replay "
        "those entries");
  }
  if (&lane == lanes_[0].get() && reply->elements[1].integer >= 1)
    rate_share_ = 1.0 / static_cast<double>(reply->elements[1].integer);
  lane.done.clear();
  lane.written = true;
  return Status::Ok();
}

Result<GroupReport> LoadGroupReport(const std::string& url_text, const std::string& group) {
  DOPPEL_RETURN_IF_ERROR(CheckGroupName(group));
  DOPPEL_ASSIGN_OR_RETURN(stream::RedisUrl url, stream::ParseRedisUrl(url_text));
  DOPPEL_ASSIGN_OR_RETURN(stream::StreamSet streams, stream::OpenStreams(url));
  GroupReport out;
  bool found = false;
  std::vector<std::string> names;  // the groups there are, for the error
  std::map<std::string, doppel::v1::WorkerState> workers;
  std::unique_ptr<report::RunAggregator> merged;
  for (stream::RedisClientPtr& client : streams.clients) {
    const std::string& key = client->url().stream;
    bool exists = false;
    DOPPEL_RETURN_IF_ERROR(CheckStream(*client, group, streams.shards > 0, &exists));
    if (!exists) continue;  // a shard nothing was written to, nor any worker read
    DOPPEL_ASSIGN_OR_RETURN(const uint64_t entries, LengthOf(*client, key));
    out.entries += entries;
    DOPPEL_ASSIGN_OR_RETURN(GroupInfo info, InfoOf(*client, key, group));
    for (const std::string& n : info.names)
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    if (!info.found) {  // no worker has read this shard: all of it is unread
      out.unread += entries;
      continue;
    }
    found = true;
    out.pending += info.pending;
    DOPPEL_ASSIGN_OR_RETURN(const uint64_t unread, UnreadOf(*client, key, info));
    out.unread += unread;
    const std::string results = GroupResultsKey(key, group);
    DOPPEL_ASSIGN_OR_RETURN(RedisReply all, client->Command({"HGETALL", results}));
    DOPPEL_RETURN_IF_ERROR(stream::ExpectType(all, RedisReply::Type::kArray, "HGETALL " + results));
    for (size_t i = 0; i + 1 < all.elements.size(); i += 2) {
      const std::string& consumer = all.elements[i].str;
      DOPPEL_ASSIGN_OR_RETURN(doppel::v1::WorkerState w,
                              ParseWorkerState(results, consumer, all.elements[i + 1].str));
      if (!merged) {
        auto options = report::RunAggregator::OptionsOf(w.aggregator());
        if (!options.ok())
          return options.status().WithContext(results + " field '" + consumer + "'");
        options->session = url.stream;
        merged = std::make_unique<report::RunAggregator>(std::move(*options));
      }
      if (Status s = merged->MergeState(w.aggregator()); !s.ok())
        return s.WithContext("worker '" + consumer + "'");
      AddCounters(w, &out.totals);
      // A worker's states on several shards are one worker: counts add, and it has finished
      // when it said so on each.
      auto [it, first] = workers.emplace(consumer, doppel::v1::WorkerState());
      doppel::v1::WorkerState& whole = it->second;
      AddCounters(w, &whole);
      whole.set_consumer(consumer);
      whole.set_finished(w.finished() && (first || whole.finished()));
      whole.set_updated_us(std::max(whole.updated_us(), w.updated_us()));
    }
  }
  if (!found) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    return Status::NotFound("no group '" + group + "' on " + url.ToString() +
                            (list.empty() ? " (it has none" : " (its groups: " + list) +
                            "); a group is created by the first `doppel replay --from " +
                            url.ToString() + " --group NAME`");
  }
  if (!merged)
    return Status::NotFound("group '" + group + "' on " + url.ToString() +
                            " has no results yet: no worker has committed any");
  for (auto& [consumer, w] : workers) out.workers.push_back(std::move(w));  // by name
  out.report = merged->Finish();
  return out;
}

}  // namespace doppel::replay
