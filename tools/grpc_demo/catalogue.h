// doppel-grpc-demo's data and rules: a fixed catalogue of ten items and the answers of the Shop
// methods (shop.proto; QuoteItems answers each of its messages as GetItem), for v1 and v2. No I/O
// here: grpc_demo_main.cc serves it.
//
// The catalogue (ids 1..10, the same in every run):
//   id  name                  price_cents  tags                 stock
//    1  Oak Desk Lamp          4599        home, lighting       12 @ BER-1
//    2  Steel Kettle           2999        kitchen              40 @ BER-1
//    3  Wireless Headphones    8999        electronics, audio    7 @ HAM-2
//    4  Bamboo Cutting Board   1599        kitchen              55 @ BER-1
//    5  Ceramic Teapot         2450        kitchen, tea          0 @ MUC-3
//    6  Trail Backpack         6900        sports, outdoor      18 @ HAM-2
//    7  Smart Speaker          5999        electronics, audio   23 @ MUC-3
//    8  Jigsaw Puzzle          1999        toys                 31 @ BER-1
//    9  Copper Planter         3450        garden, home          9 @ HAM-2
//   10  Walnut Bookshelf      18900        home                  3 @ MUC-3
//
// Errors: GetItem/CreateOrder of an unknown id: NOT_FOUND "no item <id>"; CreateOrder with
// quantity <= 0: INVALID_ARGUMENT "quantity must be > 0, not <q>"; ListItems with limit < 0:
// INVALID_ARGUMENT "limit must be >= 0, not <n>". An order is {"ord-<item_id>-<quantity>",
// price_cents * quantity, "CONFIRMED"}.
//
// v2 makes exactly four deliberate changes, and nothing else:
//   1. Item 3's price_cents is 9499 (everywhere: GetItem, ListItems, QuoteItems, and
//      CreateOrder's total).
//   2. ListItems gives item 5 a third tag, "sale" (so ListItems {"tag":"sale"} streams item 5);
//      GetItem 5 is unchanged.
//   3. CreateOrder answers status "PENDING" instead of "CONFIRMED".
//   4. GetItem 7 fails with UNAVAILABLE "maintenance" (ListItems still streams item 7).
#pragma once

#include <grpcpp/support/status.h>

#include <vector>

#include "shop.pb.h"

namespace doppel::grpc_demo {

enum class Version { kV1, kV2 };

// Immutable after construction; shared by all of the server's threads.
class Catalogue {
 public:
  explicit Catalogue(Version version);

  grpc::Status GetItem(const demo::v1::GetItemRequest& request, demo::v1::Item* item) const;
  // Fills *items with what ListItems streams, in order.
  grpc::Status ListItems(const demo::v1::ListItemsRequest& request,
                         std::vector<demo::v1::Item>* items) const;
  grpc::Status CreateOrder(const demo::v1::CreateOrderRequest& request,
                           demo::v1::Order* order) const;

 private:
  const demo::v1::Item* Find(int64_t id) const;

  Version version_;
  std::vector<demo::v1::Item> items_;  // by id, ids 1..N
};

}  // namespace doppel::grpc_demo
