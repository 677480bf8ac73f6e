#include "interop/session_import.h"

#include <unistd.h>

namespace doppel::interop {
namespace {
constexpr size_t kBatch = 1000;
}  // namespace

Result<std::unique_ptr<SessionImport>> SessionImport::Begin(storage::Store& store,
                                                            doppel::v1::SessionInfo info) {
  const std::string name = info.name();
  if (name.empty()) return Status::InvalidArgument("the imported session needs a name");
  if (store.GetSession(name).ok())
    return Status::AlreadyExists("session '" + name +
                                 "' exists already; import with --as NEW_NAME or remove it");
  const std::string tmp_name = ".import." + name + "." + std::to_string(::getpid());
  // A hidden session of this name from another process is what an import killed mid-way left
  // behind: only one process writes a store, so its writer is gone. Remove it.
  if (auto sessions = store.ListSessions(); sessions.ok()) {
    const std::string prefix = ".import." + name + ".";
    for (const auto& s : *sessions)
      if (s.name().rfind(prefix, 0) == 0 && s.name() != tmp_name)
        (void)store.DeleteSession(s.name());  // best effort: left over, retried next import
  }
  info.set_name(tmp_name);
  info.set_id(0);
  info.set_state(doppel::v1::SESSION_STATE_IMPORTED);
  info.set_dict_id(0);
  info.clear_counts();
  DOPPEL_ASSIGN_OR_RETURN(auto created, store.CreateSession(info));
  std::unique_ptr<SessionImport> import(new SessionImport(store, name, tmp_name));
  import->batch_.reserve(kBatch);
  return import;
}

SessionImport::~SessionImport() {
  // Best effort: a hidden session left behind is removed by the next import of this name.
  if (!finished_) (void)store_.DeleteSession(tmp_name_);
}

Status SessionImport::Flush() {
  if (batch_.empty()) return Status::Ok();
  Status s = store_.Append(tmp_name_, batch_);
  batch_.clear();
  return s;
}

Status SessionImport::Add(doppel::v1::Envelope&& envelope) {
  batch_.push_back(std::move(envelope));
  ++added_;
  return batch_.size() >= kBatch ? Flush() : Status::Ok();
}

Result<doppel::v1::SessionInfo> SessionImport::Commit(const doppel::v1::SessionCounts& counts) {
  Status s = Flush();
  if (s.ok()) s = store_.CloseSession(tmp_name_, counts, doppel::v1::SESSION_STATE_IMPORTED);
  if (s.ok()) s = store_.RenameSession(tmp_name_, name_);
  if (!s.ok()) return Abort(s);
  finished_ = true;
  return store_.GetSession(name_);
}

Status SessionImport::Abort(const Status& why) {
  if (!finished_) {
    (void)store_.DeleteSession(tmp_name_);  // best effort, as in the destructor
    finished_ = true;
  }
  return why;
}

}  // namespace doppel::interop
