#include "stream/redis_client.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
#include <charconv>
#include <cstring>

#include "base/enum_names.h"
#include "net/http_client.h"
#include "net/url.h"

namespace doppel::stream {
namespace {

constexpr char kForm[] = "redis://[:PASSWORD@]HOST[:PORT]/STREAM";
constexpr char kTlsForm[] =
    "rediss://[:PASSWORD@]HOST[:PORT]/STREAM[?cacert=FILE&cert=FILE&key=FILE]";

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
  return std::string(tls ? "rediss://" : "redis://") + net::HostPort{host, port}.ToString() + "/" +
         stream;
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
                                   "); expected " + kForm + " or " + kTlsForm);
  };
  if (!IsRedisUrl(text) || !net::HasSchemeAndAuthority(text)) return bad("no redis:// scheme");
  std::string escaped;  // a hash tag's braces, which a URL may not hold as they are
  for (char c : text) escaped += c == '{' ? "%7B" : c == '}' ? "%7D" : std::string(1, c);
  auto parsed = boost::urls::parse_absolute_uri(escaped);
  if (!parsed) return bad("not a URL");
  const boost::urls::url_view& u = *parsed;
  std::string scheme(u.scheme());
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  RedisUrl url;
  url.tls = scheme == "rediss";
  if (u.has_fragment()) return bad("a fragment is not allowed");
  if (u.has_query() && !url.tls) {
    return bad("a query is not allowed (rediss:// takes cacert, cert and key)");
  }
  for (const auto& param : u.params()) {
    const std::string key(param.key), value(param.value);
    if (!param.has_value || value.empty())
      return bad("'" + key + "' needs a file: " + key + "=FILE");
    if (key == "cacert") {
      url.ca_file = value;
    } else if (key == "cert") {
      url.cert_file = value;
    } else if (key == "key") {
      url.key_file = value;
    } else {
      return bad("unknown parameter '" + key + "'; rediss:// takes cacert, cert and key");
    }
  }
  if (url.cert_file.empty() != url.key_file.empty()) {
    return bad("cert and key go together: give both");
  }
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

// One connection: a socket, TLS over it for rediss://, and the RESP reader of its replies.
struct RedisClient::Context {
  int fd = -1;
  SSL* ssl = nullptr;
  redisReader* reader = nullptr;
  ~Context() {
    if (ssl != nullptr) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
    if (reader != nullptr) redisReaderFree(reader);
  }
};

namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// A blocking TCP connection to host:port within `timeout`, with `io_timeout` on every read
// and write. Errors: Unavailable, with the reason.
Result<int> ConnectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds io_timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (gai != 0) return Status::Unavailable(std::string("cannot resolve: ") + gai_strerror(gai));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      why = ErrnoText(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
      if (rc == 0) {
        ::close(fd);
        why = "Connection timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (rc < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      why = ErrnoText(errno);
      ::close(fd);
      continue;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    const timeval tv = ToTimeval(io_timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // A lost peer is also found by the I/O timeout.
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
  }
  return Status::Unavailable(why);
}

bool IsIpAddress(const std::string& host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

// The reason of the last OpenSSL failure, or of a verification that failed.
std::string TlsFailure(SSL* ssl,
                       const char* otherwise = "no answer within the I/O timeout, or closed") {
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    return std::string("the server's certificate was refused: ") +
           X509_verify_cert_error_string(verify);
  }
  const unsigned long err = ERR_get_error();
  if (err == 0) return otherwise;
  char text[256];
  ERR_error_string_n(err, text, sizeof text);
  return text;
}

// "*N\r\n$LEN\r\nARG\r\n...": one command in RESP, appended to `out`.
void AppendResp(const std::vector<std::string>& argv, std::string* out) {
  *out += "*" + std::to_string(argv.size()) + "\r\n";
  for (const std::string& a : argv) {
    *out += "$" + std::to_string(a.size()) + "\r\n";
    *out += a;
    *out += "\r\n";
  }
}

}  // namespace

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
  auto fd = ConnectTcp(host, port, options_.connect_timeout, options_.io_timeout);
  if (!fd.ok()) {
    return Status::Unavailable("cannot connect to " + where + ": " + fd.status().message() +
                               " (is redis-server running there?)");
  }
  ctx->fd = *fd;
  ctx->reader = redisReaderCreate();
  if (ctx->reader == nullptr)
    return Status::ResourceExhausted(where + ": cannot allocate a reader");
  if (url_.tls) {
    if (!tls_) {
      net::TlsClientOptions o;
      o.ca_file = url_.ca_file;
      o.cert_file = url_.cert_file;
      o.key_file = url_.key_file;
      auto made = net::MakeClientTlsContext(o);
      if (!made.ok()) return made.status().WithContext(url_.ToString());
      tls_ = std::move(made.value());
    }
    ctx->ssl = SSL_new(tls_->native_handle());
    if (ctx->ssl == nullptr) return Status::ResourceExhausted(where + ": cannot allocate TLS");
    if (IsIpAddress(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ctx->ssl), host.c_str());
    } else {
      SSL_set_tlsext_host_name(ctx->ssl, host.c_str());
      SSL_set1_host(ctx->ssl, host.c_str());
    }
    SSL_set_fd(ctx->ssl, ctx->fd);
    ERR_clear_error();
    ScopedNoSigpipe no_sigpipe;
    if (SSL_connect(ctx->ssl) != 1) {
      const std::string why =
          TlsFailure(ctx->ssl, "the connection was closed during the handshake");
      // A wrong certificate or CA is not a server that is down: --sink-optional does not
      // start past it.
      if (SSL_get_verify_result(ctx->ssl) != X509_V_OK) {
        return Status::InvalidArgument("TLS to " + where + ": " + why +
                                       " (give its CA as ?cacert=FILE)");
      }
      return Status::Unavailable("TLS to " + where + " failed: " + why +
                                 " (is it a TLS port, tls-port? does it want a client "
                                 "certificate, ?cert=FILE&key=FILE?)");
    }
  }
  ctx_ = std::move(ctx);
  broken_ = false;
  // The first answer: a TLS server that wants a client certificate closes the connection
  // here (TLS 1.3 checks it after the handshake), and a plaintext client to a TLS port too.
  const auto first = [&](std::vector<std::string> argv) -> Result<std::vector<RedisReply>> {
    auto replies = Send({std::move(argv)});
    if (replies.ok()) return replies;
    return Status::Unavailable(
        replies.status().message() +
        (url_.tls ? "; over TLS: does the server want a client certificate (?cert=FILE&key=FILE)?"
                  : "; is it a TLS port (rediss://)?"));
  };
  if (!url_.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!url_.user.empty()) auth.push_back(url_.user);
    auth.push_back(url_.password);
    DOPPEL_ASSIGN_OR_RETURN(auto replies, first(std::move(auth)));
    if (replies[0].is_error()) {
      broken_ = true;
      return Status::InvalidArgument(where + " refused the password (" + replies[0].str +
                                     "); check PASSWORD in redis://:PASSWORD@HOST:PORT/STREAM");
    }
  }
  DOPPEL_ASSIGN_OR_RETURN(auto pong, first({"PING"}));
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

namespace {

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" (an empty host: the node asked):
// the node named, or false when the reply is not that redirection or doppel cannot read it.
bool Redirection(const RedisReply& r, std::string_view kind, std::string* host, uint16_t* port) {
  if (!r.is_error() || r.str.size() <= kind.size() || r.str.compare(0, kind.size(), kind) != 0 ||
      r.str[kind.size()] != ' ')
    return false;
  const std::string to = r.str.substr(r.str.rfind(' ') + 1);
  const size_t colon = to.rfind(':');
  unsigned p = 0;
  if (colon == std::string::npos) return false;
  const char* digits = to.data() + colon + 1;
  const auto [end, ec] = std::from_chars(digits, to.data() + to.size(), p);
  if (ec != std::errc() || end != to.data() + to.size() || p == 0 || p > 65535) return false;
  *host = to.substr(0, colon);
  *port = static_cast<uint16_t>(p);
  return true;
}

}  // namespace

Result<std::vector<RedisReply>> RedisClient::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  DOPPEL_ASSIGN_OR_RETURN(auto replies, Send(commands));
  if (!cluster_ || replies.empty()) return replies;
  // MOVED for every command: none ran, send them where the slot is now.
  std::string host;
  uint16_t port = 0;
  bool moved = true;
  for (const RedisReply& r : replies) moved = moved && Redirection(r, "MOVED", &host, &port);
  if (moved) {
    DOPPEL_RETURN_IF_ERROR(OpenNode(host.empty() ? node_host_ : host, port));
    DOPPEL_ASSIGN_OR_RETURN(replies, Send(commands));
  }
  // ASK: the slot is being migrated and the command's key has gone to the node named. The
  // command is sent there once, after ASKING; the slot stays with this node until the
  // migration ends (and a later command is answered MOVED).
  for (size_t i = 0; i < replies.size(); ++i) {
    if (!Redirection(replies[i], "ASK", &host, &port)) continue;
    if (host.empty()) host = node_host_;
    if (!ask_ || ask_->broken_ || ask_->node_host_ != host || ask_->node_port_ != port) {
      ask_.reset(new RedisClient(url_, options_));
      ask_->tls_ = tls_;
      DOPPEL_RETURN_IF_ERROR(ask_->OpenNode(host, port).WithContext("following ASK"));
    }
    DOPPEL_ASSIGN_OR_RETURN(auto asked, ask_->Send({{"ASKING"}, commands[i]}));
    replies[i] = std::move(asked[1]);
  }
  return replies;
}

Result<std::vector<RedisReply>> RedisClient::Send(
    const std::vector<std::vector<std::string>>& commands) {
  const std::string where = "redis " + node();
  if (broken_ || !ctx_) return Status::Unavailable(where + ": not connected");
  Context& c = *ctx_;
  std::string out;
  for (const auto& cmd : commands) AppendResp(cmd, &out);
  const auto lost = [&](const std::string& why) -> Status {
    broken_ = true;
    return Status::Unavailable(where + ": connection lost (" + why + ")");
  };
  ScopedNoSigpipe no_sigpipe;
  for (size_t done = 0; done < out.size();) {
    const size_t n = std::min<size_t>(out.size() - done, 1 << 20);
    const ssize_t w = c.ssl != nullptr ? SSL_write(c.ssl, out.data() + done, static_cast<int>(n))
                                       : ::send(c.fd, out.data() + done, n, MSG_NOSIGNAL);
    if (w <= 0) {
      if (c.ssl == nullptr && w < 0 && errno == EINTR) continue;
      return lost(c.ssl == nullptr && (errno == EAGAIN || errno == EWOULDBLOCK)
                      ? "no progress writing within the I/O timeout"
                  : c.ssl == nullptr ? ErrnoText(errno)
                                     : TlsFailure(c.ssl));
    }
    done += static_cast<size_t>(w);
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  char buf[16 * 1024];
  while (replies.size() < commands.size()) {
    void* raw = nullptr;
    if (redisReaderGetReply(c.reader, &raw) != REDIS_OK) {
      return lost(std::string("a reply that is not RESP: ") + c.reader->errstr);
    }
    if (raw != nullptr) {
      auto* r = static_cast<redisReply*>(raw);
      replies.push_back(Copy(*r));
      freeReplyObject(r);
      continue;
    }
    const ssize_t got =
        c.ssl != nullptr ? SSL_read(c.ssl, buf, sizeof buf) : ::recv(c.fd, buf, sizeof buf, 0);
    if (got == 0) return lost("closed by the server");
    if (got < 0) {
      if (c.ssl == nullptr && errno == EINTR) continue;
      return lost(c.ssl == nullptr && (errno == EAGAIN || errno == EWOULDBLOCK)
                      ? "no reply within the I/O timeout"
                  : c.ssl == nullptr ? ErrnoText(errno)
                                     : TlsFailure(c.ssl));
    }
    redisReaderFeed(c.reader, buf, static_cast<size_t>(got));
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
