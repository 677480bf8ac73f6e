#include "audit/audit_log.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>

#include "base/time_format.h"

namespace doppel::audit {

namespace {

namespace json = boost::json;

// A last line longer than this is not one of ours: the append is refused rather than read.
constexpr size_t kMaxLineBytes = 16u << 20;

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

// A fresh 256-bit nonce (hex) anchoring a new chain.
std::string Nonce() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), bytes.size()) != 1) {
    // No CSPRNG: anchor to time and pid instead; the chain still verifies.
    const std::string seed =
        std::to_string(::getpid()) + "/" +
        std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
    return Sha256Hex(seed);
  }
  return Hex(bytes.data(), bytes.size());
}

uint64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Errno(int e) { return std::strerror(e); }

// The last line of the file open on `fd` (`size` bytes), without its newline, and whether the
// file ends with a newline (false: the last line was cut short, e.g. by a full disk).
Status ReadLastLine(int fd, uint64_t size, std::string* line, bool* ends_with_newline) {
  line->clear();
  *ends_with_newline = true;
  if (size == 0) return Status::Ok();
  std::string tail;  // the bytes read so far, from some offset to the end
  uint64_t offset = size;
  constexpr uint64_t kChunk = 4096;
  for (;;) {
    const uint64_t n = std::min<uint64_t>(kChunk, offset);
    offset -= n;
    std::string chunk(n, '\0');
    size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd, chunk.data() + got, n - got, offset + got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return Status::IoError("cannot read the last line: " + Errno(errno));
      got += static_cast<size_t>(r);
    }
    tail.insert(0, chunk);
    // The newline that ends the line before the last one: skip a final newline.
    const size_t search_end = tail.size() - (tail.back() == '\n' && offset + tail.size() == size);
    const size_t nl = search_end == 0 ? std::string::npos : tail.rfind('\n', search_end - 1);
    if (nl != std::string::npos || offset == 0) {
      *ends_with_newline = tail.back() == '\n';
      const size_t begin = nl == std::string::npos ? 0 : nl + 1;
      line->assign(tail, begin, search_end - begin);
      return Status::Ok();
    }
    if (tail.size() > kMaxLineBytes) {
      return Status::IoError("the last line is over 16 MiB: not an audit log");
    }
  }
}

// The `seq` of a line we wrote, 0 when it has none (not ours, or cut short).
uint64_t SeqOf(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return 0;
  const json::value* seq = v.as_object().if_contains("seq");
  if (seq == nullptr) return 0;
  if (seq->is_uint64()) return seq->as_uint64();
  if (seq->is_int64() && seq->as_int64() > 0) return static_cast<uint64_t>(seq->as_int64());
  return 0;
}

bool IsHex64(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &n, EVP_sha256(), nullptr) != 1) return "";
  return Hex(digest, n);
}

std::vector<std::string> MaskArguments(const std::vector<std::string>& args) {
  // The password of every scheme://user:PASSWORD@host in `s`; the authority ends at / ? # or
  // ',' (items of a --mirror spec follow its URL).
  auto mask_urls = [](std::string s) {
    size_t from = 0;
    while ((from = s.find("://", from)) != std::string::npos) {
      const size_t start = from + 3;
      size_t end = s.find_first_of("/?#,", start);
      if (end == std::string::npos) end = s.size();
      const size_t at = s.rfind('@', end == 0 ? 0 : end - 1);
      if (at != std::string::npos && at >= start) {
        const size_t colon = s.find(':', start);
        if (colon != std::string::npos && colon < at) s.replace(colon + 1, at - colon - 1, "***");
      }
      from = start;
    }
    return s;
  };
  // "Name=VALUE" or "Name:VALUE" -> "Name=***" / "Name:***".
  auto mask_header_value = [](const std::string& v) {
    const size_t sep = v.find_first_of("=:");
    return sep == std::string::npos ? std::string("***") : v.substr(0, sep + 1) + "***";
  };
  // The set-header=Name:VALUE items of a --mirror spec.
  auto mask_mirror_spec = [&](const std::string& spec) {
    std::string out;
    size_t pos = 0;
    while (pos <= spec.size()) {
      size_t comma = spec.find(',', pos);
      // "\," is a literal comma inside an item (net::SplitItems).
      while (comma != std::string::npos && comma > 0 && spec[comma - 1] == '\\') {
        comma = spec.find(',', comma + 1);
      }
      const std::string item =
          spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      if (!out.empty() || pos > 0) out += ',';
      if (item.rfind("set-header=", 0) == 0) {
        out += "set-header=" + mask_header_value(item.substr(11));
      } else {
        out += item;
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    return out;
  };
  enum class Secret { kNone, kHeader, kMirror };
  auto secret_of = [](std::string_view flag) {
    if (flag == "--set-header" || flag == "--mirror-set-header") return Secret::kHeader;
    if (flag == "--mirror") return Secret::kMirror;
    return Secret::kNone;
  };
  auto mask_value = [&](Secret kind, const std::string& value) {
    switch (kind) {
      case Secret::kHeader:
        return mask_header_value(value);
      case Secret::kMirror:
        return mask_mirror_spec(value);
      case Secret::kNone:
        break;
    }
    return value;
  };

  std::vector<std::string> out;
  out.reserve(args.size());
  Secret pending = Secret::kNone;  // the previous argument was a flag whose value is secret
  for (const std::string& raw : args) {
    const std::string arg = mask_urls(raw);
    if (pending != Secret::kNone) {
      out.push_back(mask_value(pending, arg));
      pending = Secret::kNone;
      continue;
    }
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      const Secret kind = secret_of(std::string_view(arg).substr(0, eq));
      out.push_back(kind == Secret::kNone
                        ? arg
                        : arg.substr(0, eq + 1) + mask_value(kind, arg.substr(eq + 1)));
      continue;
    }
    pending = secret_of(arg);
    out.push_back(arg);
  }
  return out;
}

// ---------------------------------------------------------------- AuditLog

AuditLog::AuditLog(std::string where, int fd) : where_(std::move(where)), fd_(fd) {
  uid_ = ::getuid();
  pid_ = ::getpid();
  std::array<char, 4096> buf{};
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid_, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    user_ = found->pw_name;
  }
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) == 0) host_ = host.data();
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
  if (syslog_fd_ >= 0) ::close(syslog_fd_);
}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& where) {
  if (where.empty()) return Status::InvalidArgument("--audit-log needs a file name, or syslog");
  if (where == "syslog" || where.rfind("syslog:", 0) == 0) {
    auto log = std::unique_ptr<AuditLog>(new AuditLog(where, -1));
    log->syslog_socket_ = where == "syslog" ? kSyslogSocket : where.substr(7);
    if (log->syslog_socket_.empty() || log->syslog_socket_.size() >= sizeof(sockaddr_un{}.sun_path))
      return Status::InvalidArgument("--audit-log '" + where +
                                     "': syslog:SOCKET wants the path of a Unix socket");
    return log;
  }
  // Read and write: each append reads the last line to chain to it.
  const int fd = ::open(where.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::InvalidArgument("--audit-log '" + where +
                                   "': cannot open it to read and append: " + Errno(errno) +
                                   "; give a writable file, or syslog");
  }
  return std::unique_ptr<AuditLog>(new AuditLog(where, fd));
}

uint64_t AuditLog::failed_writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_;
}

std::string AuditLog::Compose(const json::object& entry, const std::string& prev, uint64_t seq,
                              bool start) const {
  json::object line;
  line["time"] = FormatUtc(static_cast<int64_t>(NowUs()), 3);
  line["user"] = json::object{{"uid", uid_}, {"name", user_}};
  line["host"] = host_;
  line["pid"] = pid_;
  for (const auto& [key, value] : entry) {
    if (key == "seq" || key == "prev" || key == "chain") continue;
    line[key] = value;
  }
  if (start) line["chain"] = "start";
  line["seq"] = seq;
  line["prev"] = prev;
  return json::serialize(line);
}

Status AuditLog::Append(const json::object& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  Status s;
  if (fd_ < 0) {
    const bool start = syslog_seq_ == 0;
    if (start) syslog_prev_ = Nonce();
    const std::string line = Compose(entry, syslog_prev_, ++syslog_seq_, start);
    // The chain goes on from this line even when it was not delivered: the next line's
    // `prev` then shows that one is missing.
    syslog_prev_ = Sha256Hex(line);
    s = SendToSyslog(line);
    if (!s.ok()) ++failed_;
    return s;
  }
  s = AppendToFile(entry);
  if (!s.ok()) ++failed_;
  return s;
}

// As syslog(3) writes a message to the local syslog socket: "<PRI>Mmm dd hh:mm:ss
// doppel-audit[PID]: LINE" (RFC 3164, local time), one datagram; a stream socket (some
// daemons) gets the message and a NUL. Never blocks: a daemon that does not keep up costs a
// counted line, not a stalled command.
Status AuditLog::SendToSyslog(const std::string& line) {
  char stamp[32] = "";
  const time_t now = ::time(nullptr);
  tm local{};
  if (::localtime_r(&now, &local) != nullptr)
    std::strftime(stamp, sizeof stamp, "%h %e %T", &local);
  std::string message = "<" + std::to_string(LOG_AUTHPRIV | LOG_NOTICE) + ">" + stamp +
                        " doppel-audit[" + std::to_string(pid_) + "]: " + line;
  int error = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {  // a second time after a reconnect
    if (syslog_fd_ < 0) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      syslog_socket_.copy(addr.sun_path, sizeof addr.sun_path - 1);
      for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
        syslog_fd_ = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (syslog_fd_ < 0) {
          error = errno;
          break;
        }
        if (::connect(syslog_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
          syslog_stream_ = type == SOCK_STREAM;
          break;
        }
        error = errno;
        ::close(syslog_fd_);
        syslog_fd_ = -1;
        if (error != EPROTOTYPE) break;  // a stream socket refuses datagram clients so
      }
      if (syslog_fd_ < 0) continue;
    }
    const size_t size = message.size() + (syslog_stream_ ? 1 : 0);  // c_str()'s NUL
    const ssize_t n = ::send(syslog_fd_, message.c_str(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(size)) return Status::Ok();
    error = n < 0 ? errno : EMSGSIZE;
    ::close(syslog_fd_);
    syslog_fd_ = -1;
  }
  return Status::IoError("audit log: syslog socket " + syslog_socket_ + ": " + Errno(error) +
                         "; line not written");
}

Status AuditLog::AppendToFile(const json::object& entry) {
  // Another process's lock: wait for it a bounded time, never forever.
  const auto deadline = std::chrono::steady_clock::now() + kLockWait;
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return Status::IoError("audit log '" + where_ + "': cannot lock it: " + Errno(errno));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::IoError("audit log '" + where_ + "': another process held its lock for " +
                             std::to_string(kLockWait.count()) + " ms; line not written");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::flock(fd, LOCK_UN); }
  } unlock{fd_};

  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    return Status::IoError("audit log '" + where_ + "': " + Errno(errno));
  }
  std::string last;
  bool ends_with_newline = true;
  // A character device (/dev/full, /dev/null) has no last line: a new chain each time.
  const uint64_t size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  DOPPEL_RETURN_IF_ERROR(
      ReadLastLine(fd_, size, &last, &ends_with_newline).WithContext("audit log '" + where_ + "'"));
  std::string text;
  if (size == 0) {
    text = Compose(entry, Nonce(), 1, true);
  } else {
    // After a line cut short (a full disk, a crash mid-write) the new line starts on a line of
    // its own and chains to the cut one; the verifier reports the cut line.
    if (!ends_with_newline) text = "\n";
    text += Compose(entry, Sha256Hex(last), SeqOf(last) + 1, false);
  }
  text += '\n';
  // One write: with O_APPEND the kernel puts it at the end in one piece.
  const ssize_t n = ::write(fd_, text.data(), text.size());
  if (n < 0) return Status::IoError("audit log '" + where_ + "': " + Errno(errno));
  if (static_cast<size_t>(n) != text.size()) {
    return Status::IoError("audit log '" + where_ + "': only " + std::to_string(n) + " of " +
                           std::to_string(text.size()) + " bytes written (disk full?)");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- verification

AuditVerdict VerifyAuditText(std::string_view text) {
  AuditVerdict v;
  auto bad = [&](uint64_t line, std::string problem) {
    v.intact = false;
    v.bad_line = line;
    v.problem = std::move(problem);
    return v;
  };
  std::string prev_line;
  uint64_t prev_seq = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const uint64_t n = ++v.lines;
    const std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    const std::string where = "line " + std::to_string(n);
    if (nl == std::string_view::npos) {
      return bad(n, where +
                        " has no newline: the file was cut short here (a full disk, a crash "
                        "or a truncation)");
    }
    pos = nl + 1;
    boost::system::error_code ec;
    json::value parsed = json::parse(line, ec);
    if (ec || !parsed.is_object()) {
      return bad(n, where + " is not a JSON object: it was edited or cut short");
    }
    const json::object& o = parsed.as_object();
    const json::value* prev = o.if_contains("prev");
    const json::value* seq = o.if_contains("seq");
    const json::value* chain = o.if_contains("chain");
    const bool start = chain != nullptr && chain->is_string() && chain->as_string() == "start";
    if (prev == nullptr || !prev->is_string() || !IsHex64(prev->as_string())) {
      return bad(n, where + " has no \"prev\" hash: it is not an audit line, or was edited");
    }
    const uint64_t s = SeqOf(line);
    if (seq == nullptr || s == 0) {
      return bad(n, where + " has no \"seq\": it is not an audit line, or was edited");
    }
    if (n == 1) {
      if (!start || s != 1) {
        return bad(n, where + " is entry " + std::to_string(s) +
                          " of its chain, not the first: the lines before it were removed");
      }
    } else if (start || s != prev_seq + 1) {
      if (s > prev_seq + 1) {
        return bad(n, where + " is entry " + std::to_string(s) + " but follows entry " +
                          std::to_string(prev_seq) + ": " + std::to_string(s - prev_seq - 1) +
                          " line(s) before it were removed, or lines were reordered");
      }
      return bad(n, where + " is entry " + std::to_string(s) + " but follows entry " +
                        std::to_string(prev_seq) + ": lines were reordered or copied in");
    } else if (prev->as_string() != Sha256Hex(prev_line)) {
      return bad(n - 1, "line " + std::to_string(n - 1) +
                            " was changed: its SHA-256 is not the one line " + std::to_string(n) +
                            " recorded as \"prev\"");
    }
    prev_line.assign(line);
    prev_seq = s;
  }
  v.intact = true;
  if (v.lines > 0) v.last_hash = Sha256Hex(prev_line);
  return v;
}

Result<AuditVerdict> VerifyAuditFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot read '" + path + "': " + Errno(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return Status::IoError("cannot read '" + path + "': " + Errno(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return VerifyAuditText(text);
}

}  // namespace doppel::audit
