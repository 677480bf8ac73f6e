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
  // Fills *envelope with the next one; false at the end or on error (see status()), or when
  // none is there yet (see RetryAfterUs()).
  virtual bool Next(doppel::v1::Envelope* envelope) = 0;
  // After Next returned false with an ok status: 0 at the end of the source; else nothing is
  // there yet but more may come (a worker group's stream while other workers hold entries
  // that may return to it), and the reader should call Next again after this long.
  virtual uint64_t RetryAfterUs() const { return 0; }
  // The share of --rate this reader should send (a worker of a group of N sends 1/N of the
  // group's rate); 1 for a source read by one process.
  virtual double RateShare() const { return 1; }
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
