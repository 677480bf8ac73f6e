#include "tools/grpc_demo/catalogue.h"

#include <algorithm>
#include <initializer_list>
#include <string>
#include <utility>

namespace doppel::grpc_demo {
namespace {

using demo::v1::Item;

struct Row {
  const char* name;
  int64_t price_cents;
  std::initializer_list<const char*> tags;
  int32_t count;
  const char* warehouse;
};

// Item i + 1 is kRows[i]. The table in catalogue.h shows the same data.
const Row kRows[] = {
    {"Oak Desk Lamp", 4599, {"home", "lighting"}, 12, "BER-1"},
    {"Steel Kettle", 2999, {"kitchen"}, 40, "BER-1"},
    {"Wireless Headphones", 8999, {"electronics", "audio"}, 7, "HAM-2"},
    {"Bamboo Cutting Board", 1599, {"kitchen"}, 55, "BER-1"},
    {"Ceramic Teapot", 2450, {"kitchen", "tea"}, 0, "MUC-3"},
    {"Trail Backpack", 6900, {"sports", "outdoor"}, 18, "HAM-2"},
    {"Smart Speaker", 5999, {"electronics", "audio"}, 23, "MUC-3"},
    {"Jigsaw Puzzle", 1999, {"toys"}, 31, "BER-1"},
    {"Copper Planter", 3450, {"garden", "home"}, 9, "HAM-2"},
    {"Walnut Bookshelf", 18900, {"home"}, 3, "MUC-3"},
};

// The v2 changes (catalogue.h lists them).
constexpr int64_t kV2RepricedItem = 3;
constexpr int64_t kV2RepricedCents = 9499;
constexpr int64_t kV2SaleItem = 5;
constexpr int64_t kV2MaintenanceItem = 7;

grpc::Status NoItem(int64_t id) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND, "no item " + std::to_string(id));
}

}  // namespace

Catalogue::Catalogue(Version version) : version_(version) {
  int64_t id = 0;
  for (const Row& row : kRows) {
    Item& item = items_.emplace_back();
    item.set_id(++id);
    item.set_name(row.name);
    item.set_price_cents(row.price_cents);
    for (const char* tag : row.tags) item.add_tags(tag);
    item.mutable_stock()->set_count(row.count);
    item.mutable_stock()->set_warehouse(row.warehouse);
  }
  if (version_ == Version::kV2) items_[kV2RepricedItem - 1].set_price_cents(kV2RepricedCents);
}

const Item* Catalogue::Find(int64_t id) const {
  if (id < 1 || id > static_cast<int64_t>(items_.size())) return nullptr;
  return &items_[static_cast<size_t>(id - 1)];
}

grpc::Status Catalogue::GetItem(const demo::v1::GetItemRequest& request, Item* item) const {
  if (version_ == Version::kV2 && request.id() == kV2MaintenanceItem) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "maintenance");
  }
  const Item* found = Find(request.id());
  if (found == nullptr) return NoItem(request.id());
  *item = *found;
  return grpc::Status::OK;
}

grpc::Status Catalogue::ListItems(const demo::v1::ListItemsRequest& request,
                                  std::vector<Item>* items) const {
  if (request.limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "limit must be >= 0, not " + std::to_string(request.limit()));
  }
  const size_t limit = request.limit() == 0 ? items_.size() : static_cast<size_t>(request.limit());
  items->clear();
  for (const Item& stored : items_) {
    if (items->size() == limit) break;
    Item item = stored;
    if (version_ == Version::kV2 && item.id() == kV2SaleItem) item.add_tags("sale");
    if (!request.tag().empty() &&
        std::find(item.tags().begin(), item.tags().end(), request.tag()) == item.tags().end()) {
      continue;
    }
    items->push_back(std::move(item));
  }
  return grpc::Status::OK;
}

grpc::Status Catalogue::CreateOrder(const demo::v1::CreateOrderRequest& request,
                                    demo::v1::Order* order) const {
  if (request.quantity() <= 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "quantity must be > 0, not " + std::to_string(request.quantity()));
  }
  const Item* item = Find(request.item_id());
  if (item == nullptr) return NoItem(request.item_id());
  order->set_order_id("ord-" + std::to_string(request.item_id()) + "-" +
                      std::to_string(request.quantity()));
  order->set_total_cents(item->price_cents() * request.quantity());
  order->set_status(version_ == Version::kV2 ? "PENDING" : "CONFIRMED");
  return grpc::Status::OK;
}

}  // namespace doppel::grpc_demo
