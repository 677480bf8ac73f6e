// What both of doppel's nghttp2 sessions (the listener's, recorder/h2_session.cc, and the
// upstream client's, net/h2_client.cc) do the same way: header lists for nghttp2 and the
// frames gathered for one socket write.
#pragma once

#include <nghttp2/nghttp2.h>

#include <string>
#include <utility>
#include <vector>

namespace doppel::net {

// Bytes read from the socket at once and handed to nghttp2.
inline constexpr size_t kH2ReadBytes = 16 * 1024;
// Frame bytes gathered for one socket write.
inline constexpr size_t kH2WriteBatch = 64 * 1024;

using H2Fields = std::vector<std::pair<std::string, std::string>>;

// nghttp2's view of `fields` (names lower-case); valid while `fields` is unchanged. nghttp2
// copies them when a frame is submitted.
inline std::vector<nghttp2_nv> H2NameValues(H2Fields& fields) {
  std::vector<nghttp2_nv> nva;
  nva.reserve(fields.size());
  for (auto& [name, value] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(name.data()),
                   reinterpret_cast<uint8_t*>(value.data()), name.size(), value.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  return nva;
}

// Replaces *out with up to kH2WriteBatch bytes (more when one frame is larger) of what
// `session` has to send. Returns 0, or nghttp2's (fatal) error code.
inline int GatherH2Frames(nghttp2_session* session, std::string* out) {
  out->clear();
  while (out->size() < kH2WriteBatch) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n < 0) return static_cast<int>(n);
    if (n == 0) break;
    out->append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return 0;
}

}  // namespace doppel::net
