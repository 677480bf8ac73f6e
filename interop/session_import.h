// SessionImport: publishes an imported session all at once, or not at all.
//
// Envelopes go into a hidden session named ".import.<name>.<pid>" (`sessions list` does not
// show names starting with ".import."); Commit() closes it as IMPORTED and renames it to
// its final name. A failed or abandoned import (Abort(), or destruction before Commit())
// deletes the hidden session, so nothing half-imported is left behind; the hidden session of
// an import that was killed is removed by the next import of the same name. Used by every
// importer: bundles (bundle.h) and HAR / JSON Lines / GoReplay files (interop.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/session.pb.h"
#include "storage/store.h"

namespace doppel::interop {

class SessionImport {
 public:
  // Creates the hidden session from `info` (its name is the final name; id, counts and
  // dict_id are reset, state becomes IMPORTED). Fails with AlreadyExists when a session
  // named info.name() exists. REQUIRES: `store` outlives the returned object.
  static Result<std::unique_ptr<SessionImport>> Begin(storage::Store& store,
                                                      doppel::v1::SessionInfo info);
  ~SessionImport();
  SessionImport(const SessionImport&) = delete;
  SessionImport& operator=(const SessionImport&) = delete;

  // Buffers the envelope and appends a batch when enough are buffered.
  Status Add(doppel::v1::Envelope&& envelope);
  // Appends what is buffered, closes the session with `counts` merged (see
  // Store::CloseSession) and renames it to its final name. Returns the published record.
  Result<doppel::v1::SessionInfo> Commit(const doppel::v1::SessionCounts& counts = {});
  // Deletes the hidden session. Returns `why`, for `return import->Abort(status);`.
  Status Abort(const Status& why);

  const std::string& name() const { return name_; }
  uint64_t added() const { return added_; }

 private:
  SessionImport(storage::Store& store, std::string name, std::string tmp_name)
      : store_(store), name_(std::move(name)), tmp_name_(std::move(tmp_name)) {}
  Status Flush();

  storage::Store& store_;
  std::string name_, tmp_name_;
  std::vector<doppel::v1::Envelope> batch_;
  uint64_t added_ = 0;
  bool finished_ = false;
};

}  // namespace doppel::interop
