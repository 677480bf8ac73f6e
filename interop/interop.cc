// Format names and detection, the import/export drivers, envelope ids, and the helpers the
// format readers share (interop_internal.h).
#include "interop/interop.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include "base/enum_names.h"
#include "base/strings.h"
#include "base/time_format.h"
#include "interop/bundle.h"
#include "interop/internal.h"
#include "interop/session_import.h"
#include "interop/text_source.h"
#include "net/headers.h"

namespace doppel::interop {
namespace {

using doppel::v1::Envelope;
using doppel::v1::Header;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && EqualsIgnoreCase(s.substr(s.size() - suffix.size()), suffix);
}

// The file name with a trailing ".gz" removed, lower-cased (for extension checks).
std::string BaseForExtension(std::string_view path) {
  std::string s = AsciiLower(path);
  if (EndsWith(s, ".gz")) s.resize(s.size() - 3);
  return s;
}

bool LooksLikeGorHeader(std::string_view text) {
  // "1 ID TIMESTAMP": type digit, space, a token, space, digits.
  if (text.size() < 5 || (text[0] != '1' && text[0] != '2' && text[0] != '3') || text[1] != ' ')
    return false;
  size_t sp = text.find(' ', 2);
  if (sp == std::string_view::npos || sp == 2) return false;
  size_t i = sp + 1;
  size_t digits = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++digits;
  return digits > 0 && i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r');
}

}  // namespace

Result<InteropFormat> ParseInteropFormat(std::string_view name) {
  std::string n = AsciiLower(name);
  if (n == "bundle" || n == "dpl") return InteropFormat::kBundle;
  if (n == "har") return InteropFormat::kHar;
  if (n == "jsonl" || n == "ndjson") return InteropFormat::kJsonl;
  if (n == "gor" || n == "goreplay") return InteropFormat::kGor;
  if (n == "curl") return InteropFormat::kCurl;
  return Status::InvalidArgument("unknown format '" + std::string(name) +
                                 "': use bundle, har, jsonl, gor or curl");
}

std::string_view InteropFormatName(InteropFormat format) {
  static constexpr EnumNames<InteropFormat, 5> kNames{
      {"bundle", "HAR", "JSON Lines", "GoReplay", "curl"}, "?"};
  return kNames.Name(format);
}

Result<InteropFormat> DetectImportFormat(const std::string& path) {
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) return Status::NotFound("cannot open '" + path + "': " + std::strerror(errno));
    char magic[7] = {};
    f.read(magic, sizeof(magic));
    if (f.gcount() == 7 && std::memcmp(magic, "DOPPELB", 7) == 0) return InteropFormat::kBundle;
  }
  const std::string base = BaseForExtension(path);
  if (EndsWith(base, ".dpl")) return InteropFormat::kBundle;
  if (EndsWith(base, ".har")) return InteropFormat::kHar;
  if (EndsWith(base, ".jsonl") || EndsWith(base, ".ndjson")) return InteropFormat::kJsonl;
  if (EndsWith(base, ".gor")) return InteropFormat::kGor;
  DOPPEL_ASSIGN_OR_RETURN(auto head, PeekContent(path, 4096));
  std::string_view h = head;
  size_t i = h.find_first_not_of(" \t\r\n");
  if (i != std::string_view::npos && h[i] == '{') {
    size_t j = h.find_first_not_of(" \t\r\n", i + 1);
    if (j != std::string_view::npos && h.substr(j, 5) == "\"log\"") return InteropFormat::kHar;
    return InteropFormat::kJsonl;
  }
  if (LooksLikeGorHeader(h)) return InteropFormat::kGor;
  return Status::InvalidArgument("cannot tell the format of '" + path +
                                 "' from its name or content: give --format bundle|har|jsonl|gor");
}

InteropFormat ExportFormatForPath(std::string_view path) {
  const std::string base = AsciiLower(path);
  if (EndsWith(base, ".har")) return InteropFormat::kHar;
  if (EndsWith(base, ".jsonl") || EndsWith(base, ".ndjson")) return InteropFormat::kJsonl;
  return InteropFormat::kBundle;
}

std::string SessionNameForPath(std::string_view path) {
  std::string name = std::filesystem::path(std::string(path)).filename().string();
  size_t dot = name.find('.', 1);  // a leading dot is part of the name (".hidden.har")
  if (dot != std::string::npos) name.resize(dot);
  return name;
}

// ---- helpers shared by the readers ----

namespace internal {

Status BadRecord(const ImportOptions& options, ImportStats* stats, const Status& why) {
  if (!options.skip_bad)
    return Status::InvalidArgument(why.message() +
                                   "; nothing was imported (fix the file, or import with "
                                   "--skip-bad to skip bad records)");
  if (stats) {
    if (stats->skipped == 0) stats->first_skipped = why.message();
    ++stats->skipped;
  }
  return Status::Ok();
}

Result<uint64_t> ParseIso8601Us(std::string_view s) {
  const std::optional<DateTime> t = ParseDateTime(s);
  if (!t || t->unix_us < 0) {
    return Status::InvalidArgument("'" + std::string(s.substr(0, 64)) +
                                   "' is not an ISO 8601 date-time like 2024-05-01T10:20:30.123Z");
  }
  return static_cast<uint64_t>(t->unix_us);
}

std::string FormatIso8601Us(uint64_t us) { return FormatUtc(static_cast<int64_t>(us), 6); }

}  // namespace internal

// ---- import / export drivers ----

Result<doppel::v1::SessionInfo> ImportFile(storage::Store& store, const std::string& path,
                                           InteropFormat format, const std::string& as_name,
                                           const ImportOptions& options, ImportStats* stats) {
  ImportStats local;
  if (!stats) stats = &local;
  if (format == InteropFormat::kBundle) {
    auto info = ImportBundle(store, path, as_name);
    if (info.ok()) stats->envelopes = stats->records = info->counts().envelopes();
    return info;
  }
  if (format == InteropFormat::kCurl)
    return Status::InvalidArgument("curl is an export format only");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open '" + path + "': " + std::strerror(errno));

  doppel::v1::SessionInfo info;
  info.set_name(as_name.empty() ? SessionNameForPath(path) : as_name);
  info.set_source(format == InteropFormat::kHar     ? "import:har"
                  : format == InteropFormat::kJsonl ? "import:jsonl"
                                                    : "import:gor");
  DOPPEL_ASSIGN_OR_RETURN(auto import, SessionImport::Begin(store, info));
  EnvelopeSink sink = [&](Envelope&& e) {
    if (options.redactor)
      stats->redaction_dropped_bodies += options.redactor->Redact(&e).dropped_bodies;
    return import->Add(std::move(e));
  };
  Status s;
  switch (format) {
    case InteropFormat::kHar:
      s = ReadHar(in, path, options, sink, stats);
      break;
    case InteropFormat::kJsonl:
      s = ReadJsonl(in, path, options, sink, stats);
      break;
    default:
      s = ReadGor(in, path, options, sink, stats);
      break;
  }
  if (s.ok() && stats->envelopes == 0 && stats->skipped > 0)
    s = Status::InvalidArgument(std::string(InteropFormatName(format)) + " '" + path + "': all " +
                                std::to_string(stats->skipped) +
                                " records were bad, the first: " + stats->first_skipped);
  if (!s.ok()) return import->Abort(s);

  return import->Commit();
}

Status WriteTextFile(const std::string& path, const std::function<Status(std::ostream&)>& write) {
  if (path == "-") {
    Status s = write(std::cout);
    std::cout.flush();
    if (s.ok() && !std::cout) return Status::IoError("writing to stdout failed");
    return s;
  }
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) return Status::IoError("cannot write '" + tmp + "': " + std::strerror(errno));
  // Exports hold recorded traffic: readable by their owner only, like the store.
  std::error_code perm_ec;
  std::filesystem::permissions(
      tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace, perm_ec);
  Status s = write(out);
  out.flush();
  if (s.ok() && !out) s = Status::IoError("writing '" + tmp + "' failed (disk full?)");
  out.close();
  if (!s.ok()) {
    std::remove(tmp.c_str());
    return s;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return Status::IoError("renaming '" + tmp + "' to '" + path + "': " + ec.message());
  }
  return Status::Ok();
}

Status ExportFile(storage::Store& store, const std::string& session, InteropFormat format,
                  const std::string& path, ExportStats* stats) {
  ExportStats local;
  if (!stats) stats = &local;
  switch (format) {
    case InteropFormat::kBundle: {
      if (path == "-")
        return Status::InvalidArgument("a bundle is binary: give a file name, not '-'");
      BundleStats b;
      DOPPEL_RETURN_IF_ERROR(ExportBundle(store, session, path, &b));
      stats->envelopes = b.envelopes;
      stats->bytes = b.bytes;
      return Status::Ok();
    }
    case InteropFormat::kHar:
      return WriteTextFile(path,
                           [&](std::ostream& o) { return WriteHar(store, session, o, stats); });
    case InteropFormat::kJsonl:
      return WriteTextFile(path,
                           [&](std::ostream& o) { return WriteJsonl(store, session, o, stats); });
    default:
      return Status::InvalidArgument(std::string(InteropFormatName(format)) +
                                     " is not a session export format (use bundle, har or jsonl)");
  }
}

// ---- envelope ids ----

Result<EnvelopeId> ParseEnvelopeId(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("envelope id '" + std::string(text) +
                                   "' is not ARRIVAL_US.SEQ (the arrival_us and seq that "
                                   "`doppel cat` prints, e.g. 1714558830123456.0)");
  };
  EnvelopeId id;
  size_t dot = text.find('.');
  std::string_view a = text.substr(0, dot);
  if (a.empty() || a.size() > 20) return bad();
  uint64_t v = 0;
  for (char c : a) {
    if (c < '0' || c > '9') return bad();
    if (v > (UINT64_MAX - (c - '0')) / 10) return bad();
    v = v * 10 + (c - '0');
  }
  id.arrival_us = v;
  if (dot != std::string_view::npos) {
    std::string_view b = text.substr(dot + 1);
    if (b.empty() || b.size() > 10) return bad();
    uint64_t s = 0;
    for (char c : b) {
      if (c < '0' || c > '9') return bad();
      s = s * 10 + (c - '0');
    }
    if (s > UINT32_MAX) return bad();
    id.seq = static_cast<uint32_t>(s);
  }
  return id;
}

std::string FormatEnvelopeId(const Envelope& e) {
  return std::to_string(e.arrival_us()) + "." + std::to_string(e.seq());
}

Result<Envelope> FindEnvelope(storage::Store& store, const std::string& session,
                              const EnvelopeId& id) {
  storage::ScanOptions so;
  so.from_us = id.arrival_us;
  so.to_us = id.arrival_us == UINT64_MAX ? UINT64_MAX : id.arrival_us + 1;
  DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(session, so));
  for (; it->Valid(); it->Next()) {
    const Envelope& e = it->envelope();
    if (!id.seq || e.seq() == *id.seq) return e;
  }
  if (!it->status().ok()) return it->status();
  return Status::NotFound("session '" + session + "' has no envelope " +
                          std::to_string(id.arrival_us) +
                          (id.seq ? "." + std::to_string(*id.seq) : std::string()) +
                          " (ids are arrival_us.seq as `doppel cat` prints them)");
}

}  // namespace doppel::interop
