#include "diff/decode.h"

#include "base/strings.h"
#include "net/codings.h"

namespace doppel::diff {

std::string CharsetOf(std::string_view content_type) {
  std::string lower = AsciiLower(content_type);
  size_t pos = 0;
  while ((pos = lower.find(';', pos)) != std::string::npos) {
    ++pos;
    std::string_view param = TrimSpaces(std::string_view(lower).substr(pos));
    if (param.substr(0, 7) != "charset") continue;
    param.remove_prefix(7);
    param = TrimSpaces(param);
    if (param.empty() || param.front() != '=') continue;
    param.remove_prefix(1);
    param = TrimSpaces(param);
    size_t end = param.find(';');
    param = TrimSpaces(param.substr(0, end));
    if (param.size() >= 2 && param.front() == '"' && param.back() == '"') {
      param = param.substr(1, param.size() - 2);
    }
    return std::string(param);
  }
  return {};
}

bool IsLatin1Charset(std::string_view charset) {
  std::string c = AsciiLower(charset);
  return c == "iso-8859-1" || c == "iso_8859-1" || c == "iso8859-1" || c == "latin1" ||
         c == "latin-1" || c == "l1" || c == "iso-ir-100" || c == "cp819" || c == "iso_8859-1:1987";
}

std::string Latin1ToUtf8(std::string_view latin1) {
  std::string out;
  out.reserve(latin1.size() + latin1.size() / 8);
  for (char ch : latin1) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

Result<std::string> DecodeBody(std::string_view body, std::string_view content_encoding,
                               std::string_view content_type, size_t max_output_bytes) {
  Result<std::string> decoded = net::DecodeContent(body, content_encoding, max_output_bytes);
  if (!decoded.ok()) return decoded;
  if (IsLatin1Charset(CharsetOf(content_type))) return Latin1ToUtf8(decoded.value());
  return decoded;
}

}  // namespace doppel::diff
