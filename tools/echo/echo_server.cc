// doppel-echo: the demo upstream, a small deterministic JSON shop API over HTTP/1.x.
//
// Endpoints (GET also answers HEAD: same status and headers, no body):
//   GET  /healthz                      {"status":"ok"}
//   GET  /static/logo.txt              text/plain ASCII logo
//   GET  /api/v1/products              list; ?limit=1..100 (20) &offset>=0 (0) &category=
//   GET  /api/v1/products/{id}         one product, id 1..1000; 404 JSON error otherwise
//   GET  /api/v1/users/{id}            one user, id 1..1000
//   GET  /api/v1/orders/{id}           one order with a nested items array, id 1..1000
//   GET  /api/v1/search?q=&page=       product names containing q, 10 per page; 400 without q
//   POST /api/v1/orders                201 {"id","status","order":<the parsed body>} and a
//                                      Location header; 400 on invalid JSON or a non-object.
//                                      The id is a hash of the body (deterministic).
// Other paths answer 404, other methods 405 (with Allow); a non-numeric {id} answers 400.
// Errors are JSON: {"error":{"status":404,"code":"not_found","message":"..."}}.
//
// Data is generated from (--seed, id) once at startup; without --noise identical requests
// get byte-identical responses (no Date header either). --noise prepends "generated_at"
// (RFC 3339), "request_id" (UUID v4) and "nonce" (random hex) to every JSON object body and
// adds X-Request-Id and Date headers. gzip is used when Accept-Encoding allows it.
//
// --variant v2 makes exactly three deliberate behaviour changes, and nothing else:
//   1. GET /api/v1/products/{id}: "price" is 10 % higher (rounded to the cent). The list,
//      search and order endpoints keep the v1 prices.
//   2. GET /api/v1/users/{id}: the "email" field is missing.
//   3. GET /api/v1/search: always 500 {"error":{"code":"internal",...}}.
//
// Server shape: one io_context per thread; the acceptor runs on the first and hands each
// connection round-robin to a thread, where it stays. A connection reads one request at a
// time (fresh parser per request, body limit --max-request-body → 413, malformed → 400 and
// close, idle/read/write timeouts), answers after the optional --latency delay (an asio
// timer, never a sleep) and keeps the connection alive when the request allows it.
// Responses are serialized by hand into a per-connection buffer: header bytes + the body
// (for the id endpoints a pre-rendered, pre-gzipped body shared by all threads).
#include "tools/echo/echo_server.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/strings.h"

namespace doppel::echo {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

constexpr int kCatalogueSize = 1000;  // ids 1..1000 for products, users and orders
constexpr int kDefaultLimit = 20;
constexpr int kMaxLimit = 100;
constexpr int kSearchPageSize = 10;
constexpr auto kIdleTimeout = std::chrono::seconds(60);
constexpr auto kIoTimeout = std::chrono::seconds(30);

// ---------------------------------------------------------------------------------------
// JSON output. Boost.JSON 1.81 prints doubles as "1.299E1"; an API prints "12.99", so
// bodies are written with this small streaming writer (money is kept in integer cents).

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  JsonWriter& Key(std::string_view key) {
    Separate();
    AppendQuoted(key);
    out_->push_back(':');
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(std::string_view s) {
    Separate();
    AppendQuoted(s);
    return *this;
  }
  JsonWriter& Int(int64_t v) {
    Separate();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_->append(buf, r.ptr);
    return *this;
  }
  JsonWriter& Double(double v) {
    Separate();
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
    out_->append(buf, r.ptr);
    return *this;
  }
  // Prints cents as a decimal with two places: 1299 → 12.99.
  JsonWriter& Money(int64_t cents) { return Fixed(cents, 100, 2); }
  // Prints tenths with one place: 43 → 4.3.
  JsonWriter& Tenths(int64_t tenths) { return Fixed(tenths, 10, 1); }
  JsonWriter& Bool(bool v) {
    Separate();
    out_->append(v ? "true" : "false");
    return *this;
  }
  JsonWriter& Null() {
    Separate();
    out_->append("null");
    return *this;
  }

  // Writes any parsed JSON value (used to echo POSTed bodies).
  JsonWriter& Value(const json::value& v) {
    switch (v.kind()) {
      case json::kind::null:
        return Null();
      case json::kind::bool_:
        return Bool(v.get_bool());
      case json::kind::int64:
        return Int(v.get_int64());
      case json::kind::uint64: {
        Separate();
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
        out_->append(buf, r.ptr);
        return *this;
      }
      case json::kind::double_:
        return Double(v.get_double());
      case json::kind::string:
        return String(v.get_string());
      case json::kind::array:
        BeginArray();
        for (const auto& e : v.get_array()) Value(e);
        return EndArray();
      case json::kind::object:
        BeginObject();
        for (const auto& kv : v.get_object()) {
          Key(kv.key());
          Value(kv.value());
        }
        return EndObject();
    }
    return *this;
  }

 private:
  JsonWriter& Open(char c) {
    Separate();
    out_->push_back(c);
    need_comma_.push_back(false);
    return *this;
  }
  JsonWriter& Close(char c) {
    need_comma_.pop_back();
    out_->push_back(c);
    return *this;
  }
  JsonWriter& Fixed(int64_t v, int64_t scale, int places) {
    Separate();
    if (v < 0) {
      out_->push_back('-');
      v = -v;
    }
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v / scale);
    out_->append(buf, r.ptr);
    out_->push_back('.');
    int64_t frac = v % scale;
    if (places == 2 && frac < 10) out_->push_back('0');
    r = std::to_chars(buf, buf + sizeof buf, frac);
    out_->append(buf, r.ptr);
    return *this;
  }
  // Emits the comma between siblings; a value right after its key needs none.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (need_comma_.empty()) return;
    if (need_comma_.back()) out_->push_back(',');
    need_comma_.back() = true;
  }
  void AppendQuoted(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_->push_back('"');
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_->push_back('\\');
        out_->push_back(c);
      } else if (u < 0x20) {
        out_->append("\\u00");
        out_->push_back(kHex[u >> 4]);
        out_->push_back(kHex[u & 15]);
      } else {
        out_->push_back(c);  // UTF-8 passes through unchanged
      }
    }
    out_->push_back('"');
  }

  std::string* out_;
  std::vector<bool> need_comma_;  // per open container: has it a member already?
  bool after_key_ = false;
};

// ---------------------------------------------------------------------------------------
// gzip (zlib). One encoder per worker thread, reset per message. The gzip header carries
// no timestamp, so the same input always compresses to the same bytes.

class GzipEncoder {
 public:
  GzipEncoder() { ok_ = deflateInit2(&zs_, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK; }
  ~GzipEncoder() {
    if (ok_) deflateEnd(&zs_);
  }
  GzipEncoder(const GzipEncoder&) = delete;
  GzipEncoder& operator=(const GzipEncoder&) = delete;

  // Replaces *out with the gzip member of `in`. Returns false if zlib failed.
  bool Compress(std::string_view in, std::string* out) {
    if (!ok_ || deflateReset(&zs_) != Z_OK) return false;
    out->resize(deflateBound(&zs_, in.size()) + 32);
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      zs_.next_out = reinterpret_cast<Bytef*>(out->data() + zs_.total_out);
      zs_.avail_out = static_cast<uInt>(out->size() - zs_.total_out);
      int rc = deflate(&zs_, Z_FINISH);
      if (rc == Z_STREAM_END) break;
      if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
      out->resize(out->size() * 2);
    }
    out->resize(zs_.total_out);
    return true;
  }

 private:
  z_stream zs_{};
  bool ok_ = false;
};

// ---------------------------------------------------------------------------------------
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
    GzipEncoder gz;
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
  static Body Rendered(std::string plain, GzipEncoder* gz) {
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
// The API: maps (method, target, body) to a Reply. No I/O here.

// What to send back. `body` and `gzip_body` view either `owned` or the catalogue; a Reply
// lives in its connection and is refilled per request (so `owned` keeps its capacity).
struct Reply {
  unsigned status = 200;
  std::string_view content_type = "application/json";
  std::string_view body;
  std::string_view gzip_body;  // pre-compressed `body`, or empty
  std::string owned;
  std::string_view allow;   // for 405
  std::string location;     // for 201
  bool json_object = true;  // noise fields may be injected into the body

  void Reset() {
    status = 200;
    content_type = "application/json";
    body = gzip_body = allow = {};
    owned.clear();
    location.clear();
    json_object = true;
  }
  void Cached(const Catalogue::Body& b) {
    body = b.plain;
    gzip_body = b.gzip;
  }
  void Error(unsigned s, std::string_view code, std::string_view message) {
    status = s;
    owned.clear();
    JsonWriter w(&owned);
    w.BeginObject().Key("error").BeginObject();
    w.Key("status").Int(s).Key("code").String(code).Key("message").String(message);
    w.EndObject().EndObject();
    body = owned;
    gzip_body = {};
  }
};

constexpr std::string_view kLogo =
    "     _                        _ \n"
    "  __| | ___  _ __  _ __   ___| |\n"
    " / _` |/ _ \\| '_ \\| '_ \\ / _ \\ |\n"
    "| (_| | (_) | |_) | |_) |  __/ |\n"
    " \\__,_|\\___/| .__/| .__/ \\___|_|\n"
    "            |_|   |_|           \n"
    "doppel-echo: the demo upstream\n";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a query component ('+' is a space). Returns false on a bad escape.
bool DecodeComponent(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

// Finds parameter `name` in a raw query string; the last occurrence wins.
// Returns nullopt when absent; sets *bad when its value has a bad escape.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name, bool* bad) {
  std::optional<std::string> found;
  std::string key;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view k = pair.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (!DecodeComponent(k, &key)) {
      *bad = true;
      continue;
    }
    if (key != name) continue;
    std::string value;
    if (!DecodeComponent(v, &value)) {
      *bad = true;
      continue;
    }
    found = std::move(value);
  }
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
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    std::string_view query =
        q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
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
    r->Cached((cat_.*body)(*id));
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

// ---------------------------------------------------------------------------------------
// Helpers for the wire.

// True when an Accept-Encoding value accepts gzip (a "gzip" or "x-gzip" token whose q is
// not zero). "*" is not taken as gzip: clients that want compression name it.
bool AcceptsGzip(std::string_view value) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
      return s;
    };
    size_t semi = item.find(';');
    std::string_view token = trim(item.substr(0, semi));
    if (!beast::iequals(token, "gzip") && !beast::iequals(token, "x-gzip")) continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = trim(item.substr(semi + 1));
    if (params.size() >= 2 && (params[0] == 'q' || params[0] == 'Q') && params[1] == '=') {
      std::string_view qv = trim(params.substr(2));
      bool zero =
          !qv.empty() && qv[0] == '0' && qv.find_first_not_of("0.", 0) == std::string_view::npos;
      if (zero) continue;
    }
    return true;
  }
  return false;
}

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

// Per-thread state: the thread's io_context and what its connections share.
struct Worker {
  explicit Worker(uint64_t rng_seed) : rng(rng_seed) {}
  asio::io_context ioc{1};
  std::mt19937_64 rng;  // noise values and latency jitter; seeded from random_device
  GzipEncoder gzip;
  std::thread thread;
};

struct ServerConfig {
  bool noise;
  std::chrono::microseconds latency, jitter;
  uint64_t max_request_body;
};

// ---------------------------------------------------------------------------------------
// One connection.

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Worker* worker, const ShopApi* api, const ServerConfig* config)
      : stream_(std::move(socket)),
        timer_(stream_.get_executor()),
        worker_(worker),
        api_(api),
        config_(config) {}

  // May be called from any thread: the first read starts on the connection's own thread.
  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(config_->max_request_body);
    stream_.expires_after(kIdleTimeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    if (parser_->is_done()) return OnRequest();
    auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(kIoTimeout);
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(kIoTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->OnReadError(ec);
                       self->OnRequest();
                     });
  }

  void OnReadError(beast::error_code ec) {
    // A peer that went away or idled out gets no answer; a broken request gets one and
    // the connection is closed, as the stream position after a parse error is unknown.
    static const auto& kHttpCategory = beast::error_code(http::error::bad_target).category();
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != kHttpCategory) {
      return Close();
    }
    version_ = 11;
    keep_alive_ = false;
    head_ = false;
    gzip_ = false;
    if (ec == http::error::body_limit) {
      reply_.Error(
          413, "body_too_large",
          "the request body exceeds " + std::to_string(config_->max_request_body) + " bytes");
    } else if (ec == http::error::header_limit) {
      reply_.Error(431, "header_too_large", "the request header is too large");
    } else {
      reply_.Error(400, "bad_request", "malformed HTTP request: " + ec.message());
    }
    error_reply_ = true;
    Send();
  }

  void OnRequest() {
    const auto& req = parser_->get();
    version_ = req.version();
    error_reply_ = false;
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    gzip_ = AcceptsGzip(req[http::field::accept_encoding]);
    api_->Handle(req.method(), req.target(), req.body(), &reply_);
    std::chrono::microseconds delay = config_->latency;
    if (config_->jitter.count() > 0) {
      std::uniform_int_distribution<int64_t> d(-config_->jitter.count(), config_->jitter.count());
      delay += std::chrono::microseconds(d(worker_->rng));
    }
    if (delay.count() <= 0) return Send();
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->Close();
      self->Send();
    });
  }

  // Writes an RFC 3339 time with microseconds (strictly increasing across the process, so
  // no two responses share it), a UUID v4 and a hex nonce for --noise.
  void MakeNoise(std::string* generated_at, std::string* uuid, std::string* nonce) {
    static constexpr char kHex[] = "0123456789abcdef";
    static std::atomic<int64_t> last_us{0};
    int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    int64_t prev = last_us.load(std::memory_order_relaxed);
    do {
      if (us <= prev) us = prev + 1;
    } while (!last_us.compare_exchange_weak(prev, us, std::memory_order_relaxed));
    std::time_t t = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[48];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%06dZ", static_cast<int>(us % 1000000));
    *generated_at = buf;

    uint64_t a = worker_->rng(), b = worker_->rng();
    a = (a & ~(0xFull << 12)) | (0x4ull << 12);  // version 4
    b = (b & ~(0x3ull << 62)) | (0x2ull << 62);  // RFC 4122 variant
    uuid->clear();
    for (int i = 0; i < 32; ++i) {
      if (i == 8 || i == 12 || i == 16 || i == 20) uuid->push_back('-');
      uint64_t word = i < 16 ? a : b;
      uuid->push_back(kHex[(word >> (60 - 4 * (i % 16))) & 15]);
    }
    uint64_t c = worker_->rng();
    nonce->clear();
    for (int i = 0; i < 16; ++i) nonce->push_back(kHex[(c >> (60 - 4 * i)) & 15]);
  }

  void Send() {
    std::string_view body = reply_.body;
    std::string_view gz = reply_.gzip_body;
    std::string request_id;
    if (config_->noise) {
      std::string generated_at, nonce;
      MakeNoise(&generated_at, &request_id, &nonce);
      if (reply_.json_object && body.size() >= 2 && body.front() == '{') {
        noisy_.clear();
        JsonWriter w(&noisy_);
        w.BeginObject();
        w.Key("generated_at").String(generated_at);
        w.Key("request_id").String(request_id);
        w.Key("nonce").String(nonce);
        w.EndObject();
        // Splice the original members after ours: drop our '}' and the body's '{'.
        noisy_.pop_back();
        if (body.size() > 2) noisy_.push_back(',');
        noisy_.append(body.substr(1));
        body = noisy_;
        gz = {};
      }
    }
    bool compressed = false;
    if (gzip_ && !body.empty()) {
      if (gz.empty() && worker_->gzip.Compress(body, &gzip_buf_)) gz = gzip_buf_;
      if (!gz.empty()) {
        body = gz;
        compressed = true;
      }
    }

    std::string& h = head_buf_;
    h.clear();
    h.append(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    AppendUint(&h, reply_.status);
    h.push_back(' ');
    h.append(http::obsolete_reason(static_cast<http::status>(reply_.status)));
    h.append("\r\nServer: doppel-echo\r\nContent-Type: ");
    h.append(reply_.content_type);
    h.append("\r\nContent-Length: ");
    AppendUint(&h, body.size());
    if (compressed) h.append("\r\nContent-Encoding: gzip");
    h.append("\r\nVary: Accept-Encoding");
    if (!reply_.location.empty()) h.append("\r\nLocation: ").append(reply_.location);
    if (!reply_.allow.empty()) h.append("\r\nAllow: ").append(reply_.allow);
    if (config_->noise) {
      h.append("\r\nX-Request-Id: ").append(request_id);
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char date[40];
      std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
      h.append("\r\nDate: ").append(date);
    }
    if (!keep_alive_) {
      h.append("\r\nConnection: close");
    } else if (version_ == 10) {
      h.append("\r\nConnection: keep-alive");
    }
    h.append("\r\n\r\n");

    std::array<asio::const_buffer, 2> buffers = {
        asio::buffer(h.data(), h.size()), asio::buffer(body.data(), head_ ? 0 : body.size())};
    stream_.expires_after(kIoTimeout);
    asio::async_write(stream_, buffers, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      if (self->error_reply_) return self->LingeringClose();
      if (!self->keep_alive_) return self->Close();
      self->ReadHeader();
    });
  }

  // After an error reply the client may still be sending (say, a body over the limit).
  // Closing with unread input makes the kernel send RST, which can destroy our reply in
  // flight; so stop sending, then discard input for a short while before closing.
  void LingeringClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    stream_.expires_after(std::chrono::seconds(2));
    Drain();
  }

  void Drain() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Worker* worker_;
  const ShopApi* api_;
  const ServerConfig* config_;

  // The request being answered.
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool gzip_ = false;
  bool error_reply_ = false;  // the reply is to a request we could not read
  Reply reply_;
  // Reused output buffers: they keep their capacity across requests.
  std::string head_buf_, noisy_, gzip_buf_;
};

// ---------------------------------------------------------------------------------------
// The server.

class EchoServerImpl final : public EchoServer {
 public:
  EchoServerImpl(const EchoOptions& options)
      : catalogue_(options.seed, options.variant),
        api_(catalogue_),
        config_{options.noise, options.latency, options.latency_jitter, options.max_request_body} {
    std::random_device rd;
    for (int i = 0; i < options.threads; ++i) {
      uint64_t s = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(i);
      workers_.push_back(std::make_unique<Worker>(s));
    }
    acceptor_.emplace(workers_[0]->ioc);
  }

  ~EchoServerImpl() override {
    Stop();
    Wait();
    acceptor_.reset();  // before the io_context it belongs to
  }

  Status Listen(const EchoOptions& options) {
    beast::error_code ec;
    auto address = asio::ip::make_address(options.host, ec);
    if (ec) return Status::InvalidArgument("not an IP address: " + options.host);
    tcp::endpoint endpoint(address, options.port);
    auto fail = [&](const char* what) {
      return Status::Unavailable(std::string(what) + " " + options.host + ":" +
                                 std::to_string(options.port) + ": " + ec.message());
    };
    acceptor_->open(endpoint.protocol(), ec);
    if (ec) return fail("cannot open a socket for");
    acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    acceptor_->bind(endpoint, ec);
    if (ec) return fail("cannot bind");
    acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("cannot listen on");
    port_ = acceptor_->local_endpoint(ec).port();
    if (ec) return fail("cannot read the local address of");
    return Status::Ok();
  }

  void Run() {
    Accept();
    for (auto& w : workers_) {
      Worker* worker = w.get();
      worker->thread = std::thread([worker] {
        auto guard = asio::make_work_guard(worker->ioc);
        worker->ioc.run();
      });
    }
  }

  uint16_t port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    // Stopping the io_contexts abandons in-flight work; connections and the acceptor are
    // closed when they are destroyed, after the threads have returned.
    for (auto& w : workers_) w->ioc.stop();
  }

  void Wait() override {
    std::lock_guard<std::mutex> lock(join_mutex_);
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
  }

 private:
  void Accept() {
    Worker* target = workers_[next_worker_].get();
    next_worker_ = (next_worker_ + 1) % workers_.size();
    acceptor_->async_accept(target->ioc, [this, target](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
      if (ec) {
        // Out of descriptors and the like: back off briefly instead of spinning.
        std::fprintf(stderr, "doppel-echo: accept: %s\n", ec.message().c_str());
        auto timer = std::make_shared<asio::steady_timer>(workers_[0]->ioc);
        timer->expires_after(std::chrono::milliseconds(10));
        timer->async_wait([this, timer](beast::error_code) { Accept(); });
        return;
      }
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Connection>(std::move(socket), target, &api_, &config_)->Start();
      Accept();
    });
  }

  Catalogue catalogue_;
  ShopApi api_;
  ServerConfig config_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<tcp::acceptor> acceptor_;  // on workers_[0]
  size_t next_worker_ = 0;                 // touched only on workers_[0]'s thread
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::mutex join_mutex_;
};

}  // namespace

Result<std::unique_ptr<EchoServer>> EchoServer::Start(const EchoOptions& options) {
  if (options.threads < 1 || options.threads > 1024) {
    return Status::InvalidArgument("--threads must be between 1 and 1024");
  }
  if (options.latency.count() < 0 || options.latency_jitter.count() < 0) {
    return Status::InvalidArgument("--latency and --latency-jitter must not be negative");
  }
  auto server = std::make_unique<EchoServerImpl>(options);
  DOPPEL_RETURN_IF_ERROR(server->Listen(options));
  server->Run();
  return std::unique_ptr<EchoServer>(std::move(server));
}

Result<std::chrono::microseconds> ParseDuration(const std::string& text) {
  std::string_view s = text;
  size_t unit_at = s.find_first_not_of("0123456789.");
  std::string_view number = s.substr(0, unit_at);
  std::string_view unit = unit_at == std::string_view::npos ? "ms" : s.substr(unit_at);
  double value = 0;
  auto r = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || r.ec != std::errc() || r.ptr != number.data() + number.size()) {
    return Status::InvalidArgument("not a duration: '" + text + "' (try 5ms, 250us, 1s)");
  }
  double scale;
  if (unit == "us") {
    scale = 1;
  } else if (unit == "ms") {
    scale = 1e3;
  } else if (unit == "s") {
    scale = 1e6;
  } else {
    return Status::InvalidArgument("unknown duration unit in '" + text + "' (use us, ms or s)");
  }
  double us = value * scale;
  if (us > 3600e6) return Status::InvalidArgument("duration too long: '" + text + "'");
  return std::chrono::microseconds(static_cast<int64_t>(us + 0.5));
}

}  // namespace doppel::echo
