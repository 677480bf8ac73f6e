// Commands that read and manage the store: sessions, cat, export, import, runs.
// export/import speak bundle, HAR, JSON Lines, GoReplay (in) and curl (out): interop/interop.h.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <vector>

#include "base/enum_names.h"
#include "base/log.h"
#include "base/time_format.h"
#include "base/units.h"
#include "diff/endpoint.h"
#include "diff/grpc.h"
#include "diff/rules.h"
#include "interop/envelope_json.h"
#include "interop/interop.h"
#include "interop/session_classes.h"
#include "net/proto_headers.h"
#include "net/url.h"
#include "redact/redactor.h"
#include "storage/store.h"
#include "stream/redis_client.h"
#include "stream/stream_import.h"
#include "tools/cli.h"

namespace doppel::cli {
namespace {

using storage::Store;
using storage::StoreOptions;

constexpr log::Component kStoreLog{"store", "doppel"};

int Fail(const Status& s) {
  log::Error(kStoreLog, s.ToString());
  return kExitError;
}

std::unique_ptr<Store> OpenStore(const GlobalOptions& g, bool read_only, Status* status) {
  StoreOptions o;
  o.read_only = read_only;
  o.create_if_missing = !read_only;
  std::unique_ptr<Store> store;
  *status = Store::Open(o, g.store, &store);
  return store;
}

constexpr EnumNames<v1::SessionState, 5> kSessionStateNames{
    {"unknown", "recording", "closed", "interrupted", "imported"}};
static_assert(v1::SessionState_ARRAYSIZE == 5, "kSessionStateNames names every SessionState");

std::string FormatTime(uint64_t us) { return us == 0 ? "-" : FormatUtc(static_cast<int64_t>(us)); }

int SessionsList(const GlobalOptions& g) {
  Status s;
  auto store = OpenStore(g, true, &s);
  if (!s.ok()) return Fail(s);
  auto list = store->ListSessions();
  if (!list.ok()) return Fail(list.status());
  if (list->empty()) {
    std::cout << "no sessions in " << g.store << " (record one with `doppel record`)\n";
    return kExitOk;
  }
  std::printf("%-32s %-11s %10s %10s  %s\n", "NAME", "STATE", "ENVELOPES", "STORED", "CREATED");
  for (const auto& info : *list) {
    if (info.name().rfind(".import.", 0) == 0) continue;  // an import in progress
    std::printf("%-32s %-11s %10llu %10s  %s\n", info.name().c_str(),
                std::string(kSessionStateNames.Name(info.state())).c_str(),
                static_cast<unsigned long long>(info.counts().envelopes()),
                FormatBytes(info.counts().stored_bytes()).c_str(),
                FormatTime(info.created_us()).c_str());
  }
  return kExitOk;
}

int SessionsShow(const GlobalOptions& g, const std::string& name) {
  Status s;
  auto store = OpenStore(g, true, &s);
  if (!s.ok()) return Fail(s);
  auto info = store->GetSession(name);
  if (!info.ok()) return Fail(info.status());
  const auto& c = info->counts();
  auto disk = store->ApproximateSessionBytes(name);
  std::cout << "name:          " << info->name() << "\n"
            << "id:            " << info->id() << "\n"
            << "state:         " << kSessionStateNames.Name(info->state()) << "\n"
            << "source:        " << (info->source().empty() ? "record" : info->source()) << "\n"
            << "upstream:      " << info->upstream() << "\n"
            << "created:       " << FormatTime(info->created_us()) << "\n"
            << "closed:        " << FormatTime(info->closed_us()) << "\n"
            << "first request: " << FormatTime(c.first_arrival_us()) << "\n"
            << "last request:  " << FormatTime(c.last_arrival_us()) << "\n"
            << "envelopes:     " << c.envelopes() << "\n"
            << "raw bytes:     " << FormatBytes(c.raw_bytes()) << "\n"
            << "value bytes:   " << FormatBytes(c.stored_bytes()) << "\n"
            << "on disk (≈):   " << (disk.ok() ? FormatBytes(*disk) : "?") << "\n";
  if (info->has_sampling())
    std::cout << "sampling:      " << info->sampling().percent() << "%"
              << (info->sampling().key().empty() ? "" : " by " + info->sampling().key()) << "\n";
  if (c.requests_seen())
    std::cout << "requests seen: " << c.requests_seen() << " (sampled " << c.sampled()
              << ", dropped " << c.dropped() << ", errors " << c.errors() << ")\n";
  return kExitOk;
}

constexpr const char* kClassRulesHelp =
    "diff rules file whose \"endpoints\" patterns name the endpoints of envelopes recorded "
    "without a class (coverage sessions keep the class they were recorded with)";

// --class-rules FILE: the endpoint patterns of a diff rules file; none: automatic templating.
Result<diff::EndpointNamer> ClassNamer(const std::string& rules_file) {
  if (rules_file.empty()) return diff::EndpointNamer();
  auto namer = diff::LoadEndpointNamer(rules_file);
  if (!namer.ok()) return namer.status().WithContext("--class-rules");
  return namer;
}

int SessionsClasses(const GlobalOptions& g, const std::string& name,
                    const std::string& class_rules) {
  auto namer = ClassNamer(class_rules);
  if (!namer.ok()) return Fail(namer.status());
  Status s;
  auto store = OpenStore(g, true, &s);
  if (!s.ok()) return Fail(s);
  auto rows = interop::SessionClasses(*store, name, *namer);
  if (!rows.ok()) return Fail(rows.status());
  uint64_t total = 0;
  double requests = 0;
  for (const auto& r : *rows) {
    total += r.count;
    requests += r.requests;
  }
  // SHARE: of the envelopes; MIX: of the requests they stand for (the recorder's count of the
  // class, or 1/p each), the traffic's mix.
  std::printf("%8s %7s %7s  %-24s %-24s  %s\n", "COUNT", "SHARE", "MIX", "FIRST", "LAST",
              "CLASS  (example)");
  for (const auto& r : *rows) {
    std::printf("%8llu %6.2f%% %6.2f%%  %-24s %-24s  %s  (%s)\n",
                static_cast<unsigned long long>(r.count), 100.0 * r.count / total,
                100.0 * r.requests / requests, FormatTime(r.first_us).c_str(),
                FormatTime(r.last_us).c_str(), r.label.c_str(), r.example.c_str());
  }
  std::cout << rows->size() << " classes, " << total << " envelopes\n";
  return kExitOk;
}

int SessionsMinimize(const GlobalOptions& g, const std::string& name, const std::string& out,
                     uint32_t per_class, const std::string& class_rules) {
  auto namer = ClassNamer(class_rules);
  if (!namer.ok()) return Fail(namer.status());
  Status s;
  auto store = OpenStore(g, false, &s);
  if (!s.ok()) return Fail(s);
  auto r = interop::MinimizeSession(*store, name, out, per_class, *namer);
  if (!r.ok()) return Fail(r.status());
  const double saved = r->bytes_in == 0 ? 0
                                        : 100.0 * static_cast<double>(r->bytes_in - r->bytes_kept) /
                                              static_cast<double>(r->bytes_in);
  std::printf(
      "session '%s': kept %llu of %llu envelopes, %llu classes (up to %u each); %s of %s, "
      "%.1f%% saved\n",
      out.c_str(), static_cast<unsigned long long>(r->envelopes_kept),
      static_cast<unsigned long long>(r->envelopes_in), static_cast<unsigned long long>(r->classes),
      per_class, FormatBytes(r->bytes_kept).c_str(), FormatBytes(r->bytes_in).c_str(), saved);
  return kExitOk;
}

// "1 run", "2 runs".
std::string Runs(uint64_t n) { return std::to_string(n) + (n == 1 ? " run" : " runs"); }

int SessionsRm(const GlobalOptions& g, const std::string& name) {
  Status s;
  auto store = OpenStore(g, false, &s);
  if (!s.ok()) return Fail(s);
  auto deleted = store->DeleteSession(name);
  if (!deleted.ok()) return Fail(deleted.status());
  std::cout << "removed session '" << name << "' (" << deleted->envelopes << " envelopes) and its "
            << Runs(deleted->runs) << "\n";
  return kExitOk;
}

int Retain(const GlobalOptions& g, const std::string& name, uint64_t older_than_s) {
  Status s;
  auto store = OpenStore(g, false, &s);
  if (!s.ok()) return Fail(s);
  uint64_t now_us = static_cast<uint64_t>(std::time(nullptr)) * 1000000;
  uint64_t cutoff = now_us > older_than_s * 1000000 ? now_us - older_than_s * 1000000 : 0;
  auto deleted = store->DeleteEnvelopesBefore(name, cutoff);
  if (!deleted.ok()) return Fail(deleted.status());
  std::cout << "deleted " << deleted->envelopes << " envelopes older than " << FormatTime(cutoff)
            << " from '" << name << "', and " << Runs(deleted->runs)
            << " that replayed envelopes that old\n";
  return kExitOk;
}

int SessionsCompact(const GlobalOptions& g, const std::string& name) {
  Status s;
  auto store = OpenStore(g, false, &s);
  if (!s.ok()) return Fail(s);
  auto info = store->GetSession(name);
  if (!info.ok()) return Fail(info.status());
  const auto start = std::chrono::steady_clock::now();
  auto bytes = store->CompactSession(name);
  if (!bytes.ok()) return Fail(bytes.status());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t n = info->counts().envelopes();
  std::ostringstream line;
  line << std::fixed << std::setprecision(0) << "compacted session '" << name << "' (" << n
       << " envelopes): on disk " << FormatBytes(bytes->before) << " -> "
       << FormatBytes(bytes->after) << " ("
       << (n > 0 ? static_cast<double>(bytes->after) / static_cast<double>(n) : 0.0)
       << " B/envelope), " << std::setprecision(1) << seconds << " s\n";
  std::cout << line.str();
  return kExitOk;
}

// `cat --proto-set`: a gRPC call's request and response messages decoded to JSON beside the
// raw bodies, as "grpc_messages" (one object for one message, an array for a stream), or
// "grpc_messages_error" saying why they could not be (a cut body, a method the set lacks).
// Import reads the bodies and ignores both.
void AddGrpcMessages(const doppel::v1::Envelope& e, const diff::GrpcSchema& schema,
                     boost::json::object* out) {
  constexpr size_t kMaxMessageBytes = 64u << 20;
  const std::string path(net::TargetPath(e.request().target()));
  auto add = [&](const auto& part, bool response, const char* key) {
    const std::string* type = net::FindHeader(part.headers(), "content-type");
    if (type == nullptr || !diff::IsGrpcContentType(*type) || !out->contains(key)) return;
    const std::string* coding = net::FindHeader(part.headers(), "grpc-encoding");
    auto json = diff::DecodeGrpcBody(part.body(), coding ? *coding : "", path, response, &schema,
                                     kMaxMessageBytes);
    boost::json::object& o = (*out)[key].as_object();
    boost::system::error_code ec;
    if (json.ok()) {
      boost::json::value v = boost::json::parse(*json, ec);
      if (!ec) {
        o["grpc_messages"] = std::move(v);
        return;
      }
    }
    o["grpc_messages_error"] =
        json.ok() ? "decoded messages are not JSON: " + ec.message() : json.status().message();
  };
  // A request's content-type names the call; its response may be trailers-only.
  const std::string* request_type = net::FindHeader(e.request().headers(), "content-type");
  if (request_type == nullptr || !diff::IsGrpcContentType(*request_type)) return;
  add(e.request(), false, "request");
  add(e.response(), true, "response");
}

int Cat(const GlobalOptions& g, const std::string& name, uint64_t limit, bool skip_corrupt,
        const std::string& proto_set) {
  std::shared_ptr<const diff::GrpcSchema> schema;
  if (!proto_set.empty()) {
    auto loaded = diff::GrpcSchema::Load(proto_set);
    if (!loaded.ok()) return Fail(loaded.status().WithContext("--proto-set"));
    schema = std::move(*loaded);
  }
  Status s;
  auto store = OpenStore(g, true, &s);
  if (!s.ok()) return Fail(s);
  storage::ScanOptions so;
  so.skip_corrupt = skip_corrupt;
  auto it = store->Scan(name, so);
  if (!it.ok()) return Fail(it.status());
  uint64_t n = 0;
  for (; (*it)->Valid() && (limit == 0 || n < limit); (*it)->Next(), ++n) {
    boost::json::object o = interop::EnvelopeToJson((*it)->envelope());
    if (schema) AddGrpcMessages((*it)->envelope(), *schema, &o);
    std::cout << boost::json::serialize(o) << "\n";
  }
  std::cout.flush();
  if ((*it)->skipped())
    log::Warn(kStoreLog,
              "skipped " + std::to_string((*it)->skipped()) + " envelopes that do not decode",
              {{"skipped", (*it)->skipped()}});
  if (!(*it)->status().ok()) return Fail((*it)->status());
  return kExitOk;
}

// `doppel export` arguments: the session and file may come as positionals or, as before
// interop, as --session/--out.
struct ExportArgs {
  std::string session, file, session_opt, out_opt, format, id, target;
};

int UsageError(const std::string& what) {
  log::Error(kStoreLog, what);
  return kExitError;
}

// `doppel export SESSION redis://HOST:PORT/STREAM`: the session appended to a stream, as a
// recorder writes it, for a group of replay workers (docs/distributed.md).
int ExportRedis(const GlobalOptions& g, const std::string& name, const std::string& text,
                const ExportArgs& a) {
  if (!a.format.empty() || !a.id.empty() || !a.target.empty())
    return UsageError("export: --format, --id and --target do not apply to a Redis stream");
  auto url = stream::ParseRedisUrl(text);
  if (!url.ok()) return UsageError("export: " + url.status().message());
  Status s;
  auto store = OpenStore(g, true, &s);
  if (!s.ok()) return Fail(s);
  uint64_t exported = 0;
  s = stream::ExportToStream(*store, name, *url, "export:" + name, &exported);
  if (!s.ok() && exported > 0)
    s = s.WithContext("export to " + url->ToString() + " stopped after " +
                      std::to_string(exported) + " envelopes");
  if (!s.ok()) return Fail(s);
  std::cout << "exported " << exported << " envelopes of '" << name << "' to " << url->ToString()
            << "\n";
  return kExitOk;
}

int Export(const GlobalOptions& g, const ExportArgs& a) {
  if (!a.session.empty() && !a.session_opt.empty() && a.session != a.session_opt)
    return UsageError("export: give the session once (SESSION or --session)");
  if (!a.file.empty() && !a.out_opt.empty() && a.file != a.out_opt)
    return UsageError("export: give the file once (FILE or --out)");
  const std::string name = a.session.empty() ? a.session_opt : a.session;
  std::string file = a.file.empty() ? a.out_opt : a.file;
  if (name.empty()) return UsageError("export: which session? doppel export SESSION FILE");
  if (stream::IsRedisUrl(file)) return ExportRedis(g, name, file, a);
  interop::InteropFormat format = interop::ExportFormatForPath(file);
  if (!a.format.empty()) {
    auto f = interop::ParseInteropFormat(a.format);
    if (!f.ok()) return UsageError("export --format: " + f.status().message());
    format = *f;
  }
  if (format == interop::InteropFormat::kGor)
    return UsageError(
        "export: GoReplay is an import format only; export bundle, har, jsonl or curl");
  const bool curl = format == interop::InteropFormat::kCurl;
  if (curl && a.id.empty())
    return UsageError("export --format curl needs --id ARRIVAL_US.SEQ (see `doppel cat`)");
  if (!curl && (!a.id.empty() || !a.target.empty()))
    return UsageError("export: --id and --target go with --format curl");
  if (curl && file.empty()) file = "-";
  if (file.empty())
    return UsageError("export: which file? doppel export SESSION FILE ('-' = stdout)");

  Status s;
  auto store = OpenStore(g, true, &s);
  if (!s.ok()) return Fail(s);
  if (curl) {
    auto id = interop::ParseEnvelopeId(a.id);
    if (!id.ok()) return UsageError("export --id: " + id.status().message());
    auto envelope = interop::FindEnvelope(*store, name, *id);
    if (!envelope.ok()) return Fail(envelope.status());
    interop::CurlOptions co;
    co.target = a.target;
    auto command = interop::CurlCommand(*envelope, co);
    if (!command.ok()) return Fail(command.status());
    s = interop::WriteTextFile(file, [&](std::ostream& out) {
      out << *command;
      return Status::Ok();
    });
    if (!s.ok()) return Fail(s);
    if (file == "-") return kExitOk;
    std::cout << "wrote a curl command for envelope " << a.id << " of '" << name << "' to " << file
              << "\n";
    return kExitOk;
  }
  interop::ExportStats stats;
  s = interop::ExportFile(*store, name, format, file, &stats);
  if (!s.ok()) return Fail(s);
  std::ostringstream summary;
  summary << "exported " << stats.envelopes << " envelopes of '" << name << "' to "
          << (file == "-" ? "stdout" : file) << " (" << interop::InteropFormatName(format) << ", "
          << FormatBytes(stats.bytes) << ")";
  const std::string refused =
      stats.refused == 0 ? std::string()
                         : std::to_string(stats.refused) +
                               " envelopes the proxy refused were not exported (they never "
                               "reached the primary; jsonl and bundle exports keep them)";
  if (file != "-") {
    std::cout << summary.str() << "\n" << refused << (refused.empty() ? "" : "\n");
    return kExitOk;
  }
  // With the data on stdout, the summary is a diagnostic on stderr (in text form, unprefixed).
  constexpr log::Component kSummary{"store", ""};
  log::Info(kSummary, summary.str(),
            {{"session", name}, {"envelopes", stats.envelopes}, {"bytes", stats.bytes}});
  if (!refused.empty()) log::Info(kSummary, refused, {{"refused", stats.refused}});
  return kExitOk;
}

// `doppel import redis://HOST:PORT/STREAM`: the entries as the recorders wrote (and redacted)
// them.
int ImportRedis(const GlobalOptions& g, const std::string& text, const std::string& as,
                bool other_flags) {
  auto url = stream::ParseRedisUrl(text);
  if (!url.ok()) return UsageError("import: " + url.status().message());
  if (other_flags) {
    return UsageError(
        "import: --format, --skip-bad and --redact-* do not apply to a Redis stream (its "
        "entries are imported as the recorders redacted them)");
  }
  Status s;
  auto store = OpenStore(g, false, &s);
  if (!s.ok()) return Fail(s);
  stream::StreamImportStats stats;
  auto info = stream::ImportStream(*store, *url, as, &stats);
  if (!info.ok()) return Fail(info.status());
  std::cout << "imported " << info->counts().envelopes() << " envelopes as session '"
            << info->name() << "' (" << url->ToString() << ")\n";
  for (const auto& [recorder, n] : stats.by_recorder) {
    std::cout << "  recorder " << (recorder.empty() ? "(none)" : recorder) << ": " << n
              << " envelopes\n";
  }
  return kExitOk;
}

int Import(const GlobalOptions& g, const std::string& file, const std::string& as,
           const std::string& format_name, bool skip_bad, const redact::RedactOptions& redact) {
  if (stream::IsRedisUrl(file)) {
    const bool redact_set = !redact.headers.empty() || !redact.query_params.empty() ||
                            !redact.json_paths.empty() || redact.off;
    return ImportRedis(g, file, as, !format_name.empty() || skip_bad || redact_set);
  }
  interop::InteropFormat format;
  if (!format_name.empty()) {
    auto f = interop::ParseInteropFormat(format_name);
    if (!f.ok()) return UsageError("import --format: " + f.status().message());
    format = *f;
  } else {
    auto f = interop::DetectImportFormat(file);
    if (!f.ok()) {
      if (f.status().code() == Status::Code::kInvalidArgument)
        return UsageError(f.status().message());
      return Fail(f.status());
    }
    format = *f;
  }
  if (format == interop::InteropFormat::kCurl)
    return UsageError("import: curl is an export format only; import bundle, har, jsonl or gor");
  if (skip_bad && format == interop::InteropFormat::kBundle)
    return UsageError(
        "import: --skip-bad applies to har, jsonl and gor files (a bundle is "
        "checksummed and imported whole)");
  const bool redact_flags =
      !redact.headers.empty() || !redact.query_params.empty() || !redact.json_paths.empty();
  if (redact_flags && format == interop::InteropFormat::kBundle)
    return UsageError(
        "import: --redact-* apply to har, jsonl and gor files (a bundle is imported as its "
        "store exported it, redacted there)");
  Status s;
  auto store = OpenStore(g, false, &s);
  if (!s.ok()) return Fail(s);
  std::unique_ptr<redact::Redactor> redactor;
  if (format != interop::InteropFormat::kBundle) {
    auto made = redact::Redactor::ForStore(g.store, redact);
    if (!made.ok()) {
      if (made.status().code() == Status::Code::kInvalidArgument)
        return UsageError("import: " + made.status().message());
      return Fail(made.status());
    }
    redactor = std::move(made.value());
  }
  interop::ImportOptions options;
  options.skip_bad = skip_bad;
  options.redactor = redactor.get();
  interop::ImportStats stats;
  auto info = interop::ImportFile(*store, file, format, as, options, &stats);
  if (!info.ok()) return Fail(info.status());
  std::cout << "imported " << info->counts().envelopes() << " envelopes as session '"
            << info->name() << "' (" << interop::InteropFormatName(format) << ")\n";
  if (stats.skipped)
    log::Warn(kStoreLog,
              "skipped " + std::to_string(stats.skipped) +
                  " bad records (--skip-bad); the first: " + stats.first_skipped,
              {{"skipped", stats.skipped}});
  if (stats.without_response)
    log::Info(kStoreLog,
              std::to_string(stats.without_response) +
                  " requests have no recorded response (imported; replay sends them but does "
                  "not diff them)",
              {{"without_response", stats.without_response}});
  if (stats.ignored)
    log::Info(kStoreLog,
              "ignored " + std::to_string(stats.ignored) +
                  " GoReplay payloads (replayed responses, or responses without their request)",
              {{"ignored", stats.ignored}});
  if (stats.decoded_bodies)
    log::Info(kStoreLog,
              std::to_string(stats.decoded_bodies) +
                  " response bodies are stored decoded: their Content-Encoding cannot be redone "
                  "here, so it was removed",
              {{"decoded_bodies", stats.decoded_bodies}});
  if (stats.redaction_dropped_bodies)
    log::Warn(kStoreLog,
              std::to_string(stats.redaction_dropped_bodies) +
                  " bodies were dropped (stored empty, marked truncated): --redact-json-path "
                  "could not be applied to them (not decodable, or JSON that does not parse)",
              {{"redaction_dropped_bodies", stats.redaction_dropped_bodies}});
  return kExitOk;
}

int RunsList(const GlobalOptions& g) {
  Status s;
  auto store = OpenStore(g, true, &s);
  if (!s.ok()) return Fail(s);
  auto runs = store->ListRuns();
  if (!runs.ok()) return Fail(runs.status());
  if (runs->empty()) {
    std::cout << "no replay runs in " << g.store << "\n";
    return kExitOk;
  }
  std::printf("%-6s %-12s %-24s %-20s %s\n", "ID", "STATE", "SESSION", "STARTED", "TARGETS");
  for (const auto& r : *runs) {
    std::string state = doppel::v1::RunState_Name(r.state()).substr(10);
    std::string targets;
    for (const auto& t : r.settings().targets()) targets += (targets.empty() ? "" : ",") + t;
    std::printf("%-6u %-12s %-24s %-20s %s\n", r.id(), state.c_str(),
                r.settings().session().c_str(), FormatTime(r.started_us()).c_str(),
                targets.c_str());
  }
  return kExitOk;
}

// Removes every run named, or none: an unknown id is an error before anything is deleted.
int RunsRm(const GlobalOptions& g, const std::vector<uint32_t>& ids) {
  Status s;
  auto store = OpenStore(g, false, &s);
  if (!s.ok()) return Fail(s);
  for (uint32_t id : ids) {
    if (auto run = store->GetRun(id); !run.ok()) {
      log::Error(kStoreLog, run.status().ToString() + "; nothing removed");
      return kExitError;
    }
  }
  for (uint32_t id : ids) {
    s = store->DeleteRun(id);
    if (!s.ok()) return Fail(s);
    std::cout << "removed run " << id << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddStoreCommands(CLI::App& app, const GlobalOptions& g, Runner* run) {
  auto* sessions = app.add_subcommand("sessions", "list, show and remove recorded sessions");
  sessions->require_subcommand(1);
  sessions->add_subcommand("list", "list the sessions in the store")->callback([run, &g] {
    *run = [&g] { return SessionsList(g); };
  });
  {
    auto* show = sessions->add_subcommand("show", "show one session's record and counts");
    auto name = std::make_shared<std::string>();
    show->add_option("name", *name, "session name")->required();
    show->callback([run, &g, name] { *run = [&g, name] { return SessionsShow(g, *name); }; });
  }
  {
    auto* rm =
        sessions->add_subcommand("rm", "remove a session, its envelopes and its replay runs");
    auto name = std::make_shared<std::string>();
    rm->add_option("name", *name, "session name")->required();
    rm->callback([run, &g, name] { *run = [&g, name] { return SessionsRm(g, *name); }; });
  }
  {
    auto* classes = sessions->add_subcommand(
        "classes",
        "a session's request classes (method, endpoint, status, response shape): count, share, "
        "first and last seen, an example (docs/sampling.md)");
    auto name = std::make_shared<std::string>();
    auto rules = std::make_shared<std::string>();
    classes->add_option("name", *name, "session name")->required();
    classes->add_option("--class-rules", *rules, kClassRulesHelp);
    classes->callback([run, &g, name, rules] {
      *run = [&g, name, rules] { return SessionsClasses(g, *name, *rules); };
    });
  }
  {
    auto* minimize = sessions->add_subcommand(
        "minimize",
        "copy the smallest subset of a session that keeps K envelopes of every class into a new "
        "session (for CI bundles)");
    auto name = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto per_class = std::make_shared<int64_t>(1);
    minimize->add_option("name", *name, "session name")->required();
    minimize->add_option("--out", *out, "name of the new session")->required();
    minimize->add_option("--per-class", *per_class, "envelopes kept of each class")
        ->capture_default_str();
    auto rules = std::make_shared<std::string>();
    minimize->add_option("--class-rules", *rules, kClassRulesHelp);
    minimize->callback([run, &g, name, out, per_class, rules] {
      *run = [&g, name, out, per_class, rules]() -> int {
        if (*per_class < 1 || *per_class > 1000000) {
          return UsageError("sessions minimize: --per-class must be between 1 and 1000000 (got " +
                            std::to_string(*per_class) + ")");
        }
        return SessionsMinimize(g, *name, *out, static_cast<uint32_t>(*per_class), *rules);
      };
    });
  }
  {
    auto* compact = sessions->add_subcommand(
        "compact",
        "rewrite a closed session's envelopes with the stronger compression kept for settled "
        "data (docs/storage-format.md)");
    auto name = std::make_shared<std::string>();
    compact->add_option("name", *name, "session name")->required();
    compact->callback([run, &g, name] { *run = [&g, name] { return SessionsCompact(g, *name); }; });
  }
  {
    auto* retain = sessions->add_subcommand(
        "retain",
        "delete a session's envelopes older than a duration (range delete) and the replay runs "
        "that replayed them");
    auto name = std::make_shared<std::string>();
    auto older = std::make_shared<std::string>();
    retain->add_option("name", *name, "session name")->required();
    retain->add_option("--older-than", *older, "age, e.g. 7d, 12h, 30m, 90s")->required();
    retain->callback([run, &g, name, older] {
      *run = [&g, name, older]() -> int {
        auto age = ParseDurationUs(*older);
        if (!age.ok()) return Fail(age.status().WithContext("--older-than"));
        return Retain(g, *name, *age / 1000000);
      };
    });
  }
  {
    auto* cat = app.add_subcommand(
        "cat", "print a session's envelopes as JSON Lines (docs/jsonl-format.md)");
    auto name = std::make_shared<std::string>();
    auto name_opt = std::make_shared<std::string>();
    auto limit = std::make_shared<uint64_t>(0);
    auto skip = std::make_shared<bool>(false);
    cat->add_option("SESSION", *name, "session name");
    cat->add_option("--session", *name_opt, "session name (same as SESSION)");
    cat->add_option("--limit", *limit, "print at most N envelopes (0 = all)");
    cat->add_flag("--skip-corrupt", *skip, "skip envelopes that do not decode, and count them");
    auto proto_set = std::make_shared<std::string>();
    cat->add_option("--proto-set", *proto_set,
                    "descriptor set (protoc --include_imports --descriptor_set_out): gRPC "
                    "messages also printed as JSON, as grpc_messages");
    cat->callback([run, &g, name, name_opt, limit, skip, proto_set] {
      *run = [&g, name, name_opt, limit, skip, proto_set] {
        if (!name->empty() && !name_opt->empty() && *name != *name_opt)
          return UsageError("cat: give the session once (SESSION or --session)");
        const std::string& session = name->empty() ? *name_opt : *name;
        if (session.empty()) return UsageError("cat: which session? doppel cat SESSION");
        return Cat(g, session, *limit, *skip, *proto_set);
      };
    });
  }
  {
    auto* exp = app.add_subcommand(
        "export",
        "write a session to a file (doppel bundle, HAR, JSON Lines) or a Redis stream "
        "(redis://HOST:PORT/STREAM), or one envelope as a curl command");
    auto a = std::make_shared<ExportArgs>();
    exp->add_option("SESSION", a->session, "session name");
    exp->add_option(
        "FILE", a->file,
        "file to write ('-' = stdout for har, jsonl, curl); its extension picks the "
        "format: .har, .jsonl, else a bundle; or redis://[:PASSWORD@]HOST[:PORT]/STREAM");
    exp->add_option("--session", a->session_opt, "session name (same as SESSION)");
    exp->add_option("--out", a->out_opt, "file to write (same as FILE)");
    exp->add_option("--format", a->format, "bundle, har, jsonl or curl (default: by FILE)");
    exp->add_option("--id", a->id,
                    "curl: the envelope, ARRIVAL_US.SEQ as `doppel cat` prints them");
    exp->add_option("--target", a->target,
                    "curl: base URL to send to (default: the recorded scheme and Host)");
    exp->callback([run, &g, a] { *run = [&g, a] { return Export(g, *a); }; });
  }
  {
    auto* imp = app.add_subcommand(
        "import",
        "load a bundle, HAR, JSON Lines or GoReplay (.gor, .gor.gz) file, or a Redis stream "
        "(redis://HOST:PORT/STREAM), into the store");
    auto file = std::make_shared<std::string>();
    auto as = std::make_shared<std::string>();
    auto format = std::make_shared<std::string>();
    auto skip = std::make_shared<bool>(false);
    auto redact = std::make_shared<redact::RedactOptions>();
    imp->add_option("file", *file, "file to import, or redis://[:PASSWORD@]HOST[:PORT]/STREAM")
        ->required();
    imp->add_option("--as", *as,
                    "session name (default: a bundle's own, a stream's name, else the file "
                    "name without extensions)");
    imp->add_option("--format", *format,
                    "bundle, har, jsonl or gor (default: by magic bytes, extension, content)");
    imp->add_flag("--skip-bad", *skip, "skip records that do not parse, and count them");
    AddRedactFlags(imp, redact.get());
    imp->callback([run, &g, file, as, format, skip, redact] {
      *run = [&g, file, as, format, skip, redact] {
        return Import(g, *file, *as, *format, *skip, *redact);
      };
    });
  }
  {
    auto* runs = app.add_subcommand("runs", "list and remove the replay runs in the store");
    runs->require_subcommand(1);
    runs->add_subcommand("list", "list replay runs")->callback([run, &g] {
      *run = [&g] { return RunsList(g); };
    });
    auto* rm = runs->add_subcommand(
        "rm", "remove replay runs with their results and reports (which quote recorded bodies)");
    auto ids = std::make_shared<std::vector<uint32_t>>();
    rm->add_option("RUN_ID", *ids, "run ids (see `doppel runs list`)")->required();
    rm->callback([run, &g, ids] { *run = [&g, ids] { return RunsRm(g, *ids); }; });
  }
}

}  // namespace doppel::cli
