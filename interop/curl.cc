// One envelope as a curl command (doppel export --format curl).
#include <string>

#include "base/strings.h"
#include "interop/envelope_json.h"
#include "interop/internal.h"
#include "interop/interop.h"
#include "net/proto_headers.h"
#include "net/url.h"
#include "storage/proxy_error.h"

namespace doppel::interop {
namespace {

// Larger bodies go through a here-document: one argv string may not exceed 128 KiB on Linux.
constexpr size_t kMaxInlineBody = 64 << 10;

bool IsControl(unsigned char c) { return (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f; }

bool IsPlainWord(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// For comments: control characters shown as \xHH, so a value can never end the comment line.
std::string Printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return IsValidUtf8(out) ? out : "<" + std::to_string(s.size()) + " bytes, not UTF-8>";
}

std::string Wrap(const std::string& b64) {
  std::string out;
  for (size_t i = 0; i < b64.size(); i += 76) out += b64.substr(i, 76) + "\n";
  return out;
}

}  // namespace

std::string ShellQuote(std::string_view s) {
  bool special = !IsValidUtf8(s);
  for (unsigned char c : s) special |= IsControl(c);
  if (!special) {
    if (IsPlainWord(s)) return std::string(s);
    std::string out = "'";
    for (char c : s) {
      if (c == '\'')
        out += "'\\''";
      else
        out += c;
    }
    return out + "'";
  }
  // ANSI-C quoting (bash, zsh, ksh): every byte exact, nothing expanded. '!' is escaped too,
  // so interactive history expansion cannot touch it.
  static constexpr char kHex[] = "0123456789abcdef";
  const bool utf8 = IsValidUtf8(s);
  std::string out = "$'";
  for (unsigned char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\'':
        out += "\\'";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f || c == '!' || (c >= 0x80 && !utf8)) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "'";
}

Result<std::string> CurlCommand(const doppel::v1::Envelope& e, const CurlOptions& options) {
  if (storage::ProxyRefused(e)) {
    std::string why = doppel::v1::ProxyError_Name(e.error());
    if (why.empty()) why = "error " + std::to_string(e.error());
    if (!e.error_detail().empty()) why += ": " + Printable(e.error_detail());
    return Status::InvalidArgument("envelope " + FormatEnvelopeId(e) +
                                   " was refused by the recording proxy (" + why +
                                   ") and never reached the primary: there is no request to send");
  }
  const auto& req = e.request();
  std::string comments = "# doppel envelope " + FormatEnvelopeId(e) + ", recorded " +
                         internal::FormatIso8601Us(e.arrival_us()) + "\n";
  const std::string* host = net::FindHeader(req.headers(), "Host");

  std::string url;
  if (!options.target.empty()) {
    auto target = net::ParseUrl(options.target);
    if (!target.ok()) return target.status().WithContext("--target");
    url = target->scheme + "://" + target->Authority() + target->TargetFor(req.target());
    if (host) comments += "# recorded Host: " + Printable(*host) + " (curl sends the target's)\n";
  } else if (req.target().rfind("http://", 0) == 0 || req.target().rfind("https://", 0) == 0) {
    url = req.target();
  } else {
    if (!host || host->empty())
      return Status::InvalidArgument("envelope " + FormatEnvelopeId(e) +
                                     " has no Host header: give --target URL to send it to");
    url = (e.scheme().empty() ? std::string("http") : e.scheme()) + "://" + *host +
          (!req.target().empty() && req.target()[0] == '/' ? "" : "/") + req.target();
  }

  std::string args;
  auto arg = [&](const std::string& a) { args += " \\\n  " + a; };
  const bool head = req.method() == "HEAD";
  const bool has_body = !head && (!req.body().empty() || req.body_truncated());
  if (head) {
    arg("--head");
  } else if (req.method() != "GET" || has_body) {
    // --data-binary makes a POST by itself; -X there would only draw a curl warning.
    if (!(req.method() == "POST" && has_body)) arg("-X " + ShellQuote(req.method()));
  }
  if (req.version() == 10) arg("--http1.0");
  arg(ShellQuote(url));

  bool content_type = false;
  for (const auto& h : req.headers()) {
    const std::string& name = h.name();
    if (EqualsIgnoreCase(name, "Host") || EqualsIgnoreCase(name, "Content-Length") ||
        EqualsIgnoreCase(name, "Transfer-Encoding") || EqualsIgnoreCase(name, "Expect"))
      continue;
    if (h.value().rfind("hmac:", 0) == 0) {
      comments += "# " + Printable(name) + ": left out, it was redacted when recorded; add -H '" +
                  Printable(name) + ": <real value>'\n";
      continue;
    }
    bool bad_name = name.empty() || name.find_first_of(":;\r\n \t") != std::string::npos;
    bool bad_value = h.value().find_first_of("\r\n") != std::string::npos ||
                     h.value().find('\0') != std::string::npos;
    if (bad_name || bad_value) {
      comments += "# " + Printable(name) + ": left out, its " + (bad_name ? "name" : "value") +
                  " cannot go into a header line: " + Printable(h.value()) + "\n";
      continue;
    }
    content_type |= EqualsIgnoreCase(name, "Content-Type");
    // curl drops a header given as "Name:" with nothing after it; "Name;" sends it empty.
    arg("-H " + ShellQuote(h.value().empty() ? name + ";" : name + ": " + h.value()));
  }

  std::string prefix, here_doc;
  if (has_body) {
    const std::string& body = req.body();
    // Without a recorded Content-Type, stop curl from adding its form default.
    if (!content_type) arg("-H 'Content-Type:'");
    if (req.body_truncated())
      comments += "# the body was cut when recorded: this sends the " +
                  std::to_string(body.size()) + " recorded bytes of " +
                  std::to_string(req.body_size()) + "\n";
    if (IsValidUtf8(body) && body.find('\0') == std::string::npos &&
        body.size() <= kMaxInlineBody) {
      arg("--data-binary " + ShellQuote(body));
    } else {
      // Exact bytes for any body: base64 in a here-document, decoded into curl's stdin.
      prefix = "base64 -d <<'DOPPEL_BODY' | ";
      arg("--data-binary @-");
      here_doc = Wrap(Base64Encode(body)) + "DOPPEL_BODY\n";
    }
  }
  return comments + prefix + "curl --globoff --path-as-is -sS" + args + "\n" + here_doc;
}

}  // namespace doppel::interop
