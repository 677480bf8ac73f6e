// Where a replay reads envelopes from: a session in the store or a bundle file. Both stream,
// so memory stays flat whatever the session size.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/session.pb.h"
#include "storage/store.h"

namespace doppel::replay {

class EnvelopeSource {
 public:
  virtual ~EnvelopeSource() = default;
  // Fills *envelope with the next one; false at the end or on error (see status()).
  virtual bool Next(doppel::v1::Envelope* envelope) = 0;
  virtual Status status() const = 0;
  // Starts again from the first envelope (for --loop).
  virtual Status Rewind() = 0;
  virtual const doppel::v1::SessionInfo& session() const = 0;
};
using EnvelopeSourcePtr = std::unique_ptr<EnvelopeSource>;

// REQUIRES: `store` outlives the source.
Result<EnvelopeSourcePtr> OpenStoreSource(storage::Store* store, const std::string& session);
Result<EnvelopeSourcePtr> OpenBundleSource(const std::string& path);

}  // namespace doppel::replay
