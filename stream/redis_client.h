// A small synchronous Redis client (hiredis underneath) for the stream sink and import:
// `redis://` URLs, connect with a timeout, AUTH, commands one at a time or pipelined, and
// replies copied into RedisReply so no hiredis type leaks out. Every reply is the caller's to
// check against what it expects (the Expect* helpers): an unexpected reply is an error Status,
// never a crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace doppel::stream {

// redis://[[USER]:PASSWORD@]HOST[:PORT]/STREAM
struct RedisUrl {
  std::string host;
  uint16_t port = 6379;
  std::string user;      // "" = the default user (AUTH PASSWORD)
  std::string password;  // "" = no AUTH
  std::string stream;    // the stream's key, percent-decoded
  // "redis://HOST:PORT/STREAM", the password left out: for messages and logs.
  std::string ToString() const;
};

// "HOSTNAME-PID": the default name of a recorder writing to a stream (--recorder-id) and of a
// replay worker in a group (--consumer), telling processes sharing a stream apart.
std::string DefaultClientName();

// True when `text` names a Redis URL (redis:// or rediss://), whatever else is wrong with it.
bool IsRedisUrl(std::string_view text);

// Parses a Redis URL; errors say what is wrong and show the expected form. rediss:// (TLS)
// is refused as not supported yet.
Result<RedisUrl> ParseRedisUrl(std::string_view text);

// One reply, owned. Errors from Redis ("-ERR ...") are replies of type kError: a command
// that Redis refused is not a broken connection.
struct RedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError, kMaxValue = kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  long long integer = 0;
  std::vector<RedisReply> elements;  // kArray
  bool is_error() const { return type == Type::kError; }
};

// "an error reply (-ERR ...)", "an integer (3)": a reply as an error message shows it.
std::string DescribeReply(const RedisReply& reply);
// OK when `reply` has the type `what` expects; else an Internal error naming the command.
Status ExpectType(const RedisReply& reply, RedisReply::Type type, std::string_view command);

struct RedisClientOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds io_timeout{5000};  // each read or write of a command
};

// Not thread-safe: one connection, used by one thread.
class RedisClient {
 public:
  // Connects, authenticates when the URL has a password, and PINGs. Errors: Unavailable when
  // the server cannot be reached; InvalidArgument when it refuses the password or wants one.
  static Result<std::unique_ptr<RedisClient>> Connect(const RedisUrl& url,
                                                      RedisClientOptions options = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends every command in one write, then reads the replies in order. An I/O error (the
  // connection is lost, a timeout) is Unavailable and leaves the client broken until
  // Reconnect(); a reply of type kError is returned as a reply.
  Result<std::vector<RedisReply>> Pipeline(const std::vector<std::vector<std::string>>& commands);
  Result<RedisReply> Command(std::vector<std::string> argv);

  // A fresh connection (with AUTH and PING), replacing the current one.
  Status Reconnect();
  bool broken() const { return broken_; }
  const RedisUrl& url() const { return url_; }

 private:
  struct Context;
  RedisClient(RedisUrl url, RedisClientOptions options);
  Status Open();

  RedisUrl url_;
  RedisClientOptions options_;
  std::unique_ptr<Context> ctx_;
  bool broken_ = true;
};
using RedisClientPtr = std::unique_ptr<RedisClient>;

}  // namespace doppel::stream
