#include "bench/corpus/goreplay_text.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace doppel::bench {
namespace {

void AppendVersion(uint32_t version, std::string* out) {
  *out += version == 10 ? "HTTP/1.0" : "HTTP/1.1";
}

void AppendHeaders(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers,
                   std::string* out) {
  for (const doppel::v1::Header& h : headers) {
    *out += h.name();
    *out += ": ";
    *out += h.value();
    *out += "\r\n";
  }
  *out += "\r\n";
}

// A stable 24-hex-digit id per envelope, shaped like gor's random request ids.
std::string RecordId(const doppel::v1::Envelope& e) {
  uint64_t a = e.arrival_us() * 0x9e3779b97f4a7c15ull ^ (uint64_t{e.seq()} << 17);
  a ^= a >> 29;
  a *= 0xbf58476d1ce4e5b9ull;
  a ^= a >> 32;
  uint64_t b = (a + e.seq()) * 0x94d049bb133111ebull;
  b ^= b >> 31;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx%08llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b & 0xffffffffull));
  return buf;
}

}  // namespace

std::string HttpRequestBytes(const doppel::v1::HttpRequest& request) {
  std::string out;
  out.reserve(512 + request.body().size());
  out += request.method();
  out += ' ';
  out += request.target();
  out += ' ';
  AppendVersion(request.version(), &out);
  out += "\r\n";
  AppendHeaders(request.headers(), &out);
  out += request.body();
  return out;
}

std::string HttpResponseBytes(const doppel::v1::HttpResponse& response) {
  std::string out;
  out.reserve(512 + response.body().size());
  AppendVersion(response.version(), &out);
  out += ' ';
  out += std::to_string(response.status());
  out += ' ';
  out += response.reason();
  out += "\r\n";
  AppendHeaders(response.headers(), &out);
  out += response.body();
  return out;
}

void AppendGoReplayRecords(const doppel::v1::Envelope& envelope, std::string* out) {
  const std::string id = RecordId(envelope);
  const uint64_t request_ns = envelope.arrival_us() * 1000;
  const uint64_t latency_ns = envelope.response().latency_us() * 1000;
  *out += "1 " + id + " " + std::to_string(request_ns) + " 0\n";
  *out += HttpRequestBytes(envelope.request());
  *out += kGoReplaySeparator;
  *out += "2 " + id + " " + std::to_string(request_ns + latency_ns) + " " +
          std::to_string(latency_ns) + "\n";
  *out += HttpResponseBytes(envelope.response());
  *out += kGoReplaySeparator;
}

Status WriteGoReplayFile(std::span<const doppel::v1::Envelope> envelopes, const std::string& path,
                         uint64_t* bytes_written) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return Status::IoError("cannot create " + path + ": " + std::strerror(errno));
  }
  uint64_t total = 0;
  bool ok = true;
  std::string chunk;
  for (size_t i = 0; ok && i < envelopes.size(); ++i) {
    AppendGoReplayRecords(envelopes[i], &chunk);
    if (chunk.size() >= (1u << 20) || i + 1 == envelopes.size()) {
      ok = std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size();
      total += chunk.size();
      chunk.clear();
    }
  }
  const int write_errno = errno;
  if (std::fclose(f) != 0 && ok) {
    return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
  }
  if (!ok) return Status::IoError("cannot write " + path + ": " + std::strerror(write_errno));
  if (bytes_written != nullptr) *bytes_written = total;
  return Status::Ok();
}

}  // namespace doppel::bench
