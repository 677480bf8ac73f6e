// GoReplay files (`gor --output-file`), plain or gzip.
//
// Format (GoReplay 1.x, docs/Saving-and-Replaying-from-file.md in buger/goreplay): payloads,
// each followed by the separator "\n🐵🙈🙉\n". A payload is one header line, then one raw
// HTTP/1.x message exactly as captured:
//   TYPE ID START_NS [DURATION_NS]\n
//   TYPE      1 request, 2 original response, 3 replayed response (ignored here)
//   ID        hex token shared by a request and its response
//   START_NS  capture time of the message's first byte, ns since the Unix epoch
//   DURATION  ns from the message's first to last byte (GoReplay 1.x; older files omit it)
//
// Requests and responses are paired by ID. A request waits for its response until a payload
// captured more than kPairWindowNs after it is read, and among at most kMaxPending others;
// after that (and at the end of the file) it is imported without a response, and counted.
#include <charconv>
#include <deque>
#include <string>
#include <unordered_map>

#include "interop/internal.h"
#include "interop/interop.h"
#include "interop/raw_http.h"
#include "interop/text_source.h"

namespace doppel::interop {
namespace {

using doppel::v1::Envelope;

constexpr std::string_view kSeparatorLine = "\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89";
constexpr int64_t kPairWindowNs = 60'000'000'000;  // 60 s of capture time
constexpr size_t kMaxPending = 10000;

struct Meta {
  char type = 0;
  std::string id;
  int64_t start_ns = 0;
  int64_t duration_ns = -1;  // -1: not in the file
};

Status ParseMeta(std::string_view header, Meta* m) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("header line '" + std::string(header.substr(0, 100)) + "' " +
                                   why + " (expected 'TYPE ID TIMESTAMP_NS [LATENCY_NS]')");
  };
  std::string_view fields[4];
  size_t n = 0;
  std::string_view line = header;
  while (!line.empty() && n < 4) {
    size_t sp = line.find(' ');
    fields[n++] = line.substr(0, sp);
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  if (n < 3) return bad("has fewer than 3 fields");
  if (fields[0].size() != 1 || fields[0][0] < '1' || fields[0][0] > '3')
    return bad("has a payload type other than 1, 2 or 3");
  if (fields[1].empty()) return bad("has an empty ID");
  auto integer = [](std::string_view s, int64_t* out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
  };
  m->type = fields[0][0];
  m->id = std::string(fields[1]);
  if (!integer(fields[2], &m->start_ns) || m->start_ns < 0)
    return bad("has a timestamp that is not a non-negative integer");
  m->duration_ns = -1;
  if (n > 3 && (!integer(fields[3], &m->duration_ns) || m->duration_ns < -1))
    return bad("has a latency that is not an integer");
  return Status::Ok();
}

class GorReader {
 public:
  GorReader(const std::string& label, const ImportOptions& options, const EnvelopeSink& sink,
            ImportStats* stats)
      : label_(label), options_(options), sink_(sink), stats_(stats) {}

  // One payload (without the separator), its 1-based number and byte offset.
  Status Payload(std::string_view payload, uint64_t number, uint64_t offset) {
    ++stats_->records;
    Status s = Handle(payload);
    if (!s.ok() && s.code() == Status::Code::kInvalidArgument) {
      return internal::BadRecord(
          options_, stats_,
          Status::InvalidArgument(label_ + " record " + std::to_string(number) + " (byte offset " +
                                  std::to_string(offset) + "): " + s.message()));
    }
    return s;
  }

  // Imports the requests still waiting, without a response.
  Status Finish() {
    while (!request_order_.empty()) DOPPEL_RETURN_IF_ERROR(ExpireFront(true));
    stats_->ignored += responses_.size();
    responses_.clear();
    return Status::Ok();
  }

 private:
  struct PendingRequest {
    Envelope envelope;
    Meta meta;
    uint64_t serial;
  };
  struct PendingResponse {
    std::string raw;
    Meta meta;
    uint64_t serial;
  };

  Status Handle(std::string_view payload) {
    size_t nl = payload.find('\n');
    if (nl == std::string_view::npos) return Status::InvalidArgument("payload has no header line");
    Meta meta;
    DOPPEL_RETURN_IF_ERROR(ParseMeta(payload.substr(0, nl), &meta));
    std::string_view data = payload.substr(nl + 1);
    // The window is measured from the payload being read, not from the latest time seen: a
    // file made of several captures (`cat a.gor b.gor`) may go back in time.
    now_ns_ = meta.start_ns;
    if (meta.type == '3') {
      ++stats_->ignored;
      return Status::Ok();
    }
    if (meta.type == '1') {
      Envelope e;
      Status s = ParseRawRequest(data, e.mutable_request());
      if (!s.ok()) return Status::InvalidArgument("request: " + s.message());
      e.set_arrival_us(static_cast<uint64_t>(meta.start_ns) / 1000);
      e.set_seq(static_cast<uint32_t>(next_seq_++));
      e.set_scheme("http");  // GoReplay captures plain-text HTTP only
      auto r = responses_.find(meta.id);
      if (r != responses_.end()) {  // the response came first
        PendingResponse resp = std::move(r->second);
        responses_.erase(r);
        DOPPEL_RETURN_IF_ERROR(Pair(std::move(e), meta, resp.raw, resp.meta));
      } else {
        auto old = requests_.find(meta.id);
        if (old != requests_.end()) {  // same ID again: the earlier one got no response
          Envelope unpaired = std::move(old->second.envelope);
          requests_.erase(old);
          DOPPEL_RETURN_IF_ERROR(Emit(std::move(unpaired), false));
        }
        request_order_.emplace_back(meta.id, serial_);
        requests_[meta.id] = PendingRequest{std::move(e), meta, serial_++};
      }
    } else {
      auto q = requests_.find(meta.id);
      if (q != requests_.end()) {
        PendingRequest req = std::move(q->second);
        requests_.erase(q);
        DOPPEL_RETURN_IF_ERROR(Pair(std::move(req.envelope), req.meta, data, meta));
      } else {
        if (responses_.count(meta.id)) ++stats_->ignored;  // a second response: keep the newer
        response_order_.emplace_back(meta.id, serial_);
        responses_[meta.id] = PendingResponse{std::string(data), meta, serial_++};
      }
    }
    return Expire();
  }

  Status Pair(Envelope&& e, const Meta& req, std::string_view raw_response, const Meta& resp) {
    Status s = ParseRawResponse(raw_response, e.request().method() == "HEAD", e.mutable_response());
    if (!s.ok()) {
      // The request is good: import it without a response, and report the response.
      e.clear_response();
      DOPPEL_RETURN_IF_ERROR(Emit(std::move(e), false));
      return Status::InvalidArgument("response: " + s.message());
    }
    // Latency: request's last byte to response's last byte, as the recorder measures it.
    int64_t sent = req.start_ns + std::max<int64_t>(req.duration_ns, 0);
    int64_t done = resp.start_ns + std::max<int64_t>(resp.duration_ns, 0);
    e.mutable_response()->set_latency_us(done > sent ? static_cast<uint64_t>(done - sent) / 1000
                                                     : 0);
    return Emit(std::move(e), true);
  }

  Status Emit(Envelope&& e, bool paired) {
    if (!paired) ++stats_->without_response;
    ++stats_->envelopes;
    return sink_(std::move(e));
  }

  // Drops order entries whose request was paired (or replaced), then expires the oldest
  // waiting request when it is out of the window.
  Status ExpireFront(bool force) {
    auto [id, serial] = request_order_.front();
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second.serial != serial) {
      request_order_.pop_front();
      return Status::Ok();
    }
    if (!force && it->second.meta.start_ns + kPairWindowNs >= now_ns_ &&
        requests_.size() <= kMaxPending)
      return Status::Ok();
    Envelope e = std::move(it->second.envelope);
    requests_.erase(it);
    request_order_.pop_front();
    return Emit(std::move(e), false);
  }

  Status Expire() {
    while (!request_order_.empty()) {
      size_t before = request_order_.size();
      DOPPEL_RETURN_IF_ERROR(ExpireFront(false));
      if (request_order_.size() == before) break;
    }
    while (!response_order_.empty()) {
      auto [id, serial] = response_order_.front();
      auto it = responses_.find(id);
      if (it != responses_.end() && it->second.serial == serial) {
        if (it->second.meta.start_ns + kPairWindowNs >= now_ns_ && responses_.size() <= kMaxPending)
          break;
        responses_.erase(it);
        ++stats_->ignored;  // its request never came
      }
      response_order_.pop_front();
    }
    return Status::Ok();
  }

  const std::string& label_;
  const ImportOptions& options_;
  const EnvelopeSink& sink_;
  ImportStats* stats_;
  std::unordered_map<std::string, PendingRequest> requests_;
  std::unordered_map<std::string, PendingResponse> responses_;
  std::deque<std::pair<std::string, uint64_t>> request_order_, response_order_;
  int64_t now_ns_ = 0;
  uint64_t next_seq_ = 0, serial_ = 0;
};

}  // namespace

Status ReadGor(std::istream& in, const std::string& source, const ImportOptions& options,
               const EnvelopeSink& sink, ImportStats* stats) {
  const std::string label = "GoReplay '" + source + "'";
  TextSource src(in, label);
  // A gor killed mid-capture leaves a .gz without its end: with --skip-bad, import what is
  // there and count the cut.
  src.set_allow_truncated_gzip(options.skip_bad);
  GorReader reader(label, options, sink, stats);
  std::string line, payload;
  uint64_t number = 1, start = 0;
  while (src.ReadLine(&line, internal::kMaxRecordBytes)) {
    if (line == kSeparatorLine && src.last_line_terminated()) {
      // The '\n' before the separator line belongs to the separator.
      if (!payload.empty() && payload.back() == '\n') payload.pop_back();
      DOPPEL_RETURN_IF_ERROR(reader.Payload(payload, number, start));
      payload.clear();
      ++number;
      start = src.offset();
      continue;
    }
    if (payload.size() + line.size() + 1 > internal::kMaxRecordBytes)
      return Status::ResourceExhausted(label + " record " + std::to_string(number) +
                                       ": larger than " +
                                       std::to_string(internal::kMaxRecordBytes >> 20) + " MiB");
    payload += line;
    if (src.last_line_terminated()) payload += '\n';
  }
  if (!src.status().ok()) return src.status().WithContext("record " + std::to_string(number));
  if (src.truncated_gzip()) {
    DOPPEL_RETURN_IF_ERROR(internal::BadRecord(
        options, stats,
        Status::InvalidArgument(label + " record " + std::to_string(number) +
                                ": the gzip stream ends early (truncated file); the records "
                                "before it were imported")));
  } else if (payload.find_first_not_of(" \t\r\n") != std::string::npos) {
    DOPPEL_RETURN_IF_ERROR(internal::BadRecord(
        options, stats,
        Status::InvalidArgument(label + " record " + std::to_string(number) + " (byte offset " +
                                std::to_string(start) +
                                "): the file ends inside the record, before its separator "
                                "(truncated file?)")));
  }
  return reader.Finish();
}

}  // namespace doppel::interop
