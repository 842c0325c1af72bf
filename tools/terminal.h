// Terminal output for the tools: tables and progress bars that degrade to plain lines when stdout is not
// a terminal (pipes, logs, CI), so scripts can read them line by line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dispatch::tools {

// True when stdout is a terminal (isatty).
bool stdout_is_tty();

// A table: a header row and data rows (short rows are padded with empty cells).
struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
};

// tty: aligned columns separated by two spaces, header underlined with '-', one row per line; cells are
// shown on one line (newlines become "\n" escapes) and cut at max_cell characters with "...".
// Not a tty: one line per row, "column=value" pairs separated by spaces, values with spaces or quotes
// quoted with '"' and escaped (so the output stays one record per line).
std::string render_table(const Table& table, bool tty, std::size_t max_cell = 60);

// "[#########.........]  45.0%" with width characters between the brackets; fraction is clamped to 0..1.
std::string render_bar(double fraction, int width = 30);

// "1h02m", "3m05s", "42s"; negative → "-".
std::string format_duration(std::int64_t seconds);

// Bytes as "512 B", "1.5 KiB", "3.2 MiB", "1.1 GiB".
std::string format_bytes(std::uint64_t bytes);

}  // namespace dispatch::tools
