#include "tools/terminal.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

namespace dispatch::tools {

bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

namespace {

std::string one_line(const std::string& s, std::size_t max_cell) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r' || c == '\t') {
      out += ' ';
    } else {
      out += c;
    }
  }
  if (max_cell > 3 && out.size() > max_cell) out = out.substr(0, max_cell - 3) + "...";
  return out;
}

std::string quoted_if_needed(const std::string& s) {
  bool needs = s.empty() || s.find_first_of(" \"\\\n\r\t=") != std::string::npos;
  if (!needs) return s;
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
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
        out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string render_table(const Table& table, bool tty, std::size_t max_cell) {
  std::string out;
  const auto cell = [&](const std::vector<std::string>& row, std::size_t i) -> std::string {
    return i < row.size() ? row[i] : std::string();
  };
  if (!tty) {
    for (const auto& row : table.rows) {
      for (std::size_t i = 0; i < table.columns.size(); ++i) {
        if (i) out += ' ';
        out += table.columns[i] + "=" + quoted_if_needed(cell(row, i));
      }
      out += '\n';
    }
    return out;
  }
  std::vector<std::size_t> width(table.columns.size());
  for (std::size_t i = 0; i < table.columns.size(); ++i) width[i] = table.columns[i].size();
  std::vector<std::vector<std::string>> shown;
  for (const auto& row : table.rows) {
    std::vector<std::string> r;
    for (std::size_t i = 0; i < table.columns.size(); ++i) {
      r.push_back(one_line(cell(row, i), max_cell));
      width[i] = std::max(width[i], r.back().size());
    }
    shown.push_back(std::move(r));
  }
  const auto line = [&](const std::vector<std::string>& r) {
    std::string l;
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (i) l += "  ";
      l += i + 1 == r.size() ? r[i] : fmt::format("{:<{}}", r[i], width[i]);
    }
    return l + "\n";
  };
  out += line(table.columns);
  std::vector<std::string> rule;
  for (auto w : width) rule.push_back(std::string(w, '-'));
  out += line(rule);
  for (const auto& r : shown) out += line(r);
  return out;
}

std::string render_bar(double fraction, int width) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  int filled = static_cast<int>(fraction * width + 0.5);
  return fmt::format("[{}{}] {:5.1f}%", std::string(static_cast<std::size_t>(filled), '#'),
                     std::string(static_cast<std::size_t>(width - filled), '.'), fraction * 100.0);
}

std::string format_duration(std::int64_t seconds) {
  if (seconds < 0) return "-";
  if (seconds >= 3600) return fmt::format("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60);
  if (seconds >= 60) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
  return fmt::format("{}s", seconds);
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

}  // namespace dispatch::tools
