// A small, strict parser of the Prometheus text exposition format (0.0.4) for tests: what a scraper
// would reject, this reports. Checks: # HELP / # TYPE before a family's samples and at most once each; a
// sample's name is its family's (histograms: _bucket, _sum, _count); valid metric and label names;
// quoted label values with only \\, \" and \n escapes; numeric values (+Inf, -Inf, NaN allowed);
// no duplicate series; counters named *_total; every histogram's buckets cumulative, with an le label,
// ending in le="+Inf" equal to its _count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace dispatch::testing {

struct PromText {
  std::map<std::string, std::string> types;  // family -> counter | gauge | histogram | …
  // "name{k="v",…}" with labels sorted by name -> value
  std::map<std::string, double> series;
  std::vector<std::string> errors;

  // The value of a series (labels in any order), or nullopt.
  std::optional<double> value(const std::string& name,
                              std::vector<std::pair<std::string, std::string>> labels = {}) const {
    auto it = series.find(key(name, std::move(labels)));
    if (it == series.end()) return std::nullopt;
    return it->second;
  }
  // The value, or 0 when the series is absent (a counter that has not counted yet).
  double value_or_zero(const std::string& name,
                       std::vector<std::pair<std::string, std::string>> labels = {}) const {
    return value(name, std::move(labels)).value_or(0);
  }

  static std::string key(const std::string& name, std::vector<std::pair<std::string, std::string>> labels) {
    std::sort(labels.begin(), labels.end());
    std::string k = name + "{";
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) k += ",";
      k += labels[i].first + "=\"" + labels[i].second + "\"";
    }
    return k + "}";
  }
};

namespace prom_detail {

inline bool name_char(char c, bool first, bool colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
  return alpha || (!first && c >= '0' && c <= '9');
}

inline bool valid_name(const std::string& n, bool colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i)
    if (!name_char(n[i], i == 0, colon)) return false;
  return true;
}

inline std::optional<double> parse_value(const std::string& v) {
  if (v == "+Inf") return HUGE_VAL;
  if (v == "-Inf") return -HUGE_VAL;
  if (v == "NaN") return std::nan("");
  if (v.empty()) return std::nullopt;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return d;
}

}  // namespace prom_detail

inline PromText parse_prom_text(const std::string& text) {
  using namespace prom_detail;
  PromText out;
  std::set<std::string> helped, sampled_families;
  std::string current;  // the family whose samples may follow
  // histogram family + labels without le -> (bucket values in order, count)
  struct Hist {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative)
    std::optional<double> count;
  };
  std::map<std::string, Hist> hists;
  auto err = [&](int line, const std::string& what) {
    out.errors.push_back("line " + std::to_string(line) + ": " + what);
  };
  if (!text.empty() && text.back() != '\n') out.errors.push_back("the text does not end with a newline");
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kw, name;
      ls >> hash >> kw >> name;
      if (kw == "HELP" || kw == "TYPE") {
        if (!valid_name(name, true)) err(n, "bad metric name '" + name + "'");
        if (sampled_families.count(name)) err(n, kw + " of " + name + " after its samples");
        if (kw == "HELP") {
          if (!helped.insert(name).second) err(n, "second HELP for " + name);
          // Only \\ and \n escapes in help text.
          const auto pos = line.find(name) + name.size();
          const std::string help = pos < line.size() ? line.substr(pos + 1) : std::string();
          for (std::size_t i = 0; i < help.size(); ++i) {
            if (help[i] == '\\') {
              if (i + 1 >= help.size() || (help[i + 1] != '\\' && help[i + 1] != 'n'))
                err(n, "bad escape in HELP of " + name);
              ++i;
            }
          }
        } else {
          std::string type;
          ls >> type;
          static const std::set<std::string> known = {"counter", "gauge", "histogram", "summary", "untyped"};
          if (!known.count(type)) err(n, "unknown TYPE '" + type + "'");
          if (out.types.count(name)) err(n, "second TYPE for " + name);
          out.types[name] = type;
          if (type == "counter" && (name.size() < 6 || name.substr(name.size() - 6) != "_total"))
            err(n, "counter " + name + " does not end in _total");
        }
        current = name;
      }
      continue;
    }
    // name{labels} value
    std::size_t i = 0;
    while (i < line.size() && name_char(line[i], i == 0, true)) ++i;
    const std::string name = line.substr(0, i);
    if (!valid_name(name, true)) {
      err(n, "bad sample name in '" + line + "'");
      continue;
    }
    std::vector<std::pair<std::string, std::string>> labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t s = i;
        while (i < line.size() && name_char(line[i], i == s, false)) ++i;
        std::string lname = line.substr(s, i - s);
        if (lname.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          err(n, "bad label in '" + line + "'");
          break;
        }
        i += 2;
        std::string v;
        bool closed = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            char e = line[i++];
            if (e == 'n') {
              v += '\n';
            } else if (e == '\\' || e == '"') {
              v += e;
            } else {
              err(n, "bad escape in a label value");
            }
          } else {
            v += c;
          }
        }
        if (!closed) {
          err(n, "unterminated label value");
          break;
        }
        labels.emplace_back(lname, v);
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') {
        err(n, "unterminated label set");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      err(n, "no value in '" + line + "'");
      continue;
    }
    const std::string vtext = line.substr(i + 1);
    auto value = parse_value(vtext.substr(0, vtext.find(' ')));  // an optional timestamp may follow
    if (!value) {
      err(n, "bad value in '" + line + "'");
      continue;
    }
    // The family: the current one, whose name this sample must be (histograms: with a suffix).
    std::string family = name;
    const std::string type = out.types.count(current) ? out.types[current] : "";
    if (type == "histogram") {
      for (const char* suf : {"_bucket", "_sum", "_count"}) {
        const std::string s(suf);
        if (name.size() > s.size() && name.substr(name.size() - s.size()) == s &&
            name.substr(0, name.size() - s.size()) == current)
          family = current;
      }
    }
    if (family != current || type.empty()) {
      err(n, "sample " + name + " outside its family's # TYPE block");
      continue;
    }
    sampled_families.insert(family);
    const std::string k = PromText::key(name, labels);
    if (out.series.count(k)) err(n, "duplicate series " + k);
    out.series[k] = *value;
    if (type == "histogram") {
      std::optional<double> le;
      std::vector<std::pair<std::string, std::string>> rest;
      for (auto& [ln, lv] : labels) {
        if (ln == "le") {
          le = parse_value(lv);
          if (!le) err(n, "bad le '" + lv + "'");
        } else {
          rest.emplace_back(ln, lv);
        }
      }
      Hist& h = hists[PromText::key(family, rest)];
      if (name == family + "_bucket") {
        if (!le) {
          err(n, "bucket without le");
        } else {
          if (!h.buckets.empty() && (*le <= h.buckets.back().first || *value < h.buckets.back().second))
            err(n, "buckets of " + family + " not increasing and cumulative");
          h.buckets.emplace_back(*le, *value);
        }
      } else if (name == family + "_count") {
        h.count = *value;
      }
    }
  }
  for (const auto& [k, h] : hists) {
    if (h.buckets.empty() || !std::isinf(h.buckets.back().first)) {
      out.errors.push_back(k + ": no le=\"+Inf\" bucket");
    } else if (!h.count || *h.count != h.buckets.back().second) {
      out.errors.push_back(k + ": the +Inf bucket differs from _count");
    }
  }
  return out;
}

}  // namespace dispatch::testing
