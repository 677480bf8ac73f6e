#include "tests/fuzz/fuzz_support.h"

#include <unistd.h>

#include <boost/beast/core/string.hpp>
#include <filesystem>
#include <fstream>

#include "bench/corpus/corpus.h"
#include "storage/envelope_codec.h"

namespace doppel::fuzz {

std::string TempFilePath(std::string_view name) {
  std::error_code ec;
  std::filesystem::path dir = "/dev/shm";
  if (!std::filesystem::is_directory(dir, ec)) dir = std::filesystem::temp_directory_path(ec);
  if (ec) dir = "/tmp";
  return (dir / ("doppel-fuzz-" + std::string(name) + "-" + std::to_string(::getpid()))).string();
}

bool WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(out.flush());
}

void CheckStorable(const doppel::v1::Envelope& envelope, std::string_view what) {
  thread_local storage::EnvelopeCodec codec;
  const std::string serialized = envelope.SerializeAsString();
  doppel::v1::Envelope back;
  FUZZ_CHECK(back.ParseFromString(serialized),
             std::string(what) + " does not parse back from protobuf (target: " +
                 envelope.request().target().substr(0, 100) + ")");
  std::string value;
  Status s = codec.EncodeZstd(envelope, &value);
  FUZZ_CHECK(s.ok(), "zstd encoding failed: " + s.message());
  s = codec.Decode(value, &back);
  FUZZ_CHECK(s.ok(), std::string(what) + " does not decode once stored: " + s.message());
  FUZZ_CHECK(back.SerializeAsString() == serialized,
             std::string(what) + " changed in a store round trip");
}

std::vector<doppel::v1::Envelope> SampleEnvelopes(int n) {
  bench::CorpusGenerator gen(/*seed=*/8);
  std::vector<doppel::v1::Envelope> out(static_cast<size_t>(n));
  for (auto& e : out) gen.Next(&e);
  return out;
}

const std::string& SampleDictionary() {
  static const std::string* dict = [] {
    std::vector<std::string> samples;
    for (const auto& e : SampleEnvelopes(400)) samples.push_back(e.SerializeAsString());
    return new std::string(storage::TrainDictionary(samples, 8 * 1024));
  }();
  return *dict;
}

bool TransferEncodingHasTab(std::string_view head) {
  static constexpr std::string_view kName = "transfer-encoding:";
  bool in_te = false;  // the line before was (part of) a Transfer-Encoding field
  for (size_t at = 0; at < head.size();) {
    size_t end = head.find('\n', at);
    if (end == std::string_view::npos) end = head.size();
    const std::string_view line = head.substr(at, end - at);
    const bool folded = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (in_te && folded) {
      if (line.find('\t', 1) != std::string_view::npos) return true;
    } else {
      in_te =
          line.size() >= kName.size() && boost::beast::iequals(line.substr(0, kName.size()), kName);
      if (in_te && line.find('\t', kName.size()) != std::string_view::npos) return true;
    }
    at = end + 1;
  }
  return false;
}

}  // namespace doppel::fuzz
