// What a comparison reports: field differences, and the paths that were normalized or
// ignored instead of being reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/enum_names.h"

namespace doppel::diff {

enum class DiffKind {
  kMissing,     // present in expected (the recording), absent in actual
  kExtra,       // absent in expected, present in actual
  kType,        // different JSON types (number vs string, object vs array, ...)
  kValue,       // same type, different value (also: status, header values, text lines, bytes)
  kArraySize,   // arrays compared by index have different lengths
  kOrder,       // arrays hold the same elements in a different order
  kUncompared,  // could not be compared: undecodable body, nesting or size limit, truncation
  kMaxValue = kUncompared,
};

// Ordered: a higher severity is worse. kHigh = something the client relied on is gone or
// changed type (missing, type, shrunk array); kMedium = a value changed; kLow = something
// was added (extra, grown array).
enum class Severity { kLow = 0, kMedium = 1, kHigh = 2, kMaxValue = kHigh };

inline constexpr EnumNames<DiffKind, 7> kDiffKindNames{
    {"missing", "extra", "type", "value", "array-size", "order", "uncompared"}};
inline constexpr EnumNames<Severity, 3> kSeverityNames{{"low", "medium", "high"}};
std::string_view KindName(DiffKind kind);          // kDiffKindNames.Name(kind)
std::string_view SeverityName(Severity severity);  // kSeverityNames.Name(severity)
// The default severity of a kind (kArraySize depends on the direction; see result.cc).
Severity DefaultSeverity(DiffKind kind);

struct FieldDiff {
  std::string path;  // "status", "headers.etag", "body.items[3].price", "body"
  DiffKind kind;
  Severity severity;
  std::string expected;  // short rendering (bounded length), empty when absent
  std::string actual;
  std::string detail;  // optional: line ranges of a text hunk, why something is uncompared
};

struct DiffResult {
  bool match = true;             // no FieldDiff at all
  std::vector<FieldDiff> diffs;  // at most DiffConfig::max_diffs
  uint64_t omitted_diffs = 0;    // differences found beyond max_diffs
  // Paths whose values differed but compared equal after a normalizer (timestamp, UUID,
  // ULID, JWT, epoch) — e.g. "body.created_at".
  std::vector<std::string> normalized;
  // Paths whose values differed (or were present on one side only) but an ignore rule or
  // the default header ignore list suppressed the difference — e.g. "headers.date".
  std::vector<std::string> ignored;
  uint64_t omitted_paths = 0;  // normalized/ignored paths beyond max_listed_paths
  std::string endpoint;        // "GET /users/{id}"
};

// Collects differences into a DiffResult, enforcing the caps. Not thread-safe: one per
// comparison.
class DiffSink {
 public:
  DiffSink(DiffResult* result, size_t max_diffs, size_t max_listed_paths)
      : result_(result), max_diffs_(max_diffs), max_listed_paths_(max_listed_paths) {}

  void Add(FieldDiff diff);
  void Add(std::string path, DiffKind kind, std::string expected, std::string actual,
           std::string detail = {});
  void Normalized(std::string path);
  void Ignored(std::string path);
  // True once max_diffs are kept: callers may skip rendering and call Omit() instead.
  bool full() const { return result_->diffs.size() >= max_diffs_; }
  // Counts a difference without keeping it.
  void Omit() {
    result_->match = false;
    ++result_->omitted_diffs;
  }

 private:
  DiffResult* result_;
  size_t max_diffs_;
  size_t max_listed_paths_;
};

// Shortens `text` to at most `max_bytes` (never splitting a UTF-8 sequence), marking a cut
// with "…".
std::string Abbreviate(std::string_view text, size_t max_bytes = 120);

}  // namespace doppel::diff
