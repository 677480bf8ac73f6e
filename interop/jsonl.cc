// JSON Lines: one envelope per line, the object EnvelopeToJson makes (docs/jsonl-format.md).
#include <boost/json.hpp>
#include <unordered_map>

#include "interop/envelope_json.h"
#include "interop/internal.h"
#include "interop/interop.h"
#include "interop/text_source.h"

namespace doppel::interop {
namespace {
namespace json = boost::json;

bool Blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

// (arrival_us, seq) is the envelope's key in the store: two lines with the same pair would
// silently overwrite each other, so the second is a bad record.
struct KeyHash {
  size_t operator()(const std::pair<uint64_t, uint32_t>& k) const {
    return std::hash<uint64_t>()(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
  }
};

}  // namespace

Status ReadJsonl(std::istream& in, const std::string& source, const ImportOptions& options,
                 const EnvelopeSink& sink, ImportStats* stats) {
  const std::string label = "JSON Lines '" + source + "'";
  TextSource src(in, label);
  src.set_allow_truncated_gzip(options.skip_bad);  // see ReadGor
  json::parse_options opts;
  opts.max_depth = 64;
  json::parser parser(json::storage_ptr(), opts);
  std::unordered_map<std::pair<uint64_t, uint32_t>, uint64_t, KeyHash> first_line_of;
  std::string line;
  uint64_t line_no = 0;
  while (src.ReadLine(&line, internal::kMaxRecordBytes)) {
    ++line_no;
    if (src.truncated_gzip() && !src.last_line_terminated()) break;  // cut by the end
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (Blank(line)) continue;
    ++stats->records;
    const std::string where = label + " line " + std::to_string(line_no);
    parser.reset();
    json::error_code ec;
    size_t used = parser.write(line.data(), line.size(), ec);
    if (ec) {
      DOPPEL_RETURN_IF_ERROR(internal::BadRecord(
          options, stats,
          Status::InvalidArgument(where + ", column " + std::to_string(used + 1) +
                                  ": not valid JSON (" + ec.message() + ")")));
      continue;
    }
    json::value v = parser.release();
    doppel::v1::Envelope e;
    Status s = v.is_object() ? EnvelopeFromJson(v.get_object(), &e)
                             : Status::InvalidArgument("the line is not a JSON object");
    if (!s.ok()) {
      DOPPEL_RETURN_IF_ERROR(
          internal::BadRecord(options, stats, Status::InvalidArgument(where + ": " + s.message())));
      continue;
    }
    const auto [at, fresh] = first_line_of.try_emplace({e.arrival_us(), e.seq()}, line_no);
    if (!fresh) {
      DOPPEL_RETURN_IF_ERROR(internal::BadRecord(
          options, stats,
          Status::InvalidArgument(
              where + ": arrival_us " + std::to_string(e.arrival_us()) + " with seq " +
              std::to_string(e.seq()) + " repeats line " + std::to_string(at->second) +
              "; the pair is the envelope's id and must be unique in a session (give one of "
              "them another seq)")));
      continue;
    }
    ++stats->envelopes;
    DOPPEL_RETURN_IF_ERROR(sink(std::move(e)));
  }
  if (!src.status().ok()) return src.status().WithContext("at line " + std::to_string(line_no + 1));
  if (src.truncated_gzip())
    return internal::BadRecord(
        options, stats,
        Status::InvalidArgument(label + " line " + std::to_string(line_no) +
                                ": the gzip stream ends early (truncated file); the lines "
                                "before it were imported"));
  return Status::Ok();
}

Status WriteJsonl(storage::Store& store, const std::string& session, std::ostream& out,
                  ExportStats* stats) {
  DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(session));
  ExportStats local;
  if (!stats) stats = &local;
  std::string line;
  for (; it->Valid(); it->Next()) {
    line = json::serialize(EnvelopeToJson(it->envelope()));
    line += '\n';
    if (!out.write(line.data(), static_cast<std::streamsize>(line.size())))
      return Status::IoError("writing JSON Lines failed (disk full or closed pipe?)");
    ++stats->envelopes;
    stats->bytes += line.size();
  }
  return it->status();
}

}  // namespace doppel::interop
