// Integration test of doppel-echo: starts the real binary on 127.0.0.1 port 0 and talks
// HTTP to it. Every network operation has a 5 s deadline; every process started here is
// terminated (SIGTERM, then SIGKILL) when its handle goes out of scope, also when a test
// fails half-way, and dies with the test process (PR_SET_PDEATHSIG).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "net/codings.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Response = http::response<http::string_body>;
using Clock = std::chrono::steady_clock;

constexpr auto kTimeout = std::chrono::seconds(5);

std::string EchoBinary() { return std::string(DOPPEL_BINARY_DIR) + "/tools/echo/doppel-echo"; }

// A doppel-echo child process.
class EchoProcess {
 public:
  // Starts doppel-echo with `args` (after --listen 127.0.0.1:0) and waits for its
  // "listening on" line. Returns nullptr and sets *error on failure.
  static std::unique_ptr<EchoProcess> Start(std::vector<std::string> args, std::string* error) {
    args.insert(args.begin(), {EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "2"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      *error = "pipe failed";
      return nullptr;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(fds[1], STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
      close(fds[0]);
      *error = "fork failed";
      return nullptr;
    }
    auto p = std::unique_ptr<EchoProcess>(new EchoProcess(pid, fds[0]));
    std::string line = p->ReadLine(std::chrono::seconds(10));
    std::smatch m;
    static const std::regex kListening(R"(listening on 127\.0\.0\.1:(\d+))");
    if (!std::regex_match(line, m, kListening)) {
      *error = "doppel-echo did not report its port; first line: '" + line + "'";
      return nullptr;
    }
    p->port_ = static_cast<uint16_t>(std::stoi(m[1]));
    return p;
  }

  ~EchoProcess() {
    Terminate();
    close(stdout_fd_);
  }

  uint16_t port() const { return port_; }

  // Sends SIGTERM and waits up to 5 s (then SIGKILL). Returns the exit code, or -1 when
  // it had to be killed or died from a signal.
  int Terminate() {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, SIGTERM);
    auto deadline = Clock::now() + kTimeout;
    int status = 0;
    for (;;) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (Clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    exit_code_ = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

 private:
  EchoProcess(pid_t pid, int fd) : pid_(pid), stdout_fd_(fd) {}

  std::string ReadLine(std::chrono::milliseconds timeout) {
    std::string line;
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd pfd{stdout_fd_, POLLIN, 0};
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (poll(&pfd, 1, std::max(left, 1)) <= 0) continue;
      char c;
      if (read(stdout_fd_, &c, 1) != 1) break;
      if (c == '\n') break;
      line.push_back(c);
    }
    return line;
  }

  pid_t pid_;
  int stdout_fd_;
  uint16_t port_ = 0;
  int exit_code_ = -1;
};

// Runs a doppel-echo with the given flags and waits for it to exit on its own (for usage
// errors). Returns the exit code, or -1 if it did not exit within 5 s.
int RunToExit(std::vector<std::string> args) {
  args.insert(args.begin(), EchoBinary());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  auto deadline = Clock::now() + kTimeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A minimal HTTP/1.1 client over one connection. Each call runs its own io_context until
// the operation completes; tcp_stream's deadline bounds every operation by kTimeout.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(ioc_) {
    stream_.expires_after(kTimeout);
    beast::error_code result = asio::error::would_block;
    stream_.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                          [&](beast::error_code ec) { result = ec; });
    Run();
    connect_error_ = result;
  }

  beast::error_code connect_error() const { return connect_error_; }

  // Sends `req` and reads the response. On a transport error returns nullopt and sets
  // *error (when given).
  std::optional<Response> Send(http::request<http::string_body> req,
                               beast::error_code* error = nullptr) {
    beast::error_code ec;
    bool head = req.method() == http::verb::head;
    req.prepare_payload();
    stream_.expires_after(kTimeout);
    http::async_write(stream_, req, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    if (!ec) {
      http::response_parser<http::string_body> parser;
      parser.body_limit(64u << 20);
      parser.skip(head);
      stream_.expires_after(kTimeout);
      http::async_read(stream_, buffer_, parser, [&](beast::error_code e, size_t) { ec = e; });
      Run();
      if (!ec) return parser.release();
    }
    if (error) *error = ec;
    return std::nullopt;
  }

  std::optional<Response> Get(std::string target,
                              std::vector<std::pair<std::string, std::string>> headers = {}) {
    return Send(MakeRequest(http::verb::get, std::move(target), headers));
  }

  static http::request<http::string_body> MakeRequest(
      http::verb method, std::string target,
      const std::vector<std::pair<std::string, std::string>>& headers = {}, std::string body = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = std::move(body);
    return req;
  }

  // Writes raw bytes and reads until the server closes the connection. Returns what was
  // read; *closed tells whether the server closed it (as opposed to a timeout).
  std::string SendRaw(const std::string& bytes, bool* closed) {
    beast::error_code ec;
    stream_.expires_after(kTimeout);
    asio::async_write(stream_, asio::buffer(bytes), [&](beast::error_code e, size_t) { ec = e; });
    Run();
    std::string out;
    *closed = false;
    if (ec) return out;
    stream_.expires_after(kTimeout);
    char chunk[4096];
    while (!ec) {
      size_t n = 0;
      stream_.async_read_some(asio::buffer(chunk), [&](beast::error_code e, size_t got) {
        ec = e;
        n = got;
      });
      Run();
      out.append(chunk, n);
    }
    *closed = ec == asio::error::eof || ec == asio::error::connection_reset;
    return out;
  }

 private:
  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  beast::error_code connect_error_;
};

std::string Gunzip(const std::string& in) {
  doppel::Result<std::string> out = doppel::net::DecodeContent(in, "gzip", 64 << 20);
  return out.ok() ? out.value() : "<" + out.status().ToString() + ">";
}

json::value ParseJson(const std::string& s) {
  json::error_code ec;
  json::value v = json::parse(s, ec);
  EXPECT_FALSE(ec) << "not JSON: " << s;
  return v;
}

// "Name: value" for each header field, in order.
std::vector<std::string> HeaderLines(const Response& r) {
  std::vector<std::string> lines;
  for (const auto& f : r.base()) {
    lines.push_back(std::string(f.name_string()) + ": " + std::string(f.value()));
  }
  return lines;
}

int64_t Cents(const json::value& v) { return std::llround(json::value_to<double>(v) * 100); }

// The fixture starts one doppel-echo (v1, no noise) for tests that need just that.
class EchoTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(echo_ = Launch({})); }

  static std::unique_ptr<EchoProcess> LaunchOrNull(std::vector<std::string> args) {
    std::string error;
    auto p = EchoProcess::Start(std::move(args), &error);
    EXPECT_TRUE(p) << error;
    return p;
  }

  // Fatal-failure version for use with ASSERT_NO_FATAL_FAILURE.
  static std::unique_ptr<EchoProcess> Launch(std::vector<std::string> args) {
    auto p = LaunchOrNull(std::move(args));
    if (!p) ADD_FAILURE() << "could not start doppel-echo";
    return p;
  }

  // GETs `target` on a fresh connection to `port`; fails the test on transport errors.
  static Response Fetch(uint16_t port, const std::string& target,
                        std::vector<std::pair<std::string, std::string>> headers = {}) {
    Client c(port);
    EXPECT_FALSE(c.connect_error()) << c.connect_error().message();
    auto r = c.Get(target, std::move(headers));
    EXPECT_TRUE(r.has_value()) << "no response for " << target;
    return r ? std::move(*r) : Response{};
  }

  Response Fetch(const std::string& target,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
    return Fetch(echo_->port(), target, std::move(headers));
  }

  // Writes `bytes` on a fresh connection and returns all the server sends back (Client::SendRaw).
  std::string SendRaw(const std::string& bytes, bool* closed) {
    return Client(echo_->port()).SendRaw(bytes, closed);
  }

  std::unique_ptr<EchoProcess> echo_;
};

TEST_F(EchoTest, ProductDetailHasTheDocumentedShape) {
  ASSERT_TRUE(echo_);
  Response r = Fetch("/api/v1/products/7");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r[http::field::content_type], "application/json");
  EXPECT_EQ(r[http::field::content_length], std::to_string(r.body().size()));
  json::object p = ParseJson(r.body()).as_object();
  EXPECT_EQ(p.at("id").as_int64(), 7);
  EXPECT_EQ(p.at("sku").as_string(), "SKU-00007");
  EXPECT_TRUE(p.at("name").is_string());
  EXPECT_TRUE(p.at("price").is_number());
  EXPECT_EQ(p.at("currency").as_string(), "EUR");
  EXPECT_TRUE(p.at("in_stock").is_bool());
  ASSERT_TRUE(p.at("tags").is_array());
  EXPECT_EQ(p.at("tags").as_array().size(), 3u);
  EXPECT_TRUE(p.at("dimensions").as_object().at("weight_kg").is_number());
  EXPECT_TRUE(p.at("supplier").as_object().at("name").is_string());
  EXPECT_TRUE(std::regex_match(std::string(p.at("created_at").as_string()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  EXPECT_TRUE(r[http::field::date].empty()) << "no Date header without --noise";
  EXPECT_TRUE(r["X-Request-Id"].empty());
}

TEST_F(EchoTest, ProductListPagesAndFilters) {
  ASSERT_TRUE(echo_);
  Response r = Fetch("/api/v1/products?limit=5&offset=10");
  ASSERT_EQ(r.result_int(), 200);
  json::object page = ParseJson(r.body()).as_object();
  ASSERT_EQ(page.at("items").as_array().size(), 5u);
  EXPECT_EQ(page.at("items").as_array()[0].as_object().at("id").as_int64(), 11);
  EXPECT_EQ(page.at("total").as_int64(), 1000);
  EXPECT_EQ(page.at("next_offset").as_int64(), 15);

  Response last = Fetch("/api/v1/products?limit=100&offset=990");
  json::object tail = ParseJson(last.body()).as_object();
  EXPECT_EQ(tail.at("items").as_array().size(), 10u);
  EXPECT_TRUE(tail.at("next_offset").is_null());

  json::object defaults = ParseJson(Fetch("/api/v1/products").body()).as_object();
  EXPECT_EQ(defaults.at("items").as_array().size(), 20u);

  json::object toys =
      ParseJson(Fetch("/api/v1/products?category=toys&limit=100").body()).as_object();
  ASSERT_FALSE(toys.at("items").as_array().empty());
  for (const auto& item : toys.at("items").as_array()) {
    EXPECT_EQ(item.as_object().at("category").as_string(), "toys");
  }
  EXPECT_LT(toys.at("total").as_int64(), 1000);

  EXPECT_EQ(Fetch("/api/v1/products?limit=0").result_int(), 400);
  EXPECT_EQ(Fetch("/api/v1/products?limit=abc").result_int(), 400);
  EXPECT_EQ(Fetch("/api/v1/products?offset=%zz").result_int(), 400);
}

TEST_F(EchoTest, UserAndOrderHaveNestedData) {
  ASSERT_TRUE(echo_);
  Response u = Fetch("/api/v1/users/3");
  ASSERT_EQ(u.result_int(), 200);
  json::object user = ParseJson(u.body()).as_object();
  EXPECT_EQ(user.at("id").as_int64(), 3);
  EXPECT_NE(std::string(user.at("email").as_string()).find('@'), std::string::npos);
  EXPECT_TRUE(user.at("name").as_object().at("first").is_string());
  EXPECT_TRUE(user.at("address").as_object().at("city").is_string());
  EXPECT_FALSE(user.at("roles").as_array().empty());

  Response o = Fetch("/api/v1/orders/5");
  ASSERT_EQ(o.result_int(), 200);
  json::object order = ParseJson(o.body()).as_object();
  EXPECT_EQ(order.at("id").as_int64(), 5);
  const json::array& items = order.at("items").as_array();
  ASSERT_FALSE(items.empty());
  int64_t subtotal = 0;
  for (const auto& v : items) {
    const json::object& item = v.as_object();
    int64_t qty = item.at("quantity").as_int64();
    EXPECT_GE(qty, 1);
    EXPECT_EQ(Cents(item.at("line_total")), qty * Cents(item.at("unit_price")));
    subtotal += Cents(item.at("line_total"));
  }
  const json::object& totals = order.at("totals").as_object();
  EXPECT_EQ(Cents(totals.at("subtotal")), subtotal);
  EXPECT_EQ(Cents(totals.at("total")),
            subtotal + Cents(totals.at("tax")) + Cents(totals.at("shipping")));
  EXPECT_TRUE(order.at("shipping_address").as_object().at("street").is_string());
}

TEST_F(EchoTest, SearchUsesQueryParameters) {
  ASSERT_TRUE(echo_);
  Response r = Fetch("/api/v1/search?q=oak&page=1");
  ASSERT_EQ(r.result_int(), 200);
  json::object s = ParseJson(r.body()).as_object();
  EXPECT_EQ(s.at("query").as_string(), "oak");
  int64_t total = s.at("total").as_int64();
  ASSERT_GT(total, 10);
  EXPECT_EQ(s.at("results").as_array().size(), 10u);
  for (const auto& item : s.at("results").as_array()) {
    std::string name(item.as_object().at("name").as_string());
    EXPECT_NE(name.find("Oak"), std::string::npos) << name;
  }
  // Percent- and plus-decoding, and the last page.
  json::object two = ParseJson(Fetch("/api/v1/search?q=oak%20l+a").body()).as_object();
  EXPECT_EQ(two.at("query").as_string(), "oak l a");
  int64_t pages = s.at("pages").as_int64();
  json::object last =
      ParseJson(Fetch("/api/v1/search?q=oak&page=" + std::to_string(pages)).body()).as_object();
  EXPECT_EQ(static_cast<int64_t>(last.at("results").as_array().size()), total - (pages - 1) * 10);
  EXPECT_EQ(Fetch("/api/v1/search").result_int(), 400);
  EXPECT_EQ(Fetch("/api/v1/search?q=oak&page=0").result_int(), 400);
}

TEST_F(EchoTest, HealthzAndStaticText) {
  ASSERT_TRUE(echo_);
  Response h = Fetch("/healthz");
  EXPECT_EQ(h.result_int(), 200);
  EXPECT_EQ(ParseJson(h.body()).as_object().at("status").as_string(), "ok");
  Response logo = Fetch("/static/logo.txt");
  EXPECT_EQ(logo.result_int(), 200);
  EXPECT_EQ(logo[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_NE(logo.body().find("doppel-echo"), std::string::npos);
}

TEST_F(EchoTest, UnknownThingsAreJsonErrors) {
  ASSERT_TRUE(echo_);
  for (const char* target : {"/api/v1/products/0", "/api/v1/products/1001", "/api/v1/users/5000",
                             "/api/v1/orders/1001", "/nope"}) {
    Response r = Fetch(target);
    EXPECT_EQ(r.result_int(), 404) << target;
    EXPECT_EQ(r[http::field::content_type], "application/json");
    json::object err = ParseJson(r.body()).as_object().at("error").as_object();
    EXPECT_EQ(err.at("code").as_string(), "not_found") << target;
    EXPECT_EQ(err.at("status").as_int64(), 404);
  }
  EXPECT_EQ(Fetch("/api/v1/products/abc").result_int(), 400);

  Client c(echo_->port());
  auto del = c.Send(Client::MakeRequest(http::verb::delete_, "/api/v1/products/1"));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->result_int(), 405);
  EXPECT_EQ((*del)[http::field::allow], "GET, HEAD");
  auto get_orders = c.Send(Client::MakeRequest(http::verb::get, "/api/v1/orders"));
  ASSERT_TRUE(get_orders);
  EXPECT_EQ(get_orders->result_int(), 405);
  EXPECT_EQ((*get_orders)[http::field::allow], "POST");
}

TEST_F(EchoTest, PostOrderEchoesTheBodyWithAnId) {
  ASSERT_TRUE(echo_);
  const std::string body =
      R"({"user_id":42,"items":[{"product_id":7,"quantity":2,"unit_price":12.5}],)"
      R"("note":"leave at the door","gift":false,"coupon":null})";
  Client c(echo_->port());
  auto created = c.Send(Client::MakeRequest(http::verb::post, "/api/v1/orders",
                                            {{"Content-Type", "application/json"}}, body));
  ASSERT_TRUE(created);
  EXPECT_EQ(created->result_int(), 201);
  json::object reply = ParseJson(created->body()).as_object();
  int64_t id = reply.at("id").as_int64();
  EXPECT_GT(id, 1000);
  EXPECT_EQ(reply.at("status").as_string(), "created");
  EXPECT_EQ(reply.at("order"), json::parse(body));
  EXPECT_EQ((*created)[http::field::location], "/api/v1/orders/" + std::to_string(id));

  // The same order again gets the same id: POST is deterministic too.
  auto again = c.Send(Client::MakeRequest(http::verb::post, "/api/v1/orders", {}, body));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body(), created->body());

  for (const char* bad : {"{\"user_id\":", "not json", "[1,2,3]", ""}) {
    auto r = c.Send(Client::MakeRequest(http::verb::post, "/api/v1/orders", {}, bad));
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->result_int(), 400) << bad;
    EXPECT_TRUE(ParseJson(r->body()).as_object().contains("error"));
  }
}

TEST_F(EchoTest, HeadHasHeadersButNoBody) {
  ASSERT_TRUE(echo_);
  Response get = Fetch("/api/v1/products/1");
  Client c(echo_->port());
  for (int i = 0; i < 2; ++i) {
    auto head = c.Send(Client::MakeRequest(http::verb::head, "/api/v1/products/1"));
    ASSERT_TRUE(head);
    EXPECT_EQ(head->result_int(), 200);
    EXPECT_TRUE(head->body().empty());
    EXPECT_EQ((*head)[http::field::content_length], std::to_string(get.body().size()));
    EXPECT_EQ((*head)[http::field::content_type], "application/json");
  }
  // Had the server sent body bytes after a HEAD header, this response would not parse.
  auto next = c.Get("/api/v1/products/1");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body(), get.body());

  auto head404 = c.Send(Client::MakeRequest(http::verb::head, "/api/v1/products/9999"));
  ASSERT_TRUE(head404);
  EXPECT_EQ(head404->result_int(), 404);
  EXPECT_TRUE(head404->body().empty());
}

TEST_F(EchoTest, GzipWhenAsked) {
  ASSERT_TRUE(echo_);
  for (const char* target : {"/api/v1/products/3", "/api/v1/products?limit=50",
                             "/api/v1/search?q=lamp", "/static/logo.txt"}) {
    Response plain = Fetch(target);
    Response gz = Fetch(target, {{"Accept-Encoding", "deflate, gzip;q=0.8, br"}});
    EXPECT_TRUE(plain[http::field::content_encoding].empty()) << target;
    EXPECT_EQ(plain[http::field::vary], "Accept-Encoding");
    ASSERT_EQ(gz[http::field::content_encoding], "gzip") << target;
    EXPECT_EQ(gz[http::field::vary], "Accept-Encoding");
    EXPECT_NE(gz.body(), plain.body());
    EXPECT_EQ(Gunzip(gz.body()), plain.body()) << target;
  }
  Response refused = Fetch("/api/v1/products/3", {{"Accept-Encoding", "gzip;q=0, identity"}});
  EXPECT_TRUE(refused[http::field::content_encoding].empty());
}

TEST_F(EchoTest, IdenticalRequestsGetIdenticalResponses) {
  ASSERT_TRUE(echo_);
  std::unique_ptr<EchoProcess> twin;
  ASSERT_NO_FATAL_FAILURE(twin = Launch({}));
  ASSERT_TRUE(twin);
  for (const char* target :
       {"/api/v1/products/9", "/api/v1/users/9", "/api/v1/orders/9",
        "/api/v1/products?limit=7&offset=3", "/api/v1/search?q=kettle", "/api/v1/products/12345"}) {
    for (bool gzip : {false, true}) {
      std::vector<std::pair<std::string, std::string>> h;
      if (gzip) h.emplace_back("Accept-Encoding", "gzip");
      Response a = Fetch(target, h);
      Response b = Fetch(target, h);
      Response other = Fetch(twin->port(), target, h);  // another process, same seed
      EXPECT_EQ(a.body(), b.body()) << target;
      EXPECT_EQ(a.body(), other.body()) << target;
      EXPECT_EQ(HeaderLines(a), HeaderLines(b)) << target;
      EXPECT_EQ(HeaderLines(a), HeaderLines(other)) << target;
    }
  }
  std::unique_ptr<EchoProcess> reseeded;
  ASSERT_NO_FATAL_FAILURE(reseeded = Launch({"--seed", "7"}));
  ASSERT_TRUE(reseeded);
  EXPECT_NE(Fetch(reseeded->port(), "/api/v1/products/9").body(),
            Fetch("/api/v1/products/9").body());
}

TEST_F(EchoTest, NoiseFieldsDifferOnEveryResponse) {
  ASSERT_TRUE(echo_);
  std::unique_ptr<EchoProcess> noisy;
  ASSERT_NO_FATAL_FAILURE(noisy = Launch({"--noise"}));
  ASSERT_TRUE(noisy);
  const std::regex kUuid(R"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})");
  const std::regex kRfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  for (const char* target : {"/api/v1/products/4", "/api/v1/users/4", "/api/v1/products/9999"}) {
    Response a = Fetch(noisy->port(), target);
    Response b = Fetch(noisy->port(), target, {{"Accept-Encoding", "gzip"}});
    ASSERT_EQ(b[http::field::content_encoding], "gzip");
    json::object ja = ParseJson(a.body()).as_object();
    json::object jb = ParseJson(Gunzip(b.body())).as_object();
    for (const char* field : {"generated_at", "request_id", "nonce"}) {
      ASSERT_TRUE(ja.contains(field)) << target << " " << field;
      EXPECT_NE(ja.at(field), jb.at(field)) << target << " " << field;
    }
    std::string request_id(ja.at("request_id").as_string());
    EXPECT_TRUE(std::regex_match(request_id, kUuid)) << request_id;
    EXPECT_TRUE(std::regex_match(std::string(ja.at("generated_at").as_string()), kRfc3339));
    EXPECT_EQ(a["X-Request-Id"], request_id);
    EXPECT_NE(a["X-Request-Id"], b["X-Request-Id"]);
    EXPECT_FALSE(a[http::field::date].empty());
    // Everything else is the quiet server's answer.
    for (const char* field : {"generated_at", "request_id", "nonce"}) {
      ja.erase(field);
      jb.erase(field);
    }
    EXPECT_EQ(ja, jb);
    EXPECT_EQ(json::value(ja), ParseJson(Fetch(target).body())) << target;
  }
}

TEST_F(EchoTest, VariantTwoHasExactlyThreeChanges) {
  ASSERT_TRUE(echo_);
  std::unique_ptr<EchoProcess> v2;
  ASSERT_NO_FATAL_FAILURE(v2 = Launch({"--variant", "v2"}));
  ASSERT_TRUE(v2);
  // 1. Product price +10 %, every other field unchanged.
  for (int id : {1, 2, 3, 500, 1000}) {
    std::string target = "/api/v1/products/" + std::to_string(id);
    json::object a = ParseJson(Fetch(target).body()).as_object();
    json::object b = ParseJson(Fetch(v2->port(), target).body()).as_object();
    EXPECT_EQ(Cents(b.at("price")), (Cents(a.at("price")) * 11 + 5) / 10) << target;
    a.erase("price");
    b.erase("price");
    EXPECT_EQ(a, b) << target;
  }
  // 2. User email removed, every other field unchanged.
  for (int id : {1, 2, 97}) {
    std::string target = "/api/v1/users/" + std::to_string(id);
    json::object a = ParseJson(Fetch(target).body()).as_object();
    json::object b = ParseJson(Fetch(v2->port(), target).body()).as_object();
    EXPECT_TRUE(a.contains("email"));
    EXPECT_FALSE(b.contains("email")) << target;
    a.erase("email");
    EXPECT_EQ(a, b) << target;
  }
  // 3. Search fails with a JSON 500.
  Response search = Fetch(v2->port(), "/api/v1/search?q=oak");
  EXPECT_EQ(search.result_int(), 500);
  EXPECT_EQ(ParseJson(search.body()).as_object().at("error").as_object().at("code").as_string(),
            "internal");
  EXPECT_EQ(Fetch("/api/v1/search?q=oak").result_int(), 200);
  // Nothing else differs, byte for byte.
  for (const char* target : {"/api/v1/orders/1", "/api/v1/orders/77", "/api/v1/products",
                             "/api/v1/products?category=books&limit=100", "/healthz",
                             "/static/logo.txt", "/api/v1/users/1001", "/nope"}) {
    Response a = Fetch(target);
    Response b = Fetch(v2->port(), target);
    EXPECT_EQ(a.result_int(), b.result_int()) << target;
    EXPECT_EQ(a.body(), b.body()) << target;
  }
}

TEST_F(EchoTest, KeepAliveServesManyRequestsOnOneConnection) {
  ASSERT_TRUE(echo_);
  Client c(echo_->port());
  ASSERT_FALSE(c.connect_error());
  const char* targets[] = {"/api/v1/products/1", "/api/v1/users/2",      "/api/v1/orders/3",
                           "/healthz",           "/api/v1/search?q=mat", "/api/v1/products/9999"};
  for (int round = 0; round < 5; ++round) {
    for (const char* target : targets) {
      beast::error_code ec;
      auto r = c.Send(Client::MakeRequest(http::verb::get, target), &ec);
      ASSERT_TRUE(r) << "request " << target << " in round " << round << ": " << ec.message();
      EXPECT_TRUE(r->keep_alive());
      EXPECT_FALSE(r->body().empty());
    }
  }
  auto post = c.Send(Client::MakeRequest(http::verb::post, "/api/v1/orders", {}, R"({"a":1})"));
  ASSERT_TRUE(post);
  EXPECT_EQ(post->result_int(), 201);
  auto last = c.Send(Client::MakeRequest(http::verb::get, "/healthz", {{"Connection", "close"}}));
  ASSERT_TRUE(last);
  EXPECT_FALSE(last->keep_alive());
}

TEST_F(EchoTest, Http10ClosesUnlessKeepAliveIsAsked) {
  ASSERT_TRUE(echo_);
  bool closed = false;
  std::string raw = SendRaw(
      "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      "GET /api/v1/users/1 HTTP/1.0\r\n\r\n",
      &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(raw.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << raw;
  EXPECT_NE(raw.find("Connection: keep-alive\r\n"), std::string::npos);
  size_t second = raw.find("HTTP/1.0 200 OK\r\n", 10);
  ASSERT_NE(second, std::string::npos) << raw;
  EXPECT_NE(raw.find("Connection: close\r\n", second), std::string::npos);
  EXPECT_NE(raw.find("\"username\""), std::string::npos);
}

TEST_F(EchoTest, MalformedRequestsGet400AndAClosedConnection) {
  ASSERT_TRUE(echo_);
  for (const std::string& garbage :
       {std::string("GARBAGE\r\n\r\n"), std::string("GET / HTTP/9.9\r\n\r\n"),
        std::string("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"),
        std::string("POST /api/v1/orders HTTP/1.1\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        std::string("\x01\x02\x03\xff\r\n\r\n")}) {
    bool closed = false;
    std::string raw = SendRaw(garbage, &closed);
    EXPECT_EQ(raw.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << raw;
    EXPECT_TRUE(closed);
  }
  // A body over the limit is refused from its Content-Length, before it is sent.
  bool closed = false;
  std::string raw = SendRaw(
      "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 9437184\r\n\r\n{", &closed);
  EXPECT_EQ(raw.rfind("HTTP/1.1 413 ", 0), 0u) << raw;
  EXPECT_TRUE(closed);
  // The server is still healthy.
  EXPECT_EQ(Fetch("/healthz").result_int(), 200);
}

TEST_F(EchoTest, ExpectContinueIsHonoured) {
  ASSERT_TRUE(echo_);
  bool closed = false;
  std::string raw = SendRaw(
      "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}",
      &closed);
  EXPECT_EQ(raw.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n", 0), 0u) << raw;
}

TEST_F(EchoTest, LatencyDelaysResponses) {
  ASSERT_TRUE(echo_);
  std::unique_ptr<EchoProcess> slow;
  ASSERT_NO_FATAL_FAILURE(slow = Launch({"--latency", "150ms", "--latency-jitter", "20ms"}));
  ASSERT_TRUE(slow);
  Client c(slow->port());
  for (int i = 0; i < 3; ++i) {
    auto start = Clock::now();
    auto r = c.Get("/healthz");
    auto took = Clock::now() - start;
    ASSERT_TRUE(r);
    // Only a lower bound: a loaded machine may be slower, never faster.
    EXPECT_GE(took, std::chrono::milliseconds(125));
  }
}

TEST_F(EchoTest, BareLatencyNumberIsSeconds) {
  ASSERT_TRUE(echo_);
  std::unique_ptr<EchoProcess> slow;
  ASSERT_NO_FATAL_FAILURE(slow = Launch({"--latency", "0.15"}));  // 150 ms, not 150 us
  ASSERT_TRUE(slow);
  Client c(slow->port());
  auto start = Clock::now();
  ASSERT_TRUE(c.Get("/healthz"));
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(140));  // a lower bound only
}

TEST_F(EchoTest, PortFileAndCleanShutdown) {
  ASSERT_TRUE(echo_);
  std::string path = ::testing::TempDir() + "/echo_port_" + std::to_string(getpid());
  std::remove(path.c_str());
  std::unique_ptr<EchoProcess> p;
  ASSERT_NO_FATAL_FAILURE(p = Launch({"--port-file", path}));
  ASSERT_TRUE(p);
  std::ifstream in(path);
  int port = 0;
  in >> port;
  EXPECT_EQ(port, p->port());
  std::remove(path.c_str());
  // An idle keep-alive connection must not hold up shutdown.
  Client idle(p->port());
  ASSERT_TRUE(idle.Get("/healthz"));
  EXPECT_EQ(p->Terminate(), 0);
  EXPECT_EQ(echo_->Terminate(), 0);
}

// --stateful: every answer depends on what this process handed out; a second process knows
// none of it (what a replay without correlation runs into).
TEST(EchoStatefulTest, LoginOrdersFormAndCookieSession) {
  std::string error;
  auto echo = EchoProcess::Start({"--stateful"}, &error);
  ASSERT_TRUE(echo) << error;
  auto other = EchoProcess::Start({"--stateful"}, &error);
  ASSERT_TRUE(other) << error;
  Client c(echo->port());
  using Headers = std::vector<std::pair<std::string, std::string>>;
  auto send = [&](Client& cl, http::verb m, const std::string& target, const Headers& h,
                  std::string body = {}) {
    auto r = cl.Send(Client::MakeRequest(m, target, h, std::move(body)));
    EXPECT_TRUE(r) << target;
    return r ? std::move(*r) : Response{};
  };

  EXPECT_EQ(send(c, http::verb::get, "/account", {}).result_int(), 401);
  EXPECT_EQ(send(c, http::verb::post, "/login", {}, "not json").result_int(), 400);
  Response login = send(c, http::verb::post, "/login", {}, R"({"user":"ada","password":"x"})");
  ASSERT_EQ(login.result_int(), 200);
  const std::string token(ParseJson(login.body()).as_object().at("token").as_string());
  EXPECT_EQ(token.size(), 32u);
  const std::string set_cookie((login)[http::field::set_cookie]);
  ASSERT_TRUE(set_cookie.starts_with("sid=")) << set_cookie;
  const std::string sid = set_cookie.substr(0, set_cookie.find(';'));
  const Headers bearer = {{"Authorization", "Bearer " + token}};

  // The bearer token and the cookie session both open /account; a made-up token does not.
  Response account = send(c, http::verb::get, "/account", bearer);
  EXPECT_EQ(account.result_int(), 200);
  EXPECT_EQ(ParseJson(account.body()).as_object().at("user").as_string(), "ada");
  EXPECT_EQ(send(c, http::verb::get, "/account", {{"Cookie", "a=b; " + sid}}).result_int(), 200);
  EXPECT_EQ(send(c, http::verb::get, "/account", {{"Authorization", "Bearer nope"}}).result_int(),
            401);

  // Orders: 401 without the token, 201 with an id and a Location; the id is known only here.
  EXPECT_EQ(send(c, http::verb::post, "/orders", {}, "{}").result_int(), 401);
  EXPECT_EQ(send(c, http::verb::post, "/orders", {{"Cookie", sid}}, "{}").result_int(), 401);
  Response created = send(c, http::verb::post, "/orders", bearer, "{}");
  ASSERT_EQ(created.result_int(), 201);
  const std::string id(ParseJson(created.body()).as_object().at("id").as_string());
  EXPECT_EQ(created[http::field::location], "/orders/" + id);
  EXPECT_TRUE(id[0] >= '1' && id[0] <= '9') << id;
  EXPECT_EQ(send(c, http::verb::get, "/orders/" + id, bearer).result_int(), 200);
  EXPECT_EQ(send(c, http::verb::get, "/orders/" + id, {}).result_int(), 401);
  EXPECT_EQ(send(c, http::verb::get, "/orders/1234abcd", bearer).result_int(), 404);

  // CSRF: the token must come back in the form body and in the cookie.
  Response form = send(c, http::verb::get, "/form", {});
  ASSERT_EQ(form.result_int(), 200);
  const std::string csrf(ParseJson(form.body()).as_object().at("csrf").as_string());
  EXPECT_EQ(std::string(form[http::field::set_cookie]), "csrf=" + csrf + "; Path=/");
  EXPECT_EQ(
      send(c, http::verb::post, "/form", {{"Cookie", "csrf=" + csrf}}, "comment=hi&csrf=" + csrf)
          .result_int(),
      200);
  EXPECT_EQ(send(c, http::verb::post, "/form", {}, "csrf=" + csrf).result_int(), 403);
  EXPECT_EQ(
      send(c, http::verb::post, "/form", {{"Cookie", "csrf=" + csrf}}, "csrf=other").result_int(),
      403);

  // A fresh process knows none of it.
  Client o(other->port());
  EXPECT_EQ(send(o, http::verb::get, "/account", bearer).result_int(), 401);
  EXPECT_EQ(send(o, http::verb::get, "/account", {{"Cookie", sid}}).result_int(), 401);
  Response login2 = send(o, http::verb::post, "/login", {}, R"({"user":"ada"})");
  const std::string token2(ParseJson(login2.body()).as_object().at("token").as_string());
  EXPECT_NE(token2, token);
  EXPECT_EQ(send(o, http::verb::get, "/orders/" + id, {{"Authorization", "Bearer " + token2}})
                .result_int(),
            404);
  EXPECT_EQ(
      send(o, http::verb::post, "/form", {{"Cookie", "csrf=" + csrf}}, "csrf=" + csrf).result_int(),
      403);
  // The shop still answers beside the stateful endpoints.
  EXPECT_EQ(send(c, http::verb::get, "/healthz", {}).result_int(), 200);
}

TEST(EchoUsageTest, BadFlagsExitWithTwo) {
  EXPECT_EQ(RunToExit({"--variant", "v3"}), 2);
  EXPECT_EQ(RunToExit({"--listen", "nonsense"}), 2);
  EXPECT_EQ(RunToExit({"--listen", "127.0.0.1:0", "--latency", "5 parsecs"}), 2);
  EXPECT_EQ(RunToExit({"--listen", "127.0.0.1:0", "--latency", "2h"}), 2);
  EXPECT_EQ(RunToExit({"--listen", "127.0.0.1:0", "--latency-jitter", "-1s"}), 2);
  EXPECT_EQ(RunToExit({"--listen", "not-an-ip:0"}), 2);
  EXPECT_EQ(RunToExit({"--help"}), 0);
}

}  // namespace
