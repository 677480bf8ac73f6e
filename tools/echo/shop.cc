#include "tools/echo/shop.h"

#include <algorithm>
#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "net/codings.h"
#include "net/url.h"

namespace doppel::echo {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

constexpr int kCatalogueSize = 1000;  // ids 1..1000 for products, users and orders
constexpr int kDefaultLimit = 20;
constexpr int kMaxLimit = 100;
constexpr int kSearchPageSize = 10;

// The catalogue: products, users and orders generated from (seed, id).

uint64_t Mix(uint64_t seed, uint64_t kind, uint64_t id, uint64_t salt = 0) {
  // splitmix64 over the combined inputs
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + kind * 0xBF58476D1CE4E5B9ull +
               id * 0x94D049BB133111EBull + salt * 0x2545F4914F6CDD1Dull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <size_t N>
std::string_view Pick(const std::array<std::string_view, N>& a, uint64_t h) {
  return a[h % N];
}

// RFC 3339 UTC, second precision.
std::string FormatTimestamp(int64_t epoch_seconds) {
  std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

constexpr int64_t kEpoch2023 = 1672531200;  // 2023-01-01T00:00:00Z

constexpr std::array<std::string_view, 7> kCategories = {"books",   "electronics", "garden", "home",
                                                         "kitchen", "sports",      "toys"};
constexpr std::array<std::array<std::string_view, 5>, 7> kNouns = {{
    {"Notebook", "Atlas", "Cookbook", "Novel", "Journal"},
    {"Headphones", "Speaker", "Charger", "Keyboard", "Monitor"},
    {"Planter", "Hose", "Shovel", "Lantern", "Bench"},
    {"Lamp", "Clock", "Mirror", "Rug", "Shelf"},
    {"Kettle", "Pan", "Knife", "Grinder", "Teapot"},
    {"Racket", "Bottle", "Backpack", "Helmet", "Mat"},
    {"Puzzle", "Robot", "Kite", "Train", "Blocks"},
}};
constexpr std::array<std::string_view, 12> kAdjectives = {
    "Sturdy", "Compact", "Classic", "Smart",  "Vintage", "Portable",
    "Deluxe", "Eco",     "Ultra",   "Modern", "Rustic",  "Wireless"};
constexpr std::array<std::string_view, 10> kMaterials = {"Oak",     "Steel",  "Bamboo", "Ceramic",
                                                         "Cotton",  "Carbon", "Glass",  "Walnut",
                                                         "Leather", "Copper"};
constexpr std::array<std::string_view, 6> kSuppliers = {
    "Acme GmbH", "Nordwind AB", "Sol y Mar S.L.", "Maple & Co", "Kirin Trading", "Alpenhof AG"};
constexpr std::array<std::string_view, 6> kSupplierCountries = {"DE", "SE", "ES", "CA", "JP", "AT"};
constexpr std::array<std::string_view, 16> kFirstNames = {
    "Anna", "Ben",   "Clara", "David", "Elif", "Felix", "Greta", "Hugo",
    "Ines", "Jonas", "Kira",  "Lukas", "Mia",  "Noah",  "Olga",  "Paul"};
constexpr std::array<std::string_view, 16> kLastNames = {
    "Schmidt", "Meyer",  "Novak", "Garcia", "Rossi", "Jensen", "Kowalski", "Dubois",
    "Yilmaz",  "Tanaka", "Smith", "Silva",  "Berg",  "Weber",  "Costa",    "Lind"};
struct City {
  std::string_view name, zip, country, language;
};
constexpr std::array<City, 8> kCities = {{
    {"Berlin", "10115", "DE", "de"},
    {"Hamburg", "20095", "DE", "de"},
    {"Vienna", "1010", "AT", "de"},
    {"Paris", "75001", "FR", "fr"},
    {"Madrid", "28001", "ES", "es"},
    {"Stockholm", "11120", "SE", "sv"},
    {"Dublin", "D02", "IE", "en"},
    {"Lisbon", "1100-148", "PT", "pt"},
}};
constexpr std::array<std::string_view, 8> kStreets = {"Linden",   "Harbour", "Market", "Mill",
                                                      "Chestnut", "Station", "River",  "Garden"};
constexpr std::array<std::string_view, 5> kOrderStatuses = {"pending", "paid", "shipped",
                                                            "delivered", "cancelled"};

struct Product {
  int id;
  int category;  // index into kCategories
  std::string name;
  std::string lower_name;  // for search
  int64_t price_cents;
};

struct User {
  int id;
  std::string first, last, username;
  int city;
  std::string street;
};

// Everything generated at startup: the records and, for the id endpoints, the rendered
// bodies in plain and gzip form. Immutable after construction; shared by all threads.
class Catalogue {
 public:
  Catalogue(uint64_t seed, Variant variant) : seed_(seed), variant_(variant) {
    products_.reserve(kCatalogueSize);
    users_.reserve(kCatalogueSize);
    for (int id = 1; id <= kCatalogueSize; ++id) {
      uint64_t h = Mix(seed, 1, id);
      Product p;
      p.id = id;
      p.category = static_cast<int>(h % kCategories.size());
      p.name = std::string(Pick(kAdjectives, h >> 8)) + " " +
               std::string(Pick(kMaterials, h >> 16)) + " " +
               std::string(Pick(kNouns[p.category], h >> 24));
      p.lower_name = AsciiLower(p.name);
      p.price_cents = static_cast<int64_t>(1 + (h >> 32) % 250) * 100 - 1 -
                      static_cast<int64_t>((h >> 40) % 2) * 50;  // X.99 or X.49
      products_.push_back(std::move(p));

      uint64_t u = Mix(seed, 2, id);
      User user;
      user.id = id;
      user.first = Pick(kFirstNames, u);
      user.last = Pick(kLastNames, u >> 8);
      user.username = AsciiLower(user.first) + "." + AsciiLower(user.last) + std::to_string(id);
      user.city = static_cast<int>((u >> 16) % kCities.size());
      user.street = std::to_string(1 + (u >> 24) % 200) + " " +
                    std::string(Pick(kStreets, u >> 32)) + " Street";
      users_.push_back(std::move(user));
    }
    net::GzipEncoder gz;
    for (int id = 1; id <= kCatalogueSize; ++id) {
      product_bodies_.push_back(Rendered(RenderProduct(products_[id - 1]), &gz));
      user_bodies_.push_back(Rendered(RenderUser(users_[id - 1]), &gz));
      order_bodies_.push_back(Rendered(RenderOrder(id), &gz));
    }
  }

  struct Body {
    std::string plain, gzip;
  };

  Variant variant() const { return variant_; }
  const std::vector<Product>& products() const { return products_; }
  const Body& ProductBody(int id) const { return product_bodies_[id - 1]; }
  const Body& UserBody(int id) const { return user_bodies_[id - 1]; }
  const Body& OrderBody(int id) const { return order_bodies_[id - 1]; }

  // The list/search form of a product.
  static void WriteProductSummary(JsonWriter& w, const Product& p) {
    w.BeginObject();
    w.Key("id").Int(p.id);
    w.Key("name").String(p.name);
    w.Key("category").String(kCategories[p.category]);
    w.Key("price").Money(p.price_cents);
    w.Key("currency").String("EUR");
    w.Key("url").String("/api/v1/products/" + std::to_string(p.id));
    w.EndObject();
  }

 private:
  static Body Rendered(std::string plain, net::GzipEncoder* gz) {
    Body b;
    b.plain = std::move(plain);
    if (!gz->Compress(b.plain, &b.gzip)) b.gzip.clear();  // compressed per request then
    return b;
  }

  std::string RenderProduct(const Product& p) const {
    uint64_t h = Mix(seed_, 3, p.id);
    std::string out;
    JsonWriter w(&out);
    // v2 change 1: the product detail price is 10 % higher.
    int64_t price = variant_ == Variant::kV2 ? (p.price_cents * 11 + 5) / 10 : p.price_cents;
    int64_t stock = std::max<int64_t>(0, static_cast<int64_t>(h % 120) - 20);
    std::string_view category = kCategories[p.category];
    w.BeginObject();
    w.Key("id").Int(p.id);
    char sku[16];
    std::snprintf(sku, sizeof sku, "SKU-%05d", p.id);
    w.Key("sku").String(sku);
    w.Key("name").String(p.name);
    w.Key("category").String(category);
    w.Key("price").Money(price);
    w.Key("currency").String("EUR");
    w.Key("in_stock").Bool(stock > 0);
    w.Key("stock").Int(stock);
    w.Key("rating").Tenths(10 + static_cast<int64_t>((h >> 8) % 41));
    w.Key("reviews").Int(static_cast<int64_t>((h >> 16) % 2000));
    w.Key("tags").BeginArray();
    size_t space = p.name.find(' ');
    size_t space2 = p.name.find(' ', space + 1);
    w.String(AsciiLower(std::string_view(p.name).substr(space + 1, space2 - space - 1)));
    w.String(AsciiLower(std::string_view(p.name).substr(space2 + 1)));
    w.String(category);
    w.EndArray();
    w.Key("dimensions").BeginObject();
    w.Key("width_cm").Int(5 + static_cast<int64_t>((h >> 24) % 60));
    w.Key("height_cm").Int(5 + static_cast<int64_t>((h >> 32) % 80));
    w.Key("depth_cm").Int(2 + static_cast<int64_t>((h >> 40) % 40));
    w.Key("weight_kg").Tenths(1 + static_cast<int64_t>((h >> 48) % 150));
    w.EndObject();
    uint64_t s = (h >> 56) % kSuppliers.size();
    w.Key("supplier").BeginObject();
    w.Key("id").Int(static_cast<int64_t>(s) + 1);
    w.Key("name").String(kSuppliers[s]);
    w.Key("country").String(kSupplierCountries[s]);
    w.EndObject();
    w.Key("created_at").String(FormatTimestamp(kEpoch2023 + (h >> 20) % (730 * 86400)));
    w.EndObject();
    return out;
  }

  void WriteAddress(JsonWriter& w, const User& u) const {
    const City& c = kCities[u.city];
    w.BeginObject();
    w.Key("name").String(u.first + " " + u.last);
    w.Key("street").String(u.street);
    w.Key("city").String(c.name);
    w.Key("zip").String(c.zip);
    w.Key("country").String(c.country);
    w.EndObject();
  }

  std::string RenderUser(const User& u) const {
    uint64_t h = Mix(seed_, 4, u.id);
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("id").Int(u.id);
    w.Key("username").String(u.username);
    w.Key("name").BeginObject();
    w.Key("first").String(u.first);
    w.Key("last").String(u.last);
    w.EndObject();
    // v2 change 2: the email field is gone.
    if (variant_ != Variant::kV2) w.Key("email").String(u.username + "@example.com");
    w.Key("address");
    WriteAddress(w, u);
    w.Key("roles").BeginArray();
    w.String("customer");
    if (u.id % 97 == 0) w.String("admin");
    if (h % 5 == 0) w.String("reviewer");
    w.EndArray();
    w.Key("preferences").BeginObject();
    w.Key("newsletter").Bool(h & 1);
    w.Key("language").String(kCities[u.city].language);
    w.Key("currency").String("EUR");
    w.EndObject();
    w.Key("order_count").Int(static_cast<int64_t>((h >> 8) % 40));
    w.Key("created_at").String(FormatTimestamp(kEpoch2023 + (h >> 16) % (730 * 86400)));
    w.EndObject();
    return out;
  }

  std::string RenderOrder(int id) const {
    uint64_t h = Mix(seed_, 5, id);
    const User& u = users_[h % kCatalogueSize];
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("id").Int(id);
    w.Key("user_id").Int(u.id);
    w.Key("status").String(Pick(kOrderStatuses, h >> 12));
    w.Key("currency").String("EUR");
    int items = 1 + static_cast<int>((h >> 16) % 4);
    int64_t subtotal = 0;
    w.Key("items").BeginArray();
    for (int i = 0; i < items; ++i) {
      uint64_t ih = Mix(seed_, 6, id, i);
      const Product& p = products_[ih % kCatalogueSize];
      int64_t qty = 1 + static_cast<int64_t>((ih >> 16) % 3);
      int64_t line = qty * p.price_cents;
      subtotal += line;
      w.BeginObject();
      w.Key("line").Int(i + 1);
      w.Key("product_id").Int(p.id);
      w.Key("name").String(p.name);
      w.Key("quantity").Int(qty);
      w.Key("unit_price").Money(p.price_cents);
      w.Key("line_total").Money(line);
      w.EndObject();
    }
    w.EndArray();
    int64_t tax = (subtotal * 19 + 50) / 100;
    int64_t shipping = subtotal >= 5000 ? 0 : 499;
    w.Key("totals").BeginObject();
    w.Key("subtotal").Money(subtotal);
    w.Key("tax").Money(tax);
    w.Key("shipping").Money(shipping);
    w.Key("total").Money(subtotal + tax + shipping);
    w.EndObject();
    w.Key("shipping_address");
    WriteAddress(w, u);
    w.Key("created_at").String(FormatTimestamp(kEpoch2023 + (h >> 24) % (730 * 86400)));
    w.EndObject();
    return out;
  }

  uint64_t seed_;
  Variant variant_;
  std::vector<Product> products_;
  std::vector<User> users_;
  std::vector<Body> product_bodies_, user_bodies_, order_bodies_;
};

// ---------------------------------------------------------------------------------------
// The API: maps (method, target, body) to a Reply.

constexpr std::string_view kLogo =
    "     _                        _ \n"
    "  __| | ___  _ __  _ __   ___| |\n"
    " / _` |/ _ \\| '_ \\| '_ \\ / _ \\ |\n"
    "| (_| | (_) | |_) | |_) |  __/ |\n"
    " \\__,_|\\___/| .__/| .__/ \\___|_|\n"
    "            |_|   |_|           \n"
    "doppel-echo: the demo upstream\n";

// Finds parameter `name` in a raw query string; the last occurrence wins.
// Returns nullopt when absent; sets *bad when the query is not valid percent-encoding.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name, bool* bad) {
  auto items = net::DecodeQuery(query);
  if (!items) {
    *bad = true;
    return std::nullopt;
  }
  std::optional<std::string> found;
  for (auto& item : *items)
    if (item.key == name) found = std::move(item.value);
  return found;
}

// Parses a non-negative decimal integer of at most 9 digits.
std::optional<int> ParseSmallInt(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

class ShopApi {
 public:
  explicit ShopApi(const Catalogue& catalogue) : cat_(catalogue) {}

  // Fills *r for one request. HEAD is answered like GET (the caller drops the body).
  void Handle(http::verb method, std::string_view target, std::string_view body, Reply* r) const {
    r->Reset();
    const net::TargetParts parts = net::SplitTarget(target);
    const std::string_view path = parts.path;
    const std::string_view query = parts.query.value_or(std::string_view());
    bool read = method == http::verb::get || method == http::verb::head;

    if (path == "/api/v1/orders") {
      if (method != http::verb::post) return MethodNotAllowed("POST", r);
      return CreateOrder(body, r);
    }
    if (!read) {
      if (!IsKnownReadPath(path)) return NotFound(path, r);
      return MethodNotAllowed("GET, HEAD", r);
    }
    if (path == "/healthz") {
      r->owned = R"({"status":"ok"})";
      r->body = r->owned;
      return;
    }
    if (path == "/static/logo.txt") {
      r->content_type = "text/plain; charset=utf-8";
      r->body = kLogo;
      r->json_object = false;
      return;
    }
    if (path == "/api/v1/products") return ListProducts(query, r);
    if (path == "/api/v1/search") return Search(query, r);
    if (auto id = Suffix(path, "/api/v1/products/")) {
      return ById(*id, "product", &Catalogue::ProductBody, r);
    }
    if (auto id = Suffix(path, "/api/v1/users/")) {
      return ById(*id, "user", &Catalogue::UserBody, r);
    }
    if (auto id = Suffix(path, "/api/v1/orders/")) {
      return ById(*id, "order", &Catalogue::OrderBody, r);
    }
    NotFound(path, r);
  }

 private:
  static std::optional<std::string_view> Suffix(std::string_view path, std::string_view prefix) {
    if (path.size() <= prefix.size() || path.substr(0, prefix.size()) != prefix) {
      return std::nullopt;
    }
    std::string_view rest = path.substr(prefix.size());
    if (rest.find('/') != std::string_view::npos) return std::nullopt;
    return rest;
  }

  static bool IsKnownReadPath(std::string_view path) {
    return path == "/healthz" || path == "/static/logo.txt" || path == "/api/v1/products" ||
           path == "/api/v1/search" || Suffix(path, "/api/v1/products/") ||
           Suffix(path, "/api/v1/users/") || Suffix(path, "/api/v1/orders/");
  }

  static void NotFound(std::string_view path, Reply* r) {
    std::string msg = "no such endpoint: ";
    msg.append(path.substr(0, 200));
    r->Error(404, "not_found", msg);
  }

  static void MethodNotAllowed(std::string_view allow, Reply* r) {
    r->Error(405, "method_not_allowed", std::string("allowed: ") + std::string(allow));
    r->allow = allow;
  }

  void ById(std::string_view raw_id, std::string_view kind,
            const Catalogue::Body& (Catalogue::*body)(int) const, Reply* r) const {
    std::optional<int> id = ParseSmallInt(raw_id);
    if (!id) {
      return r->Error(400, "invalid_id", std::string(kind) + " id must be a positive integer");
    }
    if (*id < 1 || *id > kCatalogueSize) {
      return r->Error(404, "not_found",
                      std::string(kind) + " " + std::to_string(*id) + " not found");
    }
    const Catalogue::Body& b = (cat_.*body)(*id);
    r->Cached(b.plain, b.gzip);
  }

  // Reads an optional integer parameter within [lo, hi]; answers 400 and returns nullopt
  // when it is malformed or out of range.
  static std::optional<int> IntParam(std::string_view query, std::string_view name, int def, int lo,
                                     int hi, Reply* r) {
    bool bad = false;
    std::optional<std::string> raw = QueryParam(query, name, &bad);
    if (bad) {
      r->Error(400, "invalid_query", "malformed percent-encoding in the query");
      return std::nullopt;
    }
    if (!raw) return def;
    std::optional<int> v = ParseSmallInt(*raw);
    if (!v || *v < lo || *v > hi) {
      r->Error(400, "invalid_parameter",
               std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
      return std::nullopt;
    }
    return v;
  }

  void ListProducts(std::string_view query, Reply* r) const {
    std::optional<int> limit = IntParam(query, "limit", kDefaultLimit, 1, kMaxLimit, r);
    if (!limit) return;
    std::optional<int> offset = IntParam(query, "offset", 0, 0, 1000000000, r);
    if (!offset) return;
    bool bad = false;
    std::optional<std::string> category = QueryParam(query, "category", &bad);
    if (bad) return r->Error(400, "invalid_query", "malformed percent-encoding in the query");

    JsonWriter w(&r->owned);
    w.BeginObject().Key("items").BeginArray();
    int total = 0;
    for (const Product& p : cat_.products()) {
      if (category && kCategories[p.category] != *category) continue;
      if (total >= *offset && total < *offset + *limit) Catalogue::WriteProductSummary(w, p);
      ++total;
    }
    w.EndArray();
    w.Key("total").Int(total);
    w.Key("limit").Int(*limit);
    w.Key("offset").Int(*offset);
    w.Key("next_offset");
    if (*offset + *limit < total) {
      w.Int(*offset + *limit);
    } else {
      w.Null();
    }
    if (category) {
      w.Key("category").String(*category);
    }
    w.EndObject();
    r->body = r->owned;
  }

  void Search(std::string_view query, Reply* r) const {
    // v2 change 3: search is broken.
    if (cat_.variant() == Variant::kV2) {
      return r->Error(500, "internal", "search backend unavailable");
    }
    bool bad = false;
    std::optional<std::string> q = QueryParam(query, "q", &bad);
    if (bad) return r->Error(400, "invalid_query", "malformed percent-encoding in the query");
    if (!q || q->empty()) return r->Error(400, "missing_parameter", "q is required");
    std::optional<int> page = IntParam(query, "page", 1, 1, 1000000, r);
    if (!page) return;
    std::string needle = AsciiLower(*q);

    JsonWriter w(&r->owned);
    w.BeginObject();
    w.Key("query").String(*q);
    w.Key("page").Int(*page);
    w.Key("page_size").Int(kSearchPageSize);
    w.Key("results").BeginArray();
    int total = 0;
    int first = (*page - 1) * kSearchPageSize;
    for (const Product& p : cat_.products()) {
      if (p.lower_name.find(needle) == std::string::npos) continue;
      if (total >= first && total < first + kSearchPageSize) {
        Catalogue::WriteProductSummary(w, p);
      }
      ++total;
    }
    w.EndArray();
    w.Key("total").Int(total);
    w.Key("pages").Int((total + kSearchPageSize - 1) / kSearchPageSize);
    w.EndObject();
    r->body = r->owned;
  }

  void CreateOrder(std::string_view body, Reply* r) const {
    json::error_code ec;
    json::value order = json::parse(body, ec);
    if (ec) return r->Error(400, "invalid_json", "the body is not valid JSON: " + ec.message());
    if (!order.is_object())
      return r->Error(400, "invalid_order", "the order must be a JSON object");
    int64_t id = 100000 + static_cast<int64_t>(Fnv1a(body) % 900000);
    r->status = 201;
    JsonWriter w(&r->owned);
    w.BeginObject();
    w.Key("id").Int(id);
    w.Key("status").String("created");
    w.Key("order").Value(order);
    w.EndObject();
    r->body = r->owned;
    r->location = "/api/v1/orders/" + std::to_string(id);
  }

  const Catalogue& cat_;
};

}  // namespace

struct Shop::Impl {
  Impl(uint64_t seed, Variant variant) : catalogue(seed, variant), api(catalogue) {}
  Catalogue catalogue;
  ShopApi api;
};

Shop::Shop(uint64_t seed, Variant variant) : impl_(std::make_unique<const Impl>(seed, variant)) {}

Shop::~Shop() = default;

void Shop::Handle(http::verb method, std::string_view target, std::string_view body,
                  Reply* r) const {
  impl_->api.Handle(method, target, body, r);
}

}  // namespace doppel::echo
