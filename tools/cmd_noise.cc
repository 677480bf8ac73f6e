// `doppel noise learn`: learn which response fields vary between identical recorded requests
// and write them as a reviewable rules file (replay/noise_learn.h, docs/diff-rules.md).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "base/log.h"
#include "diff/rules.h"
#include "replay/noise_learn.h"
#include "replay/source.h"
#include "storage/store.h"
#include "tools/cli.h"

namespace doppel::cli {
namespace {

struct LearnFlags {
  std::string session, from, out, rules;
  std::vector<std::string> key_headers;
  uint64_t min_pairs = 3;
  size_t max_keys = 100'000;
};

int Fail(const Status& s) {
  log::Error({"noise", "doppel"}, s.ToString());
  return kExitError;
}

int NoiseLearn(const GlobalOptions& g, const LearnFlags& f) {
  if (f.session.empty() == f.from.empty())
    return Fail(Status::InvalidArgument("give exactly one of --session NAME or --from BUNDLE"));
  if (f.min_pairs == 0) return Fail(Status::InvalidArgument("--min-pairs must be at least 1"));
  if (f.max_keys == 0) return Fail(Status::InvalidArgument("--max-keys must be at least 1"));

  replay::NoiseLearnOptions options;
  options.min_pairs = f.min_pairs;
  options.max_keys = f.max_keys;
  for (const std::string& h : f.key_headers) options.key_headers.push_back(h);
  if (!f.rules.empty()) {
    auto rules = diff::LoadRulesFile(f.rules);
    if (!rules.ok()) return Fail(rules.status());
    options.rules = *rules;
  }

  // Fail on an unwritable --out before reading the whole session. The file is written next
  // to --out and renamed over it, so a failed run never leaves half a rules file.
  const std::string tmp = f.out + ".tmp";
  {
    std::ofstream probe(tmp, std::ios::trunc);
    if (!probe)
      return Fail(Status::IoError("cannot write '" + tmp +
                                  "': choose an --out in an existing, writable directory"));
  }
  auto discard = [&tmp] { std::filesystem::remove(tmp); };

  std::unique_ptr<storage::Store> store;
  replay::EnvelopeSourcePtr source;
  if (f.from.empty()) {
    storage::StoreOptions so;
    so.read_only = true;  // a recorder may be writing the session
    so.create_if_missing = false;
    Status s = storage::Store::Open(so, g.store, &store);
    if (!s.ok()) {
      discard();
      return Fail(s.WithContext("cannot open the store '" + g.store + "' (set --store)"));
    }
  }
  auto src = f.from.empty() ? replay::OpenStoreSource(store.get(), f.session)
                            : replay::OpenBundleSource(f.from);
  if (!src.ok()) {
    discard();
    return Fail(src.status());
  }
  source = std::move(*src);

  auto learned = replay::LearnNoise(*source, options);
  if (!learned.ok()) {
    discard();
    return Fail(learned.status());
  }
  const replay::NoiseLearnResult& r = *learned;

  std::printf("envelopes read        %llu (%llu incomplete, skipped)\n",
              (unsigned long long)r.envelopes, (unsigned long long)r.incomplete);
  if (r.refused > 0)
    std::printf(
        "refused by the proxy  %llu envelopes (never reached the primary): "
        "not learned from\n",
        (unsigned long long)r.refused);
  std::printf("distinct requests     %llu%s\n", (unsigned long long)r.keys,
              r.key_cap_reached ? "  (cap reached: later new requests not kept)" : "");
  if (r.key_cap_reached)
    std::printf("not kept (over cap)   %llu envelopes; raise --max-keys to learn from them\n",
                (unsigned long long)r.not_kept);
  std::printf("pairs compared        %llu (%llu more skipped: status differed)\n",
              (unsigned long long)r.pairs, (unsigned long long)r.status_changed);
  std::printf("fields learned        %zu (varied in >= %llu pairs; %llu below that)\n",
              r.fields.size(), (unsigned long long)f.min_pairs,
              (unsigned long long)r.below_min_pairs);
  if (r.pairs_with_omitted > 0)
    std::printf("pairs too different   %llu (over 100000 differences: only the first counted)\n",
                (unsigned long long)r.pairs_with_omitted);
  if (r.unrepresentable > 0)
    std::printf("not writable as rules %llu (endpoint or path a rules file cannot name)\n",
                (unsigned long long)r.unrepresentable);

  // Nothing repeated: there is nothing to learn from, and an empty file would look like
  // "checked, nothing varies". Say so and leave --out alone.
  if (r.pairs == 0) {
    discard();
    std::printf("no repeated identical requests found: nothing learned, '%s' not written\n",
                f.out.c_str());
    return kExitOk;
  }

  std::string origin =
      f.from.empty() ? "session \"" + f.session + "\"" : "bundle \"" + f.from + "\"";
  std::string text = replay::NoiseRulesJson(r, origin);
  // What is written must load back; a failure here is a bug, not a user error.
  if (auto check = diff::ParseRulesJson(text); !check.ok()) {
    discard();
    return Fail(Status::Internal("learned rules do not parse (" + check.status().ToString() +
                                 "); please report this"));
  }
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      discard();
      return Fail(Status::IoError("cannot write '" + tmp + "' (disk full?)"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, f.out, ec);
  if (ec) {
    discard();
    return Fail(Status::IoError("cannot write '" + f.out + "': " + ec.message()));
  }
  for (const replay::LearnedField& field : r.fields)
    std::printf("  %-40s %-32s varied in %llu of %llu\n", field.endpoint.c_str(),
                field.path.c_str(), (unsigned long long)field.varied,
                (unsigned long long)field.pairs);
  std::printf("wrote %s: review it, then use it with `doppel replay --rules %s`\n", f.out.c_str(),
              f.out.c_str());
  return kExitOk;
}

}  // namespace

void AddNoiseCommands(CLI::App& app, const GlobalOptions& g, Runner* run) {
  auto* noise = app.add_subcommand("noise", "learn noise (fields that vary) from a recording");
  noise->require_subcommand(1);
  auto f = std::make_shared<LearnFlags>();
  auto* learn = noise->add_subcommand(
      "learn", "write ignore rules for fields that differ between identical recorded requests");
  learn->add_option("--session", f->session, "session to learn from");
  learn->add_option("--from", f->from, "bundle file to learn from instead of a stored session");
  learn->add_option("--out", f->out, "rules file to write (JSON, see docs/diff-rules.md)")
      ->required();
  learn->add_option("--min-pairs", f->min_pairs,
                    "learn a field when it differed in at least this many pairs (default 3)");
  learn->add_option("--max-keys", f->max_keys,
                    "distinct requests kept for comparison (default 100000)");
  learn->add_option("--key-header", f->key_headers,
                    "request header that is part of a request's identity, in addition to "
                    "Authorization, Cookie and X-Api-Key (repeatable)");
  learn->add_option("--rules", f->rules, "rules already in use: what they ignore is not learned");
  learn->callback([run, &g, f] { *run = [&g, f] { return NoiseLearn(g, *f); }; });
}

}  // namespace doppel::cli
