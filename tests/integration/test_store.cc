#include "tests/integration/test_store.h"

#include <memory>

#include "storage/store.h"

namespace doppel::testing {

Status WriteSession(const std::string& store, const std::string& name,
                    const std::vector<v1::Envelope>& envelopes) {
  std::unique_ptr<storage::Store> s;
  DOPPEL_RETURN_IF_ERROR(storage::Store::Open(storage::StoreOptions(), store, &s));
  v1::SessionInfo info;
  info.set_name(name);
  if (auto created = s->CreateSession(info); !created.ok()) return created.status();
  DOPPEL_RETURN_IF_ERROR(s->Append(name, envelopes));
  return s->CloseSession(name, v1::SessionCounts());
}

}  // namespace doppel::testing
