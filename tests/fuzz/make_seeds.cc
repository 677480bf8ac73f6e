// Writes the generated seeds of tests/fuzz/corpus/ (the hand-written ones are plain files
// there): bundles exported from a real store, codec values, and JSON Lines exports. Run it
// again when a format changes:
//   cmake --build build --target fuzz_make_seeds
//   build/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "diff/diff.h"
#include "interop/bundle.h"
#include "interop/envelope_json.h"
#include "report/aggregate.h"
#include "storage/envelope_codec.h"
#include "storage/store.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace fs = std::filesystem;
using doppel::v1::Envelope;

void Write(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  if (!doppel::fuzz::WriteFile(path.string(), data)) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::printf("%s (%zu bytes)\n", path.c_str(), data.size());
}

std::string ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  std::string out;
  char buf[65536];
  size_t n;
  while (f && (n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  if (f) std::fclose(f);
  return out;
}

// An envelope the proxy answered itself, with a binary body and a non-UTF-8 header value.
Envelope OddEnvelope() {
  Envelope e;
  e.set_arrival_us(1795737600000000ull);
  e.set_seq(7);
  e.set_client_addr("[::1]:40000");
  e.set_scheme("http");
  e.set_error(doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  e.set_error_detail("primary timeout: no response within 30000 ms");
  auto* r = e.mutable_request();
  r->set_method("PUT");
  r->set_target("/upload?name=a%20b");
  r->set_version(10);
  auto* h = r->add_headers();
  h->set_name("X-Raw");
  h->set_value(std::string("\xff\xfe\x00\x01", 4));
  r->set_body(std::string("\x89PNG\r\n\x1a\n\x00\x00", 10));
  r->set_body_truncated(true);
  r->set_body_size(2000000);
  return e;
}

void Bundles(const fs::path& out) {
  const std::string dir = doppel::fuzz::TempFilePath("seeds-store");
  fs::remove_all(dir);
  std::unique_ptr<doppel::storage::Store> store;
  doppel::storage::StoreOptions options;
  options.compression = doppel::storage::Compression::kEnvelopeZstdDict;
  doppel::Status s = doppel::storage::Store::Open(options, dir, &store);
  if (!s.ok()) {
    std::fprintf(stderr, "store: %s\n", s.message().c_str());
    std::exit(1);
  }
  const auto samples = doppel::fuzz::SampleEnvelopes(20);
  struct Spec {
    const char* name;
    size_t envelopes;
  } specs[] = {{"empty", 0}, {"three", 3}, {"twenty_with_dictionary", 20}};
  for (const auto& spec : specs) {
    doppel::v1::SessionInfo info;
    info.set_name(spec.name);
    info.set_upstream("http://127.0.0.1:9000");
    if (!store->CreateSession(info).ok()) std::exit(1);
    std::vector<Envelope> batch(samples.begin(), samples.begin() + spec.envelopes);
    if (spec.envelopes == 3) batch[2] = OddEnvelope();
    if (!batch.empty() && !store->Append(spec.name, batch).ok()) std::exit(1);
    if (!store->CloseSession(spec.name, {}).ok()) std::exit(1);
    const std::string path = dir + "/" + spec.name + ".dpl";
    s = doppel::interop::ExportBundle(*store, spec.name, path, nullptr);
    if (!s.ok()) {
      std::fprintf(stderr, "export: %s\n", s.message().c_str());
      std::exit(1);
    }
    Write(out / "bundle_reader" / (std::string(spec.name) + ".dpl"), ReadFile(path));
  }
  store.reset();
  fs::remove_all(dir);
}

void CodecValues(const fs::path& out) {
  const auto samples = doppel::fuzz::SampleEnvelopes(2);
  doppel::storage::EnvelopeCodec plain, with_dict;
  if (!with_dict.AddDictionary(doppel::fuzz::SampleDictionary(), true).ok()) std::exit(1);
  std::string value;
  plain.EncodeRaw(samples[0], &value);
  Write(out / "envelope_decode" / "raw.bin", value);
  plain.EncodeRaw(OddEnvelope(), &value);
  Write(out / "envelope_decode" / "raw_error_envelope.bin", value);
  if (!plain.EncodeZstd(samples[1], &value).ok()) std::exit(1);
  Write(out / "envelope_decode" / "zstd.bin", value);
  if (!with_dict.EncodeZstd(samples[0], &value).ok()) std::exit(1);
  Write(out / "envelope_decode" / "zstd_dictionary.bin", value);
}

void JsonLines(const fs::path& out) {
  std::string lines;
  for (const auto& e : doppel::fuzz::SampleEnvelopes(3)) {
    lines += boost::json::serialize(doppel::interop::EnvelopeToJson(e)) + "\n";
  }
  Write(out / "envelope_json" / "export.jsonl", lines);
  Write(out / "envelope_json" / "binary_and_error.jsonl",
        boost::json::serialize(doppel::interop::EnvelopeToJson(OddEnvelope())) + "\n");
}

// Worker states as a replay worker of a group writes them (replay/group.h): the sample
// envelopes against two targets and a secondary, some answers changed, one failed.
void AggregatorStates(const fs::path& out) {
  auto differ = doppel::diff::Differ::Create(doppel::diff::DiffConfig());
  if (!differ.ok()) std::exit(1);
  doppel::report::AggregatorOptions o;
  o.targets = {"http://candidate:8080", "http://other:8080"};
  o.secondary = "http://secondary:8080";
  doppel::report::RunAggregator agg(o);
  const auto samples = doppel::fuzz::SampleEnvelopes(6);
  for (size_t i = 0; i < samples.size(); ++i) {
    const Envelope& e = samples[i];
    doppel::v1::HttpResponse actual = e.response();
    if (i % 2 == 1) actual.set_body(actual.body() + " ");
    if (i == 3) actual.set_status(500);
    const auto& req = e.request();
    const auto diff = (*differ)->Compare(req.method(), req.target(), e.response(), actual);
    const auto noise = (*differ)->Compare(req.method(), req.target(), e.response(), e.response());
    for (uint32_t t = 0; t < 2; ++t) {
      doppel::report::Observation obs;
      obs.target = t;
      obs.endpoint = (*differ)->Endpoint(req.method(), req.target());
      obs.envelope = &e;
      obs.latency_us = 100 + 37 * i;
      if (t == 1 && i == 2) {
        obs.error = "timeout";
      } else {
        obs.actual = &actual;
        obs.diff = &diff;
        obs.noise = &noise;
      }
      if (!agg.Add(obs).ok()) std::exit(1);
    }
  }
  Write(out / "aggregator_state" / "two_targets.bin", agg.SaveState().SerializeAsString());
  doppel::report::AggregatorOptions one;
  one.targets = {"http://candidate:8080"};
  Write(out / "aggregator_state" / "empty.bin",
        doppel::report::RunAggregator(one).SaveState().SerializeAsString());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds tests/fuzz/corpus\n");
    return 2;
  }
  const fs::path out = argv[1];
  Bundles(out);
  CodecValues(out);
  JsonLines(out);
  AggregatorStates(out);
  return 0;
}
