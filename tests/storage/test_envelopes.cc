#include "tests/storage/test_envelopes.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "storage/store.h"

namespace doppel::storage::testing {

doppel::v1::Envelope MakeEnvelope(uint64_t arrival_us, uint32_t seq, int i) {
  doppel::v1::Envelope e;
  e.set_arrival_us(arrival_us);
  e.set_seq(seq);
  e.set_client_addr("127.0.0.1:5" + std::to_string(1000 + i % 1000));
  auto* r = e.mutable_request();
  r->set_method(i % 5 == 0 ? "POST" : "GET");
  r->set_target("/api/v1/orders/" + std::to_string(1000 + i) + "?expand=items");
  r->set_version(11);
  auto* h = r->add_headers();
  h->set_name("Host");
  h->set_value("shop.internal");
  h = r->add_headers();
  h->set_name("Accept");
  h->set_value("application/json");
  if (i % 5 == 0)
    r->set_body("{\"sku\":\"A-" + std::to_string(i) + "\",\"qty\":" + std::to_string(i % 7) + "}");
  r->set_body_size(r->body().size());
  auto* s = e.mutable_response();
  s->set_status(i % 11 == 0 ? 404 : 200);
  s->set_version(11);
  h = s->add_headers();
  h->set_name("Content-Type");
  h->set_value("application/json");
  s->set_body("{\"id\":" + std::to_string(1000 + i) +
              ",\"status\":\"shipped\",\"items\":[{\"sku\":\"A-1\",\"price\":" +
              std::to_string(10 + i % 90) +
              ".5}],\"updated_at\":\"2026-11-27T10:00:" + std::to_string(10 + i % 50) + "Z\"}");
  s->set_body_size(s->body().size());
  s->set_latency_us(800 + i % 300);
  return e;
}

Status WriteSession(const std::string& store_path, const std::string& name,
                    const std::vector<doppel::v1::Envelope>& envelopes) {
  std::unique_ptr<Store> store;
  DOPPEL_RETURN_IF_ERROR(Store::Open(StoreOptions(), store_path, &store));
  doppel::v1::SessionInfo info;
  info.set_name(name);
  if (auto created = store->CreateSession(info); !created.ok()) return created.status();
  DOPPEL_RETURN_IF_ERROR(store->Append(name, envelopes));
  return store->CloseSession(name, doppel::v1::SessionCounts());
}

Status WriteReplaySession(const std::string& store_path, const std::string& name, int gets,
                          int posts) {
  std::vector<doppel::v1::Envelope> batch;
  for (int i = 0; i < gets + posts; ++i) {
    doppel::v1::Envelope e;
    e.set_arrival_us(1'000'000 + i * 1000);
    e.set_seq(i);
    auto* r = e.mutable_request();
    r->set_method(i < gets ? "GET" : "POST");
    r->set_target(i < gets ? "/items/" + std::to_string(i) : "/orders");
    r->set_version(11);
    auto add = [&](const char* n, const char* v) {
      auto* h = r->add_headers();
      h->set_name(n);
      h->set_value(v);
    };
    add("Host", "shop.prod");
    add("Authorization", "hmac:5f3c");
    e.mutable_response()->set_status(200);
    batch.push_back(e);
  }
  return WriteSession(store_path, name, batch);
}

}  // namespace doppel::storage::testing
