#include "stream/redis_client.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
#include <charconv>
#include <cstring>

#include "base/enum_names.h"
#include "net/url.h"

namespace doppel::stream {
namespace {

constexpr char kForm[] = "redis://[:PASSWORD@]HOST[:PORT]/STREAM";

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

RedisReply Copy(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r.type == REDIS_REPLY_STRING   ? RedisReply::Type::kString
                 : r.type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                                : RedisReply::Type::kError;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) {
        if (r.element[i] != nullptr) out.elements.push_back(Copy(*r.element[i]));
      }
      break;
    default:  // REDIS_REPLY_NIL, and anything a newer server might send
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

// "a string", "an array", ...: for error messages about an unexpected reply.
constexpr EnumNames<RedisReply::Type, 6> kReplyTypeNames{
    {"a string", "an array", "an integer", "nil", "a status", "an error"}, "?"};

// hiredis writes with write(2): a peer that went away raises SIGPIPE, which would kill the
// process (doppel does not ignore it). Blocked in this thread while a command is written; one
// that was raised is taken before the old mask comes back.
class ScopedNoSigpipe {
 public:
  ScopedNoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~ScopedNoSigpipe() {
    if (sigismember(&old_, SIGPIPE) == 0) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedNoSigpipe(const ScopedNoSigpipe&) = delete;
  ScopedNoSigpipe& operator=(const ScopedNoSigpipe&) = delete;

 private:
  sigset_t pipe_, old_;
};

}  // namespace

std::string RedisUrl::ToString() const {
  return "redis://" + net::HostPort{host, port}.ToString() + "/" + stream;
}

std::string DefaultClientName() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  return std::string(host) + "-" + std::to_string(::getpid());
}

bool IsRedisUrl(std::string_view text) {
  const auto starts = [&](std::string_view p) {
    return text.size() >= p.size() &&
           std::equal(p.begin(), p.end(), text.begin(), [](char a, char b) {
             return a == std::tolower(static_cast<unsigned char>(b));
           });
  };
  return starts("redis://") || starts("rediss://");
}

Result<RedisUrl> ParseRedisUrl(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not a Redis stream URL (" + why +
                                   "); expected " + kForm);
  };
  if (!IsRedisUrl(text) || !net::HasSchemeAndAuthority(text)) return bad("no redis:// scheme");
  std::string escaped;  // a hash tag's braces, which a URL may not hold as they are
  for (char c : text) escaped += c == '{' ? "%7B" : c == '}' ? "%7D" : std::string(1, c);
  auto parsed = boost::urls::parse_absolute_uri(escaped);
  if (!parsed) return bad("not a URL");
  const boost::urls::url_view& u = *parsed;
  std::string scheme(u.scheme());
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "rediss") {
    return Status::Unsupported("'" + std::string(text) +
                               "': rediss:// (Redis over TLS) is not supported yet; use "
                               "redis:// on a trusted network");
  }
  if (u.has_query() || u.has_fragment()) return bad("a query or fragment is not allowed");
  RedisUrl url;
  url.host = std::string(u.host_address());
  if (url.host.empty()) return bad("no host");
  if (u.has_port()) {
    // port_number() wraps a port over 65535 (Boost.URL 1.81): parse the digits here.
    const std::string_view digits = u.port();
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || port == 0 ||
        port > 65535) {
      return bad("bad port");
    }
    url.port = static_cast<uint16_t>(port);
  }
  if (u.has_userinfo()) {
    url.user = std::string(u.user());
    if (u.has_password()) url.password = std::string(u.password());
    if (!url.user.empty() && url.password.empty()) return bad("a user without a password");
  }
  std::string path(u.path());  // decoded
  if (path.size() < 2 || path[0] != '/') return bad("no stream name after the host");
  url.stream = path.substr(1);
  for (char c : url.stream) {
    // The name goes into metric labels and log lines unquoted: keep it plain.
    if (c == '/' || c == '"' || c == '\\' || static_cast<unsigned char>(c) <= ' ' ||
        static_cast<unsigned char>(c) >= 0x7f) {
      return bad("the stream name may not hold '/', '\"', '\\', spaces or control characters");
    }
  }
  return url;
}

std::string DescribeReply(const RedisReply& r) {
  std::string out(kReplyTypeNames.Name(r.type));
  switch (r.type) {
    case RedisReply::Type::kString:
    case RedisReply::Type::kStatus:
    case RedisReply::Type::kError:
      out += " (" + r.str.substr(0, 200) + ")";
      break;
    case RedisReply::Type::kInteger:
      out += " (" + std::to_string(r.integer) + ")";
      break;
    case RedisReply::Type::kArray:
      out += " of " + std::to_string(r.elements.size());
      break;
    case RedisReply::Type::kNil:
      break;
  }
  return out;
}

uint16_t KeySlot(std::string_view key) {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  uint16_t crc = 0;  // CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0
  for (char ch : key) {
    crc ^= static_cast<uint16_t>(static_cast<unsigned char>(ch) << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
  }
  return static_cast<uint16_t>(crc & 16383);
}

Status ExpectType(const RedisReply& reply, RedisReply::Type type, std::string_view command) {
  if (reply.type == type) return Status::Ok();
  if (reply.is_error()) {
    return Status::Internal("redis refused " + std::string(command) + ": " + reply.str);
  }
  return Status::Internal("redis answered " + std::string(command) + " with " +
                          DescribeReply(reply) + ", expected " +
                          std::string(kReplyTypeNames.Name(type)));
}

struct RedisClient::Context {
  redisContext* c = nullptr;
  ~Context() {
    if (c != nullptr) redisFree(c);
  }
};

RedisClient::RedisClient(RedisUrl url, RedisClientOptions options)
    : url_(std::move(url)), options_(options), node_host_(url_.host), node_port_(url_.port) {}

RedisClient::~RedisClient() = default;

Result<std::unique_ptr<RedisClient>> RedisClient::Connect(const RedisUrl& url,
                                                          RedisClientOptions options) {
  std::unique_ptr<RedisClient> client(new RedisClient(url, options));
  DOPPEL_RETURN_IF_ERROR(client->Open());
  return client;
}

Status RedisClient::Reconnect() { return Open(); }

std::string RedisClient::node() const { return net::HostPort{node_host_, node_port_}.ToString(); }

Status RedisClient::Open() {
  // A cluster client tries the node it was talking to first: the URL's node may be the one
  // that failed.
  if (cluster_ && !(node_host_ == url_.host && node_port_ == url_.port)) {
    if (OpenNode(node_host_, node_port_).ok() && RouteToSlotOwner().ok()) return Status::Ok();
  }
  DOPPEL_RETURN_IF_ERROR(OpenNode(url_.host, url_.port));
  return RouteToSlotOwner();
}

Status RedisClient::OpenNode(const std::string& host, uint16_t port) {
  broken_ = true;
  ctx_.reset();
  node_host_ = host;
  node_port_ = port;
  const std::string where = "redis " + node();
  auto ctx = std::make_unique<Context>();
  ctx->c = redisConnectWithTimeout(host.c_str(), port, ToTimeval(options_.connect_timeout));
  if (ctx->c == nullptr) return Status::ResourceExhausted(where + ": cannot allocate a context");
  if (ctx->c->err != 0) {
    return Status::Unavailable("cannot connect to " + where + ": " + ctx->c->errstr +
                               " (is redis-server running there?)");
  }
  if (redisSetTimeout(ctx->c, ToTimeval(options_.io_timeout)) != REDIS_OK) {
    return Status::Unavailable(where + ": cannot set the I/O timeout");
  }
  (void)redisEnableKeepAlive(ctx->c);  // a lost peer is also found by the I/O timeout
  ctx_ = std::move(ctx);
  broken_ = false;
  if (!url_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!url_.user.empty()) auth.push_back(url_.user);
    auth.push_back(url_.password);
    DOPPEL_ASSIGN_OR_RETURN(auto replies, Send({std::move(auth)}));
    if (replies[0].is_error()) {
      broken_ = true;
      return Status::InvalidArgument(where + " refused the password (" + replies[0].str +
                                     "); check PASSWORD in redis://:PASSWORD@HOST:PORT/STREAM");
    }
  }
  DOPPEL_ASSIGN_OR_RETURN(auto pong, Send({std::vector<std::string>{"PING"}}));
  if (pong[0].is_error()) {
    broken_ = true;
    if (pong[0].str.rfind("NOAUTH", 0) == 0) {
      return Status::InvalidArgument(where + " needs a password (" + pong[0].str +
                                     "): give it as redis://:PASSWORD@HOST:PORT/STREAM");
    }
    return Status::Unavailable(where + " refused PING: " + pong[0].str);
  }
  return Status::Ok();
}

Status RedisClient::RouteToSlotOwner() {
  DOPPEL_ASSIGN_OR_RETURN(auto replies, Send({std::vector<std::string>{"CLUSTER", "SLOTS"}}));
  const RedisReply& slots = replies[0];
  if (slots.is_error()) {  // "ERR This instance has cluster support disabled"
    cluster_ = false;
    return Status::Ok();
  }
  DOPPEL_RETURN_IF_ERROR(ExpectType(slots, RedisReply::Type::kArray, "CLUSTER SLOTS"));
  cluster_ = true;
  const uint16_t slot = KeySlot(url_.stream);
  for (const RedisReply& range : slots.elements) {
    // [start, end, [host, port, id, ...], replicas...]
    if (range.type != RedisReply::Type::kArray || range.elements.size() < 3 ||
        range.elements[0].type != RedisReply::Type::kInteger ||
        range.elements[1].type != RedisReply::Type::kInteger ||
        range.elements[2].type != RedisReply::Type::kArray ||
        range.elements[2].elements.size() < 2 ||
        range.elements[2].elements[1].type != RedisReply::Type::kInteger) {
      return Status::Internal("redis " + node() + " answered CLUSTER SLOTS with an entry " +
                              DescribeReply(range) + ", expected [start, end, [host, port], ...]");
    }
    if (slot < range.elements[0].integer || slot > range.elements[1].integer) continue;
    std::string host = range.elements[2].elements[0].str;
    const long long port = range.elements[2].elements[1].integer;
    if (host.empty() || host == "?") host = node_host_;  // "the node you asked"
    if (port <= 0 || port > 65535) {
      return Status::Internal("redis " + node() + ": CLUSTER SLOTS names port " +
                              std::to_string(port) + " for slot " + std::to_string(slot));
    }
    if (host == node_host_ && port == node_port_) return Status::Ok();
    return OpenNode(host, static_cast<uint16_t>(port));
  }
  broken_ = true;
  return Status::Unavailable("redis cluster at " + node() + ": no node serves slot " +
                             std::to_string(slot) + " (key '" + url_.stream +
                             "'); check `redis-cli -p PORT cluster info` for cluster_state:ok");
}

Result<std::vector<RedisReply>> RedisClient::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  DOPPEL_ASSIGN_OR_RETURN(auto replies, Send(commands));
  if (!cluster_ || replies.empty()) return replies;
  // "MOVED 3999 127.0.0.1:6381" for every command: none ran, send them where the slot is now.
  std::string to;
  for (const RedisReply& r : replies) {
    if (!r.is_error() || r.str.rfind("MOVED ", 0) != 0) return replies;
    to = r.str.substr(r.str.rfind(' ') + 1);
  }
  const size_t colon = to.rfind(':');
  unsigned port = 0;
  const char* digits = to.data() + colon + 1;
  if (colon == std::string::npos ||
      std::from_chars(digits, to.data() + to.size(), port).ec != std::errc() || port == 0 ||
      port > 65535) {
    return replies;  // a redirection doppel cannot read: the caller sees the error replies
  }
  std::string host = to.substr(0, colon);
  if (host.empty()) host = node_host_;
  DOPPEL_RETURN_IF_ERROR(OpenNode(host, static_cast<uint16_t>(port)));
  return Send(commands);
}

Result<std::vector<RedisReply>> RedisClient::Send(
    const std::vector<std::vector<std::string>>& commands) {
  const std::string where = "redis " + node();
  if (broken_ || !ctx_) return Status::Unavailable(where + ": not connected");
  redisContext* c = ctx_->c;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& cmd : commands) {
    argv.clear();
    lens.clear();
    for (const auto& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      broken_ = true;
      return Status::ResourceExhausted(where + ": cannot buffer a command");
    }
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  ScopedNoSigpipe no_sigpipe;
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
      broken_ = true;
      return Status::Unavailable(where + ": connection lost (" +
                                 (c->err != 0 ? std::string(c->errstr) : "no reply") + ")");
    }
    auto* r = static_cast<redisReply*>(raw);
    replies.push_back(Copy(*r));
    freeReplyObject(r);
  }
  return replies;
}

Result<RedisReply> RedisClient::Command(std::vector<std::string> argv) {
  std::vector<std::vector<std::string>> one;
  one.push_back(std::move(argv));
  DOPPEL_ASSIGN_OR_RETURN(auto replies, Pipeline(one));
  return std::move(replies.front());
}

}  // namespace doppel::stream
