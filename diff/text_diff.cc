#include "diff/text_diff.h"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace doppel::diff {
namespace {

enum class EditType { kDelete, kInsert };
struct Edit {
  EditType type;
  size_t x, y;  // position before the edit
};

// Minimal edit script by Myers' greedy algorithm; false when over budget.
bool Myers(const std::vector<int>& a, const std::vector<int>& b, const LineDiffOptions& options,
           std::vector<Edit>* edits) {
  const long n = static_cast<long>(a.size()), m = static_cast<long>(b.size());
  const long max_d = std::min<long>(n + m, static_cast<long>(options.max_edit_distance));
  std::vector<long> v(2 * max_d + 3, 0);
  const long off = max_d + 1;
  std::vector<std::vector<long>> trace;
  size_t work = 0;
  long found_d = -1;
  for (long d = 0; d <= max_d && found_d < 0; ++d) {
    for (long k = -d; k <= d; k += 2) {
      long x = (k == -d || (k != d && v[off + k - 1] < v[off + k + 1])) ? v[off + k + 1]
                                                                        : v[off + k - 1] + 1;
      long y = x - k;
      while (x < n && y < m && a[x] == b[y]) {
        ++x;
        ++y;
        ++work;
      }
      v[off + k] = x;
      ++work;
      if (x >= n && y >= m) {
        found_d = d;
        break;
      }
    }
    trace.emplace_back(v.begin() + off - d, v.begin() + off + d + 1);
    if (work > options.max_work) return false;
  }
  if (found_d < 0) return false;
  long x = n, y = m;
  for (long d = found_d; d > 0; --d) {
    const std::vector<long>& pv = trace[d - 1];  // pv[k + d - 1] = V[k] after round d-1
    auto V = [&pv, d](long k) { return pv[k + d - 1]; };
    long k = x - y;
    long prev_k = (k == -d || (k != d && V(k - 1) < V(k + 1))) ? k + 1 : k - 1;
    long prev_x = V(prev_k);
    long prev_y = prev_x - prev_k;
    while (x > prev_x && y > prev_y) {
      --x;
      --y;
    }
    if (prev_k == k + 1) {
      edits->push_back(
          {EditType::kInsert, static_cast<size_t>(prev_x), static_cast<size_t>(prev_y)});
    } else {
      edits->push_back(
          {EditType::kDelete, static_cast<size_t>(prev_x), static_cast<size_t>(prev_y)});
    }
    x = prev_x;
    y = prev_y;
  }
  std::reverse(edits->begin(), edits->end());
  return true;
}

std::string JoinLines(const std::vector<std::string_view>& lines, size_t begin, size_t count,
                      char separator) {
  std::string out;
  for (size_t i = begin; i < begin + count; ++i) {
    if (i > begin) out.push_back(separator);
    out.append(lines[i]);
    if (out.size() > 4096) break;  // only an abbreviation is kept
  }
  return out;
}

}  // namespace

std::vector<std::string_view> SplitLines(std::string_view text, char separator) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    std::string_view line =
        text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (separator == '\n' && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (end == std::string_view::npos) return lines;
    start = end + 1;
  }
}

std::vector<LineHunk> DiffLines(const std::vector<std::string_view>& expected,
                                const std::vector<std::string_view>& actual,
                                const LineDiffOptions& options, bool* approximate) {
  if (approximate) *approximate = false;
  size_t prefix = 0;
  while (prefix < expected.size() && prefix < actual.size() && expected[prefix] == actual[prefix]) {
    ++prefix;
  }
  size_t suffix = 0;
  while (suffix < expected.size() - prefix && suffix < actual.size() - prefix &&
         expected[expected.size() - 1 - suffix] == actual[actual.size() - 1 - suffix]) {
    ++suffix;
  }
  const size_t n = expected.size() - prefix - suffix, m = actual.size() - prefix - suffix;
  if (n == 0 && m == 0) return {};
  // Lines become small integers so the inner loop compares ints.
  std::unordered_map<std::string_view, int> ids;
  std::vector<int> a(n), b(m);
  for (size_t i = 0; i < n; ++i) a[i] = ids.emplace(expected[prefix + i], ids.size()).first->second;
  for (size_t i = 0; i < m; ++i) b[i] = ids.emplace(actual[prefix + i], ids.size()).first->second;
  std::vector<Edit> edits;
  if (!Myers(a, b, options, &edits)) {
    if (approximate) *approximate = true;
    return {LineHunk{prefix, n, prefix, m}};
  }
  std::vector<LineHunk> hunks;
  size_t end_x = SIZE_MAX, end_y = SIZE_MAX;
  for (const Edit& e : edits) {
    if (hunks.empty() || e.x != end_x || e.y != end_y) {
      hunks.push_back(LineHunk{prefix + e.x, 0, prefix + e.y, 0});
      end_x = e.x;
      end_y = e.y;
    }
    if (e.type == EditType::kDelete) {
      ++hunks.back().expected_count;
      ++end_x;
    } else {
      ++hunks.back().actual_count;
      ++end_y;
    }
  }
  return hunks;
}

void ReportTextDiff(std::string_view expected, std::string_view actual, std::string_view path,
                    const LineDiffOptions& options, DiffSink* sink) {
  if (expected == actual) return;
  std::vector<std::string_view> el = SplitLines(expected, options.separator);
  std::vector<std::string_view> al = SplitLines(actual, options.separator);
  bool approximate = false;
  for (const LineHunk& h : DiffLines(el, al, options, &approximate)) {
    // Unified-diff numbering: 1-based start; an empty range names the line before it.
    size_t es = h.expected_count ? h.expected_begin + 1 : h.expected_begin;
    size_t as = h.actual_count ? h.actual_begin + 1 : h.actual_begin;
    std::string detail = "@@ -" + std::to_string(es) + "," + std::to_string(h.expected_count) +
                         " +" + std::to_string(as) + "," + std::to_string(h.actual_count) + " @@";
    if (approximate) detail += " (approximate: diff effort bound reached)";
    sink->Add(std::string(path), DiffKind::kValue,
              Abbreviate(JoinLines(el, h.expected_begin, h.expected_count, options.separator),
                         options.max_rendered_bytes),
              Abbreviate(JoinLines(al, h.actual_begin, h.actual_count, options.separator),
                         options.max_rendered_bytes),
              std::move(detail));
  }
}

}  // namespace doppel::diff
