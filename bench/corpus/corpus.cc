#include "bench/corpus/corpus.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doppel::bench {
namespace {

using doppel::v1::Envelope;
using doppel::v1::HttpRequest;
using doppel::v1::HttpResponse;

// ---- randomness -------------------------------------------------------------------------

// SplitMix64 finalizer. Derives independent, reproducible seeds for entities (a product, an
// order, a user), so an entity looks the same every time the API serves it.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t Mix(uint64_t a, uint64_t b) { return Mix(a ^ Mix(b)); }
uint64_t Mix(uint64_t a, uint64_t b, uint64_t c) { return Mix(Mix(a, b), c); }

// SplitMix64 generator: specified entirely here, so streams are identical everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Bits() {
    state_ += 0x9e3779b97f4a7c15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0. The modulo bias (below n / 2^64) does not matter here.
  uint64_t Below(uint64_t n) { return Bits() % n; }
  // Uniform in [lo, hi].
  uint64_t Between(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }
  bool PerMille(uint64_t p) { return Below(1000) < p; }
  // In [0, n), skewed toward 0 like popularity: n * u^3 for u uniform in [0, 1).
  uint64_t Skewed(uint64_t n) {
    using u128 = unsigned __int128;
    const u128 u = Bits() >> 32;  // 32-bit fraction
    const u128 cube = ((u * u) >> 32) * u >> 32;
    return static_cast<uint64_t>((cube * n) >> 32);
  }
  std::string_view Pick(std::span<const std::string_view> items) {
    return items[Below(items.size())];
  }

 private:
  uint64_t state_;
};

// ---- word lists -------------------------------------------------------------------------

constexpr std::string_view kAdjectives[] = {
    "Rustic",    "Sleek",      "Ergonomic",   "Compact",    "Vintage",  "Modern",
    "Classic",   "Handmade",   "Lightweight", "Durable",    "Premium",  "Elegant",
    "Practical", "Refined",    "Minimalist",  "Heavy-Duty", "Portable", "Foldable",
    "Smart",     "Cozy",       "Sturdy",      "Polished",   "Soft",     "Weatherproof",
    "Insulated", "Adjustable", "Stackable",   "Wireless",   "Organic",  "Slim"};
constexpr std::string_view kMaterials[] = {"Granite", "Oak",    "Walnut",    "Bamboo", "Steel",
                                           "Copper",  "Linen",  "Cotton",    "Wool",   "Leather",
                                           "Ceramic", "Glass",  "Aluminium", "Marble", "Concrete",
                                           "Cork",    "Rattan", "Silicone",  "Brass",  "Felt"};
constexpr std::string_view kNouns[] = {
    "Lamp",     "Chair",      "Table",   "Mug",     "Backpack",    "Blanket", "Kettle",
    "Shelf",    "Clock",      "Bottle",  "Planter", "Stool",       "Desk",    "Cushion",
    "Rug",      "Vase",       "Tray",    "Bowl",    "Lantern",     "Speaker", "Headphones",
    "Keyboard", "Notebook",   "Pen",     "Wallet",  "Jacket",      "Scarf",   "Sneakers",
    "Watch",    "Sunglasses", "Toaster", "Grinder", "Pan",         "Knife",   "Cutting Board",
    "Teapot",   "Mirror",     "Hammock", "Tent",    "Bicycle Bell"};
constexpr std::string_view kColors[] = {"black", "white",      "grey", "navy",   "olive",
                                        "sand",  "terracotta", "red",  "forest", "sky"};
constexpr std::string_view kSizes[] = {"XS", "S", "M", "L", "XL", "one-size"};
constexpr std::string_view kTags[] = {
    "new",    "sale",     "bestseller", "eco",        "gift-idea", "limited", "outdoor",
    "indoor", "kitchen",  "office",     "travel",     "handmade",  "premium", "clearance",
    "bundle", "recycled", "vegan",      "fair-trade", "exclusive", "seasonal"};
struct Category {
  std::string_view slug;
  std::string_view name;
  std::string_view path;
};
constexpr Category kCategories[] = {{"home-living", "Home & Living", "/home"},
                                    {"kitchen-dining", "Kitchen & Dining", "/home/kitchen"},
                                    {"furniture", "Furniture", "/home/furniture"},
                                    {"lighting", "Lighting", "/home/lighting"},
                                    {"garden-outdoor", "Garden & Outdoor", "/garden"},
                                    {"electronics", "Electronics", "/electronics"},
                                    {"audio", "Audio", "/electronics/audio"},
                                    {"office", "Office Supplies", "/office"},
                                    {"fashion", "Fashion", "/fashion"},
                                    {"shoes", "Shoes", "/fashion/shoes"},
                                    {"accessories", "Accessories", "/fashion/accessories"},
                                    {"sports", "Sports & Travel", "/sports"}};
constexpr std::string_view kDescriptionWords[] = {
    "designed",    "for",       "everyday",  "use",        "with",
    "a",           "timeless",  "look",      "made",       "from",
    "responsibly", "sourced",   "materials", "and",        "finished",
    "by",          "hand",      "in",        "our",        "partner",
    "workshop",    "easy",      "to",        "clean",      "built",
    "last",        "the",       "perfect",   "companion",  "home",
    "office",      "or",        "travel",    "comes",      "gift",
    "box",         "includes",  "two-year",  "warranty",   "water-resistant",
    "surface",     "quiet",     "operation", "fits",       "small",
    "spaces",      "generous",  "storage",   "soft-touch", "grip",
    "balanced",    "weight",    "subtle",    "texture",    "natural",
    "variations",  "make",      "each",      "piece",      "unique",
    "pairs",       "well",      "other",     "items",      "collection",
    "available",   "several",   "colours",   "sizes",      "dishwasher-safe",
    "tested",      "thousands", "of",        "cycles",     "recyclable",
    "packaging"};
constexpr std::string_view kFirstNames[] = {
    "Anna",   "Lukas", "Sofia", "Jonas", "Emma",  "Noah",  "Mia",   "Elias", "Lea",   "Paul",
    "Hannah", "Leon",  "Clara", "Felix", "Marie", "Ben",   "Laura", "Finn",  "Julia", "Max",
    "Olivia", "Liam",  "Ava",   "Mateo", "Chloe", "Hugo",  "Ines",  "Luca",  "Zoe",   "Omar",
    "Amira",  "Yusuf", "Mei",   "Kenji", "Priya", "Arjun", "Sara",  "David", "Nora",  "Oscar"};
constexpr std::string_view kLastNames[] = {
    "Schmidt", "Mueller",  "Schneider", "Fischer",  "Weber", "Meyer",  "Wagner",  "Becker",
    "Schulz",  "Hoffmann", "Koch",      "Richter",  "Klein", "Wolf",   "Neumann", "Schwarz",
    "Martin",  "Bernard",  "Dubois",    "Rossi",    "Russo", "Garcia", "Lopez",   "Smith",
    "Johnson", "Brown",    "Nguyen",    "Kowalski", "Novak", "Jensen", "Larsen",  "Silva",
    "Yilmaz",  "Tanaka",   "Sato",      "Khan",     "Patel", "Cohen",  "Murphy",  "Kelly"};
constexpr std::string_view kCities[] = {
    "Berlin",   "Hamburg",    "Munich",    "Cologne", "Frankfurt", "Stuttgart",
    "Leipzig",  "Dresden",    "Vienna",    "Zurich",  "Amsterdam", "Rotterdam",
    "Brussels", "Paris",      "Lyon",      "Milan",   "Madrid",    "Barcelona",
    "Lisbon",   "Copenhagen", "Stockholm", "Oslo",    "Prague",    "Warsaw"};
constexpr std::string_view kCountries[] = {"DE", "DE", "DE", "DE", "DE", "DE", "DE", "DE",
                                           "AT", "CH", "NL", "NL", "BE", "FR", "FR", "IT",
                                           "ES", "ES", "PT", "DK", "SE", "NO", "CZ", "PL"};
constexpr std::string_view kStreets[] = {
    "Hauptstrasse",    "Bahnhofstrasse", "Gartenweg",     "Lindenallee",
    "Schillerstrasse", "Goethestrasse",  "Marktplatz",    "Bergstrasse",
    "Kirchgasse",      "Rosenweg",       "Parkstrasse",   "Seestrasse",
    "Muehlenweg",      "Am Hafen",       "Wiesenstrasse", "Ringstrasse"};
constexpr std::string_view kCarriers[] = {"DHL", "DPD", "UPS", "GLS", "Hermes"};
constexpr std::string_view kOrderStates[] = {"paid",      "paid",      "shipped",   "shipped",
                                             "shipped",   "delivered", "delivered", "delivered",
                                             "delivered", "cancelled", "refunded",  "pending"};
constexpr std::string_view kCardBrands[] = {"visa", "visa",   "mastercard", "mastercard",
                                            "amex", "paypal", "klarna",     "sepa"};
constexpr std::string_view kSorts[] = {"popular",    "popular", "popular", "price_asc",
                                       "price_desc", "newest",  "rating"};
constexpr std::string_view kLoyaltyTiers[] = {"none",   "none", "bronze",
                                              "silver", "gold", "platinum"};

// Clients: browsers call the API from the web shop (cookies, Accept-Language, Referer);
// mobile apps and server-side integrations send a bearer token only.
enum class ClientKind { kBrowser, kApp, kIntegration };
struct Client {
  ClientKind kind;
  std::string_view user_agent;
  std::string_view accept;
  std::string_view accept_encoding;
};
constexpr Client kClients[] = {
    {ClientKind::kBrowser,
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36",
     "application/json, text/plain, */*", "gzip, deflate, br, zstd"},
    {ClientKind::kBrowser,
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/18.1 Safari/605.1.15",
     "application/json, text/plain, */*", "gzip, deflate, br"},
    {ClientKind::kBrowser, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "application/json, text/plain, */*", "gzip, deflate, br, zstd"},
    {ClientKind::kBrowser,
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
     "application/json, text/plain, */*", "gzip, deflate, br"},
    {ClientKind::kBrowser,
     "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.6778.81 Mobile Safari/537.36",
     "application/json, text/plain, */*", "gzip, deflate, br, zstd"},
    {ClientKind::kBrowser,
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
     "application/json, text/plain, */*", "gzip, deflate, br, zstd"},
    {ClientKind::kApp, "ShopApp/4.12.1 (iPhone15,3; iOS 18.1; Scale/3.00)", "application/json",
     "gzip, deflate, br"},
    {ClientKind::kApp, "ShopApp/4.12.0 (iPad13,4; iPadOS 17.6.1; Scale/2.00)", "application/json",
     "gzip, deflate, br"},
    {ClientKind::kApp, "ShopApp/4.11.7 (Android 14; SM-S918B; Build/UP1A.231005.007) okhttp/4.12.0",
     "application/json", "gzip"},
    {ClientKind::kApp, "ShopApp/4.12.1 (Android 15; Pixel 9; Build/AP3A.241105.007) okhttp/4.12.0",
     "application/json", "gzip"},
    {ClientKind::kIntegration, "python-requests/2.31.0", "*/*", "gzip, deflate"},
    {ClientKind::kIntegration, "Go-http-client/1.1", "application/json", "gzip"},
    {ClientKind::kIntegration, "curl/7.88.1", "*/*", ""},
    {ClientKind::kIntegration, "PostmanRuntime/7.42.0", "*/*", "gzip, deflate, br"},
};
// Weights (out of 100) over kClients, so that about 45 % are browsers and 40 % apps.
constexpr int kClientWeights[] = {14, 9, 5, 8, 5, 4, 14, 5, 11, 10, 6, 4, 2, 3};
constexpr std::string_view kLanguages[] = {"de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
                                           "en-US,en;q=0.9",
                                           "de-DE,de;q=0.9",
                                           "en-GB,en;q=0.9",
                                           "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7",
                                           "nl-NL,nl;q=0.9,en;q=0.8",
                                           "it-IT,it;q=0.9,en;q=0.8",
                                           "es-ES,es;q=0.9"};

// ---- formatting -------------------------------------------------------------------------

constexpr char kHexDigits[] = "0123456789abcdef";

void AppendHex(std::string* out, uint64_t bits, int digits) {
  for (int i = digits - 1; i >= 0; --i) out->push_back(kHexDigits[(bits >> (4 * i)) & 0xf]);
}
std::string Hex(Rng& rng, int digits) {
  std::string s;
  s.reserve(digits);
  while (digits > 0) {
    const int now = digits < 16 ? digits : 16;
    AppendHex(&s, rng.Bits(), now);
    digits -= now;
  }
  return s;
}
// A version-4 UUID, lower case.
std::string Uuid(uint64_t a, uint64_t b) {
  a = (a & ~0xf000ull) | 0x4000ull;
  b = (b & ~(0xcull << 60)) | (0x8ull << 60);
  std::string s;
  s.reserve(36);
  AppendHex(&s, a >> 32, 8);
  s += '-';
  AppendHex(&s, a >> 16, 4);
  s += '-';
  AppendHex(&s, a, 4);
  s += '-';
  AppendHex(&s, b >> 48, 4);
  s += '-';
  AppendHex(&s, b, 12);
  return s;
}
std::string Uuid(Rng& rng) {
  const uint64_t a = rng.Bits();
  return Uuid(a, rng.Bits());
}
std::string Alnum(Rng& rng, int n) {
  static constexpr char kAlnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(kAlnum[rng.Below(62)]);
  return s;
}
// `value / 10^scale` written with exactly `scale` decimals: Decimal(12999, 2) = "129.99".
std::string Decimal(uint64_t value, int scale) {
  uint64_t div = 1;
  for (int i = 0; i < scale; ++i) div *= 10;
  std::string s = std::to_string(value / div);
  if (scale > 0) {
    std::string frac = std::to_string(value % div);
    s += '.';
    s.append(scale - frac.size(), '0');
    s += frac;
  }
  return s;
}
std::string Lower(std::string_view in) {
  std::string s(in);
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == ' ') c = '-';
  }
  return s;
}

struct CivilTime {
  int year;
  unsigned month, day, weekday;  // weekday: 0 = Sunday
  int64_t hour, minute, second;
};
CivilTime ToCivil(uint64_t unix_seconds) {
  using namespace std::chrono;
  const sys_seconds t{seconds{static_cast<int64_t>(unix_seconds)}};
  const sys_days d = floor<days>(t);
  const year_month_day ymd{d};
  const hh_mm_ss hms{t - d};
  return {static_cast<int>(ymd.year()),
          static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()),
          weekday{d}.c_encoding(),
          hms.hours().count(),
          hms.minutes().count(),
          hms.seconds().count()};
}
// RFC 3339 UTC, with milliseconds when `millis`: "2026-11-27T00:00:01.234Z".
std::string Rfc3339(uint64_t unix_us, bool millis) {
  const CivilTime c = ToCivil(unix_us / 1000000);
  char buf[40];
  if (millis) {
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03uZ", c.year, c.month, c.day,
                  static_cast<int>(c.hour), static_cast<int>(c.minute), static_cast<int>(c.second),
                  static_cast<unsigned>(unix_us / 1000 % 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", c.year, c.month, c.day,
                  static_cast<int>(c.hour), static_cast<int>(c.minute), static_cast<int>(c.second));
  }
  return buf;
}
// IMF-fixdate, as in the Date header: "Fri, 27 Nov 2026 00:00:01 GMT".
std::string HttpDate(uint64_t unix_us) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const CivilTime c = ToCivil(unix_us / 1000000);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDays[c.weekday], c.day,
                kMonths[c.month - 1], c.year, static_cast<int>(c.hour), static_cast<int>(c.minute),
                static_cast<int>(c.second));
  return buf;
}

// A compact JSON writer (no whitespace, as most APIs send). Tracks commas; the caller keeps
// objects and arrays balanced.
class JsonWriter {
 public:
  JsonWriter& BeginObject() {
    Separate();
    out_ += '{';
    first_.push_back(true);
    return *this;
  }
  JsonWriter& EndObject() {
    out_ += '}';
    first_.pop_back();
    return *this;
  }
  JsonWriter& BeginArray() {
    Separate();
    out_ += '[';
    first_.push_back(true);
    return *this;
  }
  JsonWriter& EndArray() {
    out_ += ']';
    first_.pop_back();
    return *this;
  }
  JsonWriter& Key(std::string_view key) {
    Separate();
    Quoted(key);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(std::string_view v) {
    Separate();
    Quoted(v);
    return *this;
  }
  JsonWriter& Number(std::string_view literal) {  // an already formatted number
    Separate();
    out_ += literal;
    return *this;
  }
  JsonWriter& Int(int64_t v) { return Number(std::to_string(v)); }
  JsonWriter& Bool(bool v) { return Number(v ? "true" : "false"); }
  JsonWriter& Null() { return Number("null"); }

  JsonWriter& Field(std::string_view k, std::string_view v) { return Key(k).String(v); }
  JsonWriter& Field(std::string_view k, const std::string& v) { return Key(k).String(v); }
  JsonWriter& Field(std::string_view k, const char* v) { return Key(k).String(v); }
  JsonWriter& Field(std::string_view k, int64_t v) { return Key(k).Int(v); }
  JsonWriter& Field(std::string_view k, uint64_t v) { return Key(k).Int(static_cast<int64_t>(v)); }
  JsonWriter& Field(std::string_view k, int v) { return Key(k).Int(v); }
  JsonWriter& Field(std::string_view k, bool v) { return Key(k).Bool(v); }
  JsonWriter& NumberField(std::string_view k, std::string_view literal) {
    return Key(k).Number(literal);
  }

  std::string Take() { return std::move(out_); }

 private:
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      if (!first_.back()) out_ += ',';
      first_.back() = false;
    }
  }
  void Quoted(std::string_view s) {
    out_ += '"';
    for (char c : s) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        out_ += ' ';
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

void Money(JsonWriter& w, std::string_view key, uint64_t cents) {
  w.Key(key).BeginObject().Field("amount", Decimal(cents, 2)).Field("currency", "EUR");
  w.EndObject();
}

// ---- the shop's data --------------------------------------------------------------------

constexpr uint64_t kFirstProductId = 10000;
constexpr uint64_t kProducts = 20000;
constexpr uint64_t kFirstUserId = 100000;
constexpr uint64_t kUsers = 40000;
constexpr uint64_t kOrders = 60000;
constexpr uint64_t kCategoryCount = std::size(kCategories);

// Entity tags keep the seeds of different entity kinds apart.
enum Tag : uint64_t {
  kTagProduct = 1,
  kTagUser,
  kTagOrder,
  kTagOrderId,
  kTagSearch,
  kTagConnection,
  kTagCart,
  kTagList
};

struct Product {
  uint64_t id;
  std::string name, slug, sku, description, image_key;
  const Category* category;
  uint64_t price_cents, compare_at_cents, stock, rating_tenths, reviews, seller_id;
  uint64_t created_us, updated_us;
  std::vector<std::string_view> tags;
  int images, variants;
  uint64_t variant_seed;
  uint64_t weight_g, dims[3];
};

Product MakeProduct(uint64_t seed, uint64_t id) {
  Rng r(Mix(seed, kTagProduct, id));
  Product p;
  p.id = id;
  p.category = &kCategories[(id - kFirstProductId) % kCategoryCount];
  // One draw per statement: the order of evaluation of operands of + is unspecified.
  p.name = r.Pick(kAdjectives);
  p.name += ' ';
  p.name += r.Pick(kMaterials);
  p.name += ' ';
  p.name += r.Pick(kNouns);
  p.slug = Lower(p.name) + "-" + std::to_string(id);
  p.sku = p.category->slug.substr(0, 3);
  p.sku += "-" + std::to_string(id) + "-" + Alnum(r, 2);
  for (char& c : p.sku) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  const int words = static_cast<int>(r.Between(18, 42));
  bool sentence_start = true;
  for (int i = 0; i < words; ++i) {
    std::string word(r.Pick(kDescriptionWords));
    if (sentence_start) word[0] = static_cast<char>(word[0] - 'a' + 'A');
    p.description += word;
    sentence_start = (i + 1 < words) && r.PerMille(110);
    p.description += sentence_start ? ". " : (i + 1 < words ? " " : ".");
  }
  static constexpr uint64_t kEndings[] = {99, 99, 99, 95, 49, 0, 90};
  p.price_cents = r.Between(2, 399) * 100;
  p.price_cents += kEndings[r.Below(std::size(kEndings))];
  p.compare_at_cents = r.PerMille(180) ? p.price_cents + r.Between(5, 60) * 100 : 0;
  p.stock = r.PerMille(70) ? 0 : r.Between(1, 480);
  p.rating_tenths = r.Between(28, 50);
  p.reviews = r.Skewed(3000);
  p.seller_id = r.Between(1, 420);
  p.created_us = kCorpusStartUs - r.Between(30, 900) * 86400ull * 1000000ull;
  p.created_us -= r.Below(86400) * 1000000ull;
  p.updated_us = p.created_us + r.Below((kCorpusStartUs - p.created_us) / 1000000) * 1000000ull;
  const int tags = static_cast<int>(r.Between(1, 4));
  for (int i = 0; i < tags; ++i) p.tags.push_back(r.Pick(kTags));
  p.images = static_cast<int>(r.Between(1, 3));
  p.variants = static_cast<int>(r.Between(1, 3));
  p.variant_seed = r.Bits();
  p.image_key = Hex(r, 8);
  p.weight_g = r.Between(40, 9000);
  for (uint64_t& d : p.dims) d = r.Between(3, 120);
  return p;
}

std::string ProductUrl(const Product& p, std::string_view what) {
  return "https://cdn.shop.example.com/img/p/" + std::to_string(p.id) + "/" + std::string(what) +
         "-" + p.image_key + ".jpg";
}

void ProductSummaryJson(JsonWriter& w, const Product& p) {
  w.BeginObject().Field("id", p.id).Field("name", p.name);
  Money(w, "price", p.price_cents);
  w.NumberField("rating", Decimal(p.rating_tenths, 1))
      .Field("review_count", p.reviews)
      .Field("thumbnail", ProductUrl(p, "thumb"))
      .Field("in_stock", p.stock > 0)
      .EndObject();
}

std::string ProductJson(const Product& p) {
  JsonWriter w;
  w.BeginObject().Field("id", p.id).Field("sku", p.sku).Field("name", p.name);
  w.Field("slug", p.slug).Field("description", p.description);
  Money(w, "price", p.price_cents);
  if (p.compare_at_cents) {
    Money(w, "compare_at_price", p.compare_at_cents);
  } else {
    w.Key("compare_at_price").Null();
  }
  w.Field("stock", p.stock).NumberField("rating", Decimal(p.rating_tenths, 1));
  w.Field("review_count", p.reviews);
  w.Key("tags").BeginArray();
  for (std::string_view t : p.tags) w.String(t);
  w.EndArray();
  w.Key("category").BeginObject().Field("id", static_cast<uint64_t>(p.category - kCategories + 1));
  w.Field("name", p.category->name).Field("path", p.category->path).EndObject();
  w.Key("images").BeginArray();
  for (int i = 0; i < p.images; ++i) {
    w.BeginObject().Field("url", ProductUrl(p, std::to_string(i + 1))).Field("width", 1200);
    w.Field("height", 1200).Field("alt", p.name).EndObject();
  }
  w.EndArray();
  w.Key("variants").BeginArray();
  Rng vr(p.variant_seed);
  for (int i = 0; i < p.variants; ++i) {
    const std::string_view color = vr.Pick(kColors);
    const std::string_view size = vr.Pick(kSizes);
    w.BeginObject().Field("sku", p.sku + "-" + Lower(color).substr(0, 3) + "-" + std::string(size));
    w.Field("color", color).Field("size", size).Field("stock", vr.Below(p.stock + 1));
    w.EndObject();
  }
  w.EndArray();
  w.Key("attributes").BeginObject().Field("weight_g", p.weight_g);
  w.Key("dimensions_cm").BeginArray().Int(p.dims[0]).Int(p.dims[1]).Int(p.dims[2]).EndArray();
  w.Field("warranty_months", 24).EndObject();
  w.Key("seller").BeginObject().Field("id", p.seller_id);
  w.Field("name", std::string(kLastNames[p.seller_id % std::size(kLastNames)]) + " " +
                      std::string(kNouns[p.seller_id % std::size(kNouns)]) + " Co.");
  w.EndObject();
  w.Field("created_at", Rfc3339(p.created_us, false));
  w.Field("updated_at", Rfc3339(p.updated_us, false));
  w.EndObject();
  return w.Take();
}

struct User {
  uint64_t id;
  std::string_view first, last, city, country, street, language;
  std::string email, token, cookie, public_ip, postal_code;
  uint64_t house_number;
  const Client* client;
  uint64_t created_us;
  int addresses;
  uint64_t loyalty_points;
  std::string_view tier;
  bool newsletter;
};

User MakeUser(uint64_t seed, uint64_t id) {
  Rng r(Mix(seed, kTagUser, id));
  User u;
  u.id = id;
  u.first = r.Pick(kFirstNames);
  u.last = r.Pick(kLastNames);
  const uint64_t city = r.Below(std::size(kCities));
  u.city = kCities[city];
  u.country = kCountries[city];
  u.street = r.Pick(kStreets);
  u.house_number = r.Between(1, 180);
  u.postal_code = std::to_string(r.Between(10000, 99999));
  u.language = r.Pick(kLanguages);
  u.email = Lower(u.first) + "." + Lower(u.last) + std::to_string(r.Below(100));
  u.email += r.PerMille(500) ? "@example.com" : "@mail.example.org";
  // Redacted credentials: the recorder stores a keyed hash, equal for equal values.
  u.token = "hmac:" + Hex(r, 64);
  u.cookie = "hmac:" + Hex(r, 64);
  uint64_t pick = r.Below(100);
  size_t c = 0;
  while (pick >= static_cast<uint64_t>(kClientWeights[c])) pick -= kClientWeights[c++];
  u.client = &kClients[c];
  const uint64_t ip = r.Bits();
  u.public_ip = std::to_string(31 + (ip & 0xff) % 187) + "." + std::to_string((ip >> 8) & 0xff) +
                "." + std::to_string((ip >> 16) & 0xff) + "." +
                std::to_string(1 + ((ip >> 24) & 0xff) % 254);
  u.created_us = kCorpusStartUs - r.Between(1, 2000) * 86400ull * 1000000ull;
  u.addresses = static_cast<int>(r.Between(1, 2));
  u.loyalty_points = r.Skewed(20000);
  u.tier = r.Pick(kLoyaltyTiers);
  u.newsletter = r.PerMille(400);
  return u;
}

void AddressJson(JsonWriter& w, const User& u, std::string_view key) {
  w.Key(key).BeginObject().Field("name", std::string(u.first) + " " + std::string(u.last));
  w.Field("street", std::string(u.street) + " " + std::to_string(u.house_number));
  w.Field("city", u.city).Field("postal_code", u.postal_code).Field("country", u.country);
  w.EndObject();
}

std::string UserJson(const User& u, uint64_t now_us, Rng& rng) {
  JsonWriter w;
  w.BeginObject().Field("id", u.id).Field("email", u.email).Field("first_name", u.first);
  w.Field("last_name", u.last).Field("locale", u.language.substr(0, 5));
  w.Key("addresses").BeginArray();
  for (int i = 0; i < u.addresses; ++i) {
    w.BeginObject().Field("id", u.id * 10 + i).Field("type", i == 0 ? "shipping" : "billing");
    w.Field("street", std::string(u.street) + " " + std::to_string(u.house_number + i * 7));
    w.Field("city", u.city).Field("postal_code", u.postal_code).Field("country", u.country);
    w.Field("default", i == 0).EndObject();
  }
  w.EndArray();
  w.Key("preferences").BeginObject().Field("newsletter", u.newsletter);
  w.Field("currency", "EUR").Field("theme", u.id % 3 == 0 ? "dark" : "system").EndObject();
  w.Key("loyalty").BeginObject().Field("tier", u.tier).Field("points", u.loyalty_points);
  w.EndObject();
  w.Field("created_at", Rfc3339(u.created_us, false));
  w.Field("last_login_at", Rfc3339(now_us - rng.Below(3 * 86400) * 1000000ull, false));
  w.EndObject();
  return w.Take();
}

struct OrderItem {
  Product product;
  uint64_t quantity;
};

// Writes an order; `items` decide the totals. Used for stored orders and new ones.
std::string OrderJson(const std::string& id, uint64_t number, std::string_view state, const User& u,
                      const std::vector<OrderItem>& items, uint64_t created_us, uint64_t updated_us,
                      Rng& r) {
  JsonWriter w;
  w.BeginObject().Field("id", id).Field("number", "SO-2026-" + std::to_string(number));
  w.Field("status", state);
  w.Key("customer").BeginObject().Field("id", u.id).Field("email", u.email);
  w.Field("name", std::string(u.first) + " " + std::string(u.last)).EndObject();
  w.Key("items").BeginArray();
  uint64_t subtotal = 0;
  for (const OrderItem& it : items) {
    w.BeginObject().Field("product_id", it.product.id).Field("sku", it.product.sku);
    w.Field("name", it.product.name).Field("quantity", it.quantity);
    w.Field("unit_price", Decimal(it.product.price_cents, 2));
    w.Field("subtotal", Decimal(it.product.price_cents * it.quantity, 2));
    w.Field("thumbnail", ProductUrl(it.product, "thumb")).EndObject();
    subtotal += it.product.price_cents * it.quantity;
  }
  w.EndArray();
  const uint64_t shipping = subtotal >= 5000 ? 0 : 495;
  const uint64_t tax = (subtotal + shipping) * 19 / 119;  // VAT included in prices
  w.Key("totals").BeginObject().Field("subtotal", Decimal(subtotal, 2));
  w.Field("shipping", Decimal(shipping, 2)).Field("tax_included", Decimal(tax, 2));
  w.Field("total", Decimal(subtotal + shipping, 2)).Field("currency", "EUR").EndObject();
  const std::string_view carrier = r.Pick(kCarriers);
  w.Key("shipping").BeginObject().Field("method", r.PerMille(800) ? "standard" : "express");
  w.Field("carrier", carrier);
  if (state == "shipped" || state == "delivered") {
    w.Field("tracking_number", std::string(carrier.substr(0, 2)) + Alnum(r, 12));
  } else {
    w.Key("tracking_number").Null();
  }
  AddressJson(w, u, "address");
  w.EndObject();
  const std::string_view brand = r.Pick(kCardBrands);
  w.Key("payment").BeginObject().Field("method", brand == "sepa" ? "sepa_debit" : "card");
  w.Field("brand", brand).Field("last4", std::to_string(r.Between(1000, 9999)));
  w.Field("status", state == "pending" ? "authorized" : "captured").EndObject();
  w.Field("created_at", Rfc3339(created_us, true));
  w.Field("updated_at", Rfc3339(updated_us, true));
  w.EndObject();
  return w.Take();
}

std::string ErrorJson(std::string_view code, std::string_view message,
                      const std::string& request_id) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject().Field("code", code).Field("message", message);
  w.EndObject().Field("request_id", request_id).EndObject();
  return w.Take();
}

// ---- requests ---------------------------------------------------------------------------

enum class Endpoint { kList, kProduct, kSearch, kOrder, kUser, kCart, kCreateOrder };
// Share of each endpoint in the traffic, in percent (same order as Endpoint).
constexpr int kEndpointWeights[] = {23, 30, 16, 10, 8, 6, 7};

void AddHeader(google::protobuf::RepeatedPtrField<doppel::v1::Header>* headers,
               std::string_view name, std::string_view value) {
  doppel::v1::Header* h = headers->Add();
  h->set_name(std::string(name));
  h->set_value(std::string(value));
}

std::string_view Reason(uint32_t status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 422:
      return "Unprocessable Entity";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "";
  }
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

struct CorpusGenerator::State {
  explicit State(uint64_t s) : seed(s), rng(Mix(s, 0x636f72707573ull)) {}

  void Next(Envelope* env);

  uint64_t seed;
  Rng rng;
  uint64_t count = 0;
  uint64_t now_us = kCorpusStartUs;
  uint64_t next_order_number = 482113;
};

void CorpusGenerator::State::Next(Envelope* env) {
  env->Clear();
  Rng& r = rng;

  // Arrivals: about 1,500 requests/s with bursts and short lulls.
  uint64_t gap;
  const uint64_t shape = r.Below(1000);
  if (shape < 60) {
    gap = r.Below(25);  // burst: a page load fans out into several calls
  } else if (shape < 985) {
    gap = r.Between(1, 1300);
  } else {
    gap = r.Between(2000, 30000);  // lull
  }
  now_us += gap + 1;  // strictly increasing
  env->set_arrival_us(now_us);
  env->set_seq(static_cast<uint32_t>(count));
  env->set_scheme("http");

  const User user = MakeUser(seed, kFirstUserId + r.Skewed(kUsers));
  const Client& client = *user.client;

  // The proxy sits behind a small pool of load balancers with pooled connections.
  const uint64_t lb = r.Below(4);
  const uint64_t slot = r.Below(24);
  const uint64_t conn = Mix(seed, kTagConnection, (lb << 40) ^ (slot << 32) ^ (now_us / 20000000));
  env->set_client_addr("10.20." + std::to_string(lb + 1) + "." + std::to_string(11 + lb * 3) + ":" +
                       std::to_string(32768 + conn % 28000));

  uint64_t pick = r.Below(100);
  size_t e = 0;
  while (pick >= static_cast<uint64_t>(kEndpointWeights[e])) pick -= kEndpointWeights[e++];
  const Endpoint endpoint = static_cast<Endpoint>(e);

  const std::string request_id = Uuid(r);
  HttpRequest* req = env->mutable_request();
  HttpResponse* resp = env->mutable_response();
  req->set_version(11);
  resp->set_version(11);
  req->set_method(endpoint == Endpoint::kCreateOrder ? "POST" : "GET");

  // ---- target, request body, response body ----
  uint32_t status = 200;
  std::string body;
  std::string request_body;
  std::string location;
  bool cacheable = false;
  uint64_t latency_us = 0;
  switch (endpoint) {
    case Endpoint::kList: {
      const Category& cat = kCategories[r.Skewed(kCategoryCount)];
      const uint64_t page = 1 + r.Skewed(25);
      const uint64_t per_page = r.PerMille(600) ? 10 : 6;
      const std::string_view sort = r.Pick(kSorts);
      std::string query = "category=" + std::string(cat.slug) + "&page=" + std::to_string(page) +
                          "&per_page=" + std::to_string(per_page);
      if (sort != "popular" || r.PerMille(300)) query += "&sort=" + std::string(sort);
      if (r.PerMille(150)) query += "&in_stock=true";
      req->set_target("/api/v1/products?" + query);
      const uint64_t cat_index = static_cast<uint64_t>(&cat - kCategories);
      const uint64_t per_category = kProducts / kCategoryCount;
      const uint64_t stride = 1 + Mix(seed, kTagList, Fnv1a(sort)) % 97;
      JsonWriter w;
      w.BeginObject().Key("data").BeginArray();
      for (uint64_t k = 0; k < per_page; ++k) {
        const uint64_t pos = ((page - 1) * per_page + k) * stride % per_category;
        ProductSummaryJson(w,
                           MakeProduct(seed, kFirstProductId + cat_index + pos * kCategoryCount));
      }
      w.EndArray();
      const uint64_t total = per_category - Mix(seed, cat_index) % 400;
      w.Key("meta").BeginObject().Field("page", page).Field("per_page", per_page);
      w.Field("total", total).Field("total_pages", (total + per_page - 1) / per_page).EndObject();
      w.Key("links").BeginObject().Field("self", req->target());
      w.Field("next", "/api/v1/products?category=" + std::string(cat.slug) + "&page=" +
                          std::to_string(page + 1) + "&per_page=" + std::to_string(per_page));
      if (page > 1) {
        w.Field("prev", "/api/v1/products?category=" + std::string(cat.slug) + "&page=" +
                            std::to_string(page - 1) + "&per_page=" + std::to_string(per_page));
      } else {
        w.Key("prev").Null();
      }
      w.EndObject().EndObject();
      body = w.Take();
      cacheable = true;
      latency_us = r.Between(6000, 22000);
      break;
    }
    case Endpoint::kProduct: {
      if (r.PerMille(40)) {  // stale links and scrapers
        const uint64_t id = r.Between(90000, 99999);
        req->set_target("/api/v1/products/" + std::to_string(id));
        status = 404;
        body =
            ErrorJson("not_found", "product " + std::to_string(id) + " does not exist", request_id);
        latency_us = r.Between(1200, 3000);
        break;
      }
      const Product p = MakeProduct(seed, kFirstProductId + r.Skewed(kProducts));
      std::string target = "/api/v1/products/" + std::to_string(p.id);
      if (r.PerMille(120)) target += "?include=variants,attributes";
      req->set_target(target);
      body = ProductJson(p);
      cacheable = true;
      latency_us = r.Between(2500, 9000);
      break;
    }
    case Endpoint::kSearch: {
      const uint64_t qseed = r.Skewed(6000);  // popular queries repeat
      Rng qr(Mix(seed, kTagSearch, qseed));
      std::string words = Lower(qr.Pick(kNouns));
      std::string q_param = words;
      if (qr.PerMille(550)) {
        const std::string first =
            Lower(qr.PerMille(500) ? qr.Pick(kMaterials) : qr.Pick(kAdjectives));
        words = first + " " + words;
        q_param = first + "+" + q_param;
      }
      for (char& c : q_param) {
        if (c == ' ') c = '+';
      }
      const uint64_t limit = qr.PerMille(700) ? 10 : 20;
      std::string target = "/api/v1/search?q=" + q_param + "&limit=" + std::to_string(limit);
      if (qr.PerMille(250)) target += "&category=" + std::string(qr.Pick(std::span(kTags)));
      req->set_target(target);
      const uint64_t hits = qr.Between(0, 7);
      JsonWriter w;
      w.BeginObject().Field("query", words).Field("total", hits == 0 ? 0 : hits + qr.Skewed(400));
      w.Field("took_ms", r.Between(3, 48)).Key("results").BeginArray();
      uint64_t score = 9999;
      for (uint64_t i = 0; i < hits; ++i) {
        const Product p = MakeProduct(seed, kFirstProductId + qr.Below(kProducts));
        score -= qr.Between(50, 1300);
        w.BeginObject().Field("id", p.id).Field("name", p.name);
        Money(w, "price", p.price_cents);
        w.NumberField("score", Decimal(score, 4));
        w.Field("highlight", "<em>" + words + "</em> " + p.description.substr(0, 60));
        w.Field("thumbnail", ProductUrl(p, "thumb")).EndObject();
      }
      w.EndArray().Key("facets").BeginObject().Key("category").BeginArray();
      const uint64_t facets = hits == 0 ? 0 : qr.Between(1, 4);
      for (uint64_t i = 0; i < facets; ++i) {
        w.BeginObject().Field("value", kCategories[qr.Below(kCategoryCount)].slug);
        w.Field("count", qr.Between(1, 90)).EndObject();
      }
      w.EndArray().EndObject().EndObject();
      body = w.Take();
      cacheable = true;
      latency_us = r.Between(12000, 55000);
      break;
    }
    case Endpoint::kOrder: {
      if (r.PerMille(30)) {
        const std::string id = Uuid(r);
        req->set_target("/api/v1/orders/" + id);
        status = 404;
        body = ErrorJson("not_found", "order " + id + " not found", request_id);
        latency_us = r.Between(2000, 5000);
        break;
      }
      const uint64_t k = r.Skewed(kOrders);
      const std::string id = Uuid(Mix(seed, kTagOrderId, k), Mix(seed, kTagOrderId, ~k));
      req->set_target("/api/v1/orders/" + id);
      Rng orr(Mix(seed, kTagOrder, k));
      const User owner = MakeUser(seed, kFirstUserId + orr.Below(kUsers));
      std::vector<OrderItem> items;
      const uint64_t n = orr.Between(1, 4);
      for (uint64_t i = 0; i < n; ++i) {
        items.push_back({MakeProduct(seed, kFirstProductId + orr.Skewed(kProducts)),
                         orr.PerMille(800) ? 1 : orr.Between(2, 4)});
      }
      uint64_t created = kCorpusStartUs - orr.Between(3600, 45 * 86400) * 1000000ull;
      created -= orr.Below(1000000);
      const uint64_t updated = created + orr.Between(60, 2 * 86400) * 1000000ull;
      body = OrderJson(id, 400000 + k, orr.Pick(kOrderStates), owner, items, created, updated, orr);
      latency_us = r.Between(4000, 14000);
      break;
    }
    case Endpoint::kUser: {
      req->set_target("/api/v1/users/" + std::to_string(user.id));
      body = UserJson(user, now_us, r);
      latency_us = r.Between(3000, 8000);
      break;
    }
    case Endpoint::kCart: {
      req->set_target("/api/v1/cart");
      Rng cr(Mix(seed, kTagCart, user.id ^ (now_us / 600000000)));
      JsonWriter w;
      w.BeginObject().Field("id", Uuid(Mix(seed, kTagCart, user.id), Mix(seed, user.id)));
      w.Field("user_id", user.id).Key("items").BeginArray();
      uint64_t subtotal = 0;
      const uint64_t n = cr.Between(0, 5);
      for (uint64_t i = 0; i < n; ++i) {
        const Product p = MakeProduct(seed, kFirstProductId + cr.Skewed(kProducts));
        const uint64_t qty = cr.PerMille(850) ? 1 : 2;
        w.BeginObject().Field("product_id", p.id).Field("name", p.name).Field("quantity", qty);
        Money(w, "unit_price", p.price_cents);
        w.Field("thumbnail", ProductUrl(p, "thumb")).Field("in_stock", p.stock > 0).EndObject();
        subtotal += qty * p.price_cents;
      }
      w.EndArray();
      Money(w, "subtotal", subtotal);
      w.Field("item_count", n)
          .Field("updated_at", Rfc3339(now_us - cr.Below(600) * 1000000ull, true));
      w.EndObject();
      body = w.Take();
      latency_us = r.Between(2500, 7000);
      break;
    }
    case Endpoint::kCreateOrder: {
      req->set_target("/api/v1/orders");
      std::vector<OrderItem> items;
      const uint64_t n = r.Between(1, 4);
      for (uint64_t i = 0; i < n; ++i) {
        items.push_back({MakeProduct(seed, kFirstProductId + r.Skewed(kProducts)),
                         r.PerMille(800) ? 1 : r.Between(2, 3)});
      }
      const bool invalid = r.PerMille(50);
      JsonWriter w;
      w.BeginObject().Key("items").BeginArray();
      for (size_t i = 0; i < items.size(); ++i) {
        const uint64_t qty = invalid && i == 0 ? 25 : items[i].quantity;
        w.BeginObject().Field("product_id", items[i].product.id).Field("quantity", qty);
        w.EndObject();
      }
      w.EndArray();
      AddressJson(w, user, "shipping_address");
      w.Key("payment").BeginObject().Field("method", "card").Field("token", "tok_" + Alnum(r, 24));
      w.EndObject();
      if (r.PerMille(150)) {
        w.Field("coupon", "WINTER" + std::to_string(r.Between(10, 30)));
      } else {
        w.Key("coupon").Null();
      }
      w.Field("client_order_ref",
              std::string(client.kind == ClientKind::kBrowser ? "web-" : "app-") + Hex(r, 12));
      w.EndObject();
      request_body = w.Take();
      if (invalid) {
        status = 422;
        JsonWriter ew;
        ew.BeginObject().Key("error").BeginObject().Field("code", "validation_failed");
        ew.Field("message", "the order could not be validated").Key("fields").BeginArray();
        ew.BeginObject().Field("field", "items[0].quantity");
        ew.Field("message", "must be between 1 and 10").EndObject();
        ew.EndArray().EndObject().Field("request_id", request_id).EndObject();
        body = ew.Take();
        latency_us = r.Between(5000, 15000);
      } else {
        status = 201;
        const std::string id = Uuid(r);
        location = "/api/v1/orders/" + id;
        body = OrderJson(id, next_order_number++, "pending", user, items, now_us, now_us, r);
        latency_us = r.Between(40000, 140000);
      }
      break;
    }
  }

  // Failures that can hit any endpoint.
  if (r.PerMille(4)) {
    status = 401;
    body = ErrorJson("unauthorized", "access token expired or revoked", request_id);
    latency_us = r.Between(800, 2000);
    location.clear();
  } else if (r.PerMille(6)) {
    status = 500;
    body = ErrorJson("internal", "upstream inventory-service: deadline exceeded after 2000ms",
                     request_id);
    latency_us = r.Between(200000, 2100000);
    location.clear();
  } else if (r.PerMille(2)) {
    status = 503;
    body = ErrorJson("unavailable", "the service is shedding load, retry later", request_id);
    latency_us = r.Between(300, 1500);
    location.clear();
  }
  if (r.PerMille(15)) latency_us += r.Skewed(400000);  // GC pauses, cold caches

  // ---- request headers, in the order clients send them ----
  auto* rh = req->mutable_headers();
  AddHeader(rh, "Host", "api.shop.example.com");
  AddHeader(rh, "User-Agent", client.user_agent);
  AddHeader(rh, "Accept", client.accept);
  if (!client.accept_encoding.empty()) AddHeader(rh, "Accept-Encoding", client.accept_encoding);
  if (client.kind == ClientKind::kBrowser) AddHeader(rh, "Accept-Language", user.language);
  if (!request_body.empty()) {
    AddHeader(rh, "Content-Type", "application/json");
    AddHeader(rh, "Content-Length", std::to_string(request_body.size()));
    AddHeader(rh, "Idempotency-Key", Uuid(r));
  }
  AddHeader(rh, "Authorization", user.token);
  if (client.kind == ClientKind::kBrowser) {
    AddHeader(rh, "Origin", "https://shop.example.com");
    AddHeader(rh, "Referer",
              "https://shop.example.com/" +
                  std::string(kCategories[user.id % kCategoryCount].path.substr(1)));
    AddHeader(rh, "Cookie", user.cookie);
  } else if (client.kind == ClientKind::kApp) {
    AddHeader(rh, "X-Client-Version", client.user_agent.substr(8, 6));
    AddHeader(rh, "X-Device-Id", Uuid(Mix(seed, user.id), Mix(seed, ~user.id)));
  }
  AddHeader(rh, "X-Forwarded-For", user.public_ip);
  AddHeader(rh, "X-Forwarded-Proto", "https");
  AddHeader(rh, "X-Request-Id", request_id);
  if (!r.PerMille(250)) {
    const std::string trace_id = Hex(r, 32);
    AddHeader(rh, "traceparent", "00-" + trace_id + "-" + Hex(r, 16) + "-01");
  }
  req->set_body(request_body);
  req->set_body_size(request_body.size());

  // ---- response ----
  resp->set_status(status);
  resp->set_reason(std::string(Reason(status)));
  resp->set_latency_us(latency_us);
  auto* sh = resp->mutable_headers();
  AddHeader(sh, "Server", "nginx/1.22.1");
  AddHeader(sh, "Date", HttpDate(now_us + latency_us));
  AddHeader(sh, "Content-Type", "application/json; charset=utf-8");
  AddHeader(sh, "Content-Length", std::to_string(body.size()));
  if (status == 200 && cacheable) {
    AddHeader(sh, "Cache-Control",
              endpoint == Endpoint::kSearch ? "public, max-age=30" : "public, max-age=60");
    char etag[24];
    std::snprintf(etag, sizeof etag, "W/\"%016llx\"", static_cast<unsigned long long>(Fnv1a(body)));
    AddHeader(sh, "ETag", etag);
  } else {
    AddHeader(sh, "Cache-Control", "private, no-store");
  }
  AddHeader(sh, "Vary", "Accept-Encoding, Authorization");
  if (!location.empty()) AddHeader(sh, "Location", location);
  if (status == 401) {
    AddHeader(sh, "WWW-Authenticate", "Bearer realm=\"api\", error=\"invalid_token\"");
  }
  if (status == 503) AddHeader(sh, "Retry-After", std::to_string(r.Between(1, 30)));
  AddHeader(sh, "X-Request-Id", request_id);
  if (client.kind != ClientKind::kBrowser) {
    AddHeader(sh, "X-RateLimit-Limit", "1200");
    AddHeader(sh, "X-RateLimit-Remaining", std::to_string(1200 - r.Skewed(1200)));
  }
  AddHeader(sh, "Server-Timing", "app;dur=" + Decimal(latency_us / 100, 1));
  AddHeader(sh, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
  AddHeader(sh, "X-Content-Type-Options", "nosniff");
  resp->set_body_size(body.size());
  resp->set_body(std::move(body));
  ++count;
}

CorpusGenerator::CorpusGenerator(uint64_t seed) : state_(std::make_unique<State>(seed)) {}
CorpusGenerator::~CorpusGenerator() = default;

void CorpusGenerator::Next(Envelope* envelope) { state_->Next(envelope); }

uint64_t CorpusGenerator::count() const { return state_->count; }

std::vector<Envelope> GenerateCorpus(size_t n, uint64_t seed) {
  std::vector<Envelope> out(n);
  CorpusGenerator gen(seed);
  for (Envelope& e : out) gen.Next(&e);
  return out;
}

}  // namespace doppel::bench
