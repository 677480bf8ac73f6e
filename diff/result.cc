#include "diff/result.h"

#include <utility>

namespace doppel::diff {

std::string_view KindName(DiffKind kind) { return kDiffKindNames.Name(kind); }
std::string_view SeverityName(Severity severity) { return kSeverityNames.Name(severity); }

Severity DefaultSeverity(DiffKind kind) {
  switch (kind) {
    case DiffKind::kMissing:
    case DiffKind::kType:
    case DiffKind::kArraySize:  // callers lower it to kLow when the array grew
      return Severity::kHigh;
    case DiffKind::kExtra:
      return Severity::kLow;
    case DiffKind::kValue:
    case DiffKind::kOrder:
    case DiffKind::kUncompared:
      return Severity::kMedium;
  }
  return Severity::kMedium;
}

void DiffSink::Add(FieldDiff diff) {
  if (full()) return Omit();
  result_->match = false;
  result_->diffs.push_back(std::move(diff));
}

void DiffSink::Add(std::string path, DiffKind kind, std::string expected, std::string actual,
                   std::string detail) {
  Add(FieldDiff{std::move(path), kind, DefaultSeverity(kind), std::move(expected),
                std::move(actual), std::move(detail)});
}

void DiffSink::Normalized(std::string path) {
  if (result_->normalized.size() >= max_listed_paths_) {
    ++result_->omitted_paths;
    return;
  }
  result_->normalized.push_back(std::move(path));
}

void DiffSink::Ignored(std::string path) {
  if (result_->ignored.size() >= max_listed_paths_) {
    ++result_->omitted_paths;
    return;
  }
  result_->ignored.push_back(std::move(path));
}

std::string Abbreviate(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes;
  // Back up over UTF-8 continuation bytes so the cut lands on a character boundary.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  std::string out(text.substr(0, cut));
  out += "\xE2\x80\xA6";  // "…"
  return out;
}

}  // namespace doppel::diff
