// A small synchronous Redis client for the stream sink and import: `redis://` and `rediss://`
// (TLS, OpenSSL) URLs, connect with a timeout, AUTH, commands one at a time or pipelined, and
// replies read with hiredis's RESP reader and copied into RedisReply so no hiredis type leaks
// out. (Debian's hiredis 0.14 has no TLS: the client keeps its own socket.) Every reply is the
// caller's to check against what it expects (the Expect* helpers): an unexpected reply is an error
// Status, never a crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace boost::asio::ssl {
class context;
}

namespace doppel::stream {

// redis://[[USER]:PASSWORD@]HOST[:PORT]/STREAM, or
// rediss://[[USER]:PASSWORD@]HOST[:PORT]/STREAM[?cacert=FILE&cert=FILE&key=FILE]
struct RedisUrl {
  std::string host;
  uint16_t port = 6379;
  std::string user;      // "" = the default user (AUTH PASSWORD)
  std::string password;  // "" = no AUTH
  std::string stream;    // the stream's key, percent-decoded
  // rediss://: TLS 1.2+, the server's certificate verified (against `ca_file`, else the
  // system's CAs) and its name or IP address checked against HOST; cert_file and key_file
  // (both or neither) are the client certificate a server with tls-auth-clients asks for.
  bool tls = false;
  std::string ca_file, cert_file, key_file;
  // "redis://HOST:PORT/STREAM" (rediss://), the password and files left out: for messages.
  std::string ToString() const;
};

// "HOSTNAME-PID": the default name of a recorder writing to a stream (--recorder-id) and of a
// replay worker in a group (--consumer), telling processes sharing a stream apart.
std::string DefaultClientName();

// True when `text` names a Redis URL (redis:// or rediss://), whatever else is wrong with it.
bool IsRedisUrl(std::string_view text);

// Parses a Redis URL; errors say what is wrong and show the expected forms. Braces may be written
// as they are (redis://h/{checkout}): they are taken as %7B and %7D, so a hash tag needs no
// percent-encoding.
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

// The Redis Cluster hash slot of `key` (0..16383): CRC16 (XMODEM) of its hash tag, the part
// between the first '{' and the next '}' when that part is not empty, else of the whole key.
uint16_t KeySlot(std::string_view key);

struct RedisClientOptions {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds io_timeout{5000};  // each read or write of a command
};

// Not thread-safe: one connection, used by one thread.
//
// Redis Cluster: the URL names any node. A client talks to the one master that owns the
// slot of its URL's stream key, found with CLUSTER SLOTS when it connects, so every key it
// names must hash to that slot (a stream named with a hash tag, {checkout}, and the keys
// doppel derives from it, {checkout}:dicts, do). A pipeline that every reply answers with
// MOVED (the slot moved: a failover, a resharding) is sent again, once, to the node named. A
// command answered ASK (its key has gone to the node its slot is being migrated to) is sent
// there, once, after ASKING, on a second connection kept for that.
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
  // True when the server is a Redis Cluster node (cluster_enabled).
  bool cluster() const { return cluster_; }
  // "HOST:PORT" of the node this client talks to (the URL's, or the slot owner's).
  std::string node() const;

 private:
  struct Context;
  RedisClient(RedisUrl url, RedisClientOptions options);
  Status Open();
  // Connects to host:port, with AUTH and PING.
  Status OpenNode(const std::string& host, uint16_t port);
  // On a cluster node: connects to the master owning the slot of url_.stream.
  Status RouteToSlotOwner();
  Result<std::vector<RedisReply>> Send(const std::vector<std::vector<std::string>>& commands);

  RedisUrl url_;
  RedisClientOptions options_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  // rediss://, made at the first Open
  std::unique_ptr<Context> ctx_;
  std::unique_ptr<RedisClient> ask_;  // to the node of the last ASK redirection
  std::string node_host_;             // the node connected to
  uint16_t node_port_ = 0;
  bool broken_ = true;
  bool cluster_ = false;
};
using RedisClientPtr = std::unique_ptr<RedisClient>;

}  // namespace doppel::stream
