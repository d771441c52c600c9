#include "controller/availability.h"

#include <algorithm>
#include <cmath>

namespace clusterctl::controller {

using nlohmann::json;

namespace {

// Thrown inside FromJson for a document that parses but does not fit.
struct Malformed {};

int64_t Overlap(int64_t a, int64_t b, int64_t from, int64_t to) {
  return std::max<int64_t>(0, std::min(b, to) - std::max(a, from));
}

// The share of [a, b] inside [from, to]; a point counts whole or not at all.
double Fraction(int64_t a, int64_t b, int64_t from, int64_t to) {
  if (b <= a) return a >= from && a <= to ? 1 : 0;
  return static_cast<double>(Overlap(a, b, from, to)) / static_cast<double>(b - a);
}

int64_t Int(const json& j) {
  if (!j.is_number_integer()) throw Malformed{};
  return j.get<int64_t>();
}

void Require(bool condition) {
  if (!condition) throw Malformed{};
}

// Among `v`'s adjacent pairs (i, i+1) with i + 1 < limit, the one whose
// union, from begin(v[i]) to end(v[i+1]), is shortest; the oldest on a tie.
template <typename T, typename Begin, typename End>
size_t ShortestPair(const std::vector<T>& v, size_t limit, Begin begin, End end) {
  size_t best = 0;
  int64_t best_len = INT64_MAX;
  for (size_t i = 0; i + 1 < limit; ++i) {
    const int64_t len = end(v[i + 1]) - begin(v[i]);
    if (len < best_len) best = i, best_len = len;
  }
  return best;
}

}  // namespace

// Accumulated over tracks; fractions come from runs cut by the window.
struct AvailabilityBook::Sums {
  double observed = 0, down = 0, failures = 0, restarts = 0;
  double ttd_sum = 0, ttd_n = 0, ttr_sum = 0, ttr_n = 0;
  int64_t last_recovery_ms = -1, last_ttr_ms = -1;
  bool down_now = false;
};

void AvailabilityBook::CloseSpan(Track* t) const {
  if (!t->open) return;
  t->open = false;
  const Span& last = t->spans.back();
  if (last.begin_ms == last.end_ms && last.covered_ms < 0) t->spans.pop_back();
}

void AvailabilityBook::Observe(const std::string& instance, const std::string& service, bool up,
                               int64_t now_ms) {
  Track& t = tracks_[instance];
  if (t.last_ms >= 0 && now_ms < t.last_ms) return;
  t.service = service;
  if (t.open && now_ms - t.last_ms <= max_gap_ms_) {
    t.spans.back().end_ms = now_ms;
  } else {
    CloseSpan(&t);
    t.spans.push_back(Span{now_ms, now_ms});
    t.open = true;
  }
  t.last_ms = now_ms;
  const bool in_episode = !t.episodes.empty() && t.episodes.back().recovered_ms < 0;
  if (up) {
    if (in_episode) t.episodes.back().recovered_ms = now_ms;
    t.last_up_ms = now_ms;
  } else if (!in_episode) {
    t.episodes.push_back(Episode{t.last_up_ms, now_ms});
  }
  Fold(&t);
}

void AvailabilityBook::Unknown(const std::string& instance, int64_t now_ms) {
  auto it = tracks_.find(instance);
  if (it == tracks_.end()) return;
  CloseSpan(&it->second);
  it->second.last_ms = std::max(it->second.last_ms, now_ms);
}

void AvailabilityBook::EraseGone(const std::set<std::string>& live) {
  std::erase_if(tracks_, [&](const auto& kv) { return live.count(kv.first) == 0; });
}

void AvailabilityBook::Prune(int64_t now_ms) {
  const int64_t cutoff = now_ms - keep_ms_;
  for (auto it = tracks_.begin(); it != tracks_.end();) {
    Track& t = it->second;
    if (t.open && t.spans.back().end_ms < cutoff) t.open = false;
    std::erase_if(t.spans, [&](const Span& s) { return s.end_ms < cutoff; });
    std::erase_if(t.episodes,
                  [&](const Episode& e) { return e.recovered_ms >= 0 && e.recovered_ms < cutoff; });
    it = t.spans.empty() && t.episodes.empty() ? tracks_.erase(it) : std::next(it);
  }
}

int64_t AvailabilityBook::Covered(const Track& t, int64_t from_ms, int64_t to_ms) {
  double covered = 0;
  for (const Span& s : t.spans) {
    const int64_t overlap = Overlap(s.begin_ms, s.end_ms, from_ms, to_ms);
    if (overlap == 0) continue;
    covered += s.covered_ms < 0 ? overlap
                                : static_cast<double>(overlap) * static_cast<double>(s.covered_ms) /
                                      static_cast<double>(s.end_ms - s.begin_ms);
  }
  return std::llround(covered);
}

void AvailabilityBook::Fold(Track* t) {
  while (t->spans.size() > kMaxSpans) {
    const size_t limit = t->open ? t->spans.size() - 1 : t->spans.size();
    const size_t i = ShortestPair(
        t->spans, limit, [](const Span& s) { return s.begin_ms; },
        [](const Span& s) { return s.end_ms; });
    auto covered = [](const Span& s) {
      return s.covered_ms >= 0 ? s.covered_ms : s.end_ms - s.begin_ms;
    };
    Span& a = t->spans[i];
    const Span& b = t->spans[i + 1];
    a = Span{a.begin_ms, b.end_ms, covered(a) + covered(b)};
    t->spans.erase(t->spans.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }
  while (t->episodes.size() > kMaxEpisodes) {
    const bool last_open = t->episodes.back().recovered_ms < 0;
    const size_t limit = last_open ? t->episodes.size() - 1 : t->episodes.size();
    const size_t i = ShortestPair(
        t->episodes, limit, [](const Episode& e) { return e.began_ms; },
        [](const Episode& e) { return e.recovered_ms; });
    // A single episode as a run of one.
    auto run = [&](const Episode& e) {
      if (e.count > 1) return e;
      Episode r = e;
      r.down_ms = Covered(*t, e.began_ms, e.recovered_ms);
      r.ttd_count = e.last_up_ms >= 0 ? 1 : 0;
      r.ttd_sum_ms = e.last_up_ms >= 0 ? e.began_ms - e.last_up_ms : 0;
      r.ttr_sum_ms = r.last_ttr_ms = e.recovered_ms - e.began_ms;
      return r;
    };
    const Episode a = run(t->episodes[i]), b = run(t->episodes[i + 1]);
    t->episodes[i] = Episode{a.last_up_ms,
                             a.began_ms,
                             b.recovered_ms,
                             a.count + b.count,
                             a.ttd_count + b.ttd_count,
                             a.down_ms + b.down_ms,
                             a.ttd_sum_ms + b.ttd_sum_ms,
                             a.ttr_sum_ms + b.ttr_sum_ms,
                             b.last_ttr_ms};
    t->episodes.erase(t->episodes.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }
}

void AvailabilityBook::Add(const Track& t, int64_t from_ms, int64_t now_ms, Sums* s) const {
  auto within = [&](int64_t ms) { return ms >= from_ms && ms <= now_ms; };
  s->observed += static_cast<double>(Covered(t, from_ms, now_ms));
  for (const Episode& e : t.episodes) {
    const bool recovered = e.recovered_ms >= 0 && within(e.recovered_ms);
    if (recovered && e.recovered_ms > s->last_recovery_ms) {
      s->last_recovery_ms = e.recovered_ms;
      s->last_ttr_ms = e.count > 1 ? e.last_ttr_ms : e.recovered_ms - e.began_ms;
    }
    if (e.count > 1) {
      const double f = Fraction(e.began_ms, e.recovered_ms, from_ms, now_ms);
      s->down += f * static_cast<double>(e.down_ms);
      s->failures += f * e.count;
      s->restarts += f * e.count;
      s->ttd_sum += f * static_cast<double>(e.ttd_sum_ms);
      s->ttd_n += f * e.ttd_count;
      s->ttr_sum += f * static_cast<double>(e.ttr_sum_ms);
      s->ttr_n += f * e.count;
      continue;
    }
    const int64_t end = e.recovered_ms >= 0 ? e.recovered_ms : now_ms;
    const int64_t lo = std::max(e.began_ms, from_ms), hi = std::min(end, now_ms);
    if (lo < hi) s->down += static_cast<double>(Covered(t, lo, hi));
    if (within(e.began_ms)) {
      s->failures += 1;
      if (e.last_up_ms >= 0) {
        s->ttd_sum += static_cast<double>(e.began_ms - e.last_up_ms);
        s->ttd_n += 1;
      }
    }
    if (recovered) {
      s->restarts += 1;
      s->ttr_sum += static_cast<double>(e.recovered_ms - e.began_ms);
      s->ttr_n += 1;
    }
  }
  if (!t.episodes.empty() && t.episodes.back().recovered_ms < 0) s->down_now = true;
}

AvailabilityFigures AvailabilityBook::Finish(const Sums& s) {
  AvailabilityFigures f;
  f.observed_ms = std::llround(s.observed);
  f.down_ms = std::min<int64_t>(f.observed_ms, std::llround(s.down));
  if (f.observed_ms > 0) {
    f.availability = 1 - static_cast<double>(f.down_ms) / static_cast<double>(f.observed_ms);
  }
  f.failures = static_cast<int>(std::lround(s.failures));
  f.restarts = static_cast<int>(std::lround(s.restarts));
  if (s.ttd_n > 0) f.mttd_ms = std::llround(s.ttd_sum / s.ttd_n);
  if (s.ttr_n > 0) f.mttr_ms = std::llround(s.ttr_sum / s.ttr_n);
  f.last_ttr_ms = s.last_ttr_ms;
  f.down_now = s.down_now;
  return f;
}

AvailabilityFigures AvailabilityBook::Service(const std::string& service, int64_t window_ms,
                                              int64_t now_ms) const {
  // Instances are keyed "service@machine", so a service's tracks are one
  // range of the map: a scan of every track per service made the stats of
  // 10,000 services take ~20 s under the daemon lock (bench/scale_bench.cc).
  Sums s;
  const std::string prefix = service + "@";
  for (auto it = tracks_.lower_bound(prefix);
       it != tracks_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (it->second.service == service) Add(it->second, now_ms - window_ms, now_ms, &s);
  }
  return Finish(s);
}

AvailabilityFigures AvailabilityBook::Instance(const std::string& instance, int64_t window_ms,
                                               int64_t now_ms) const {
  Sums s;
  auto it = tracks_.find(instance);
  if (it != tracks_.end()) Add(it->second, now_ms - window_ms, now_ms, &s);
  return Finish(s);
}

std::vector<std::string> AvailabilityBook::Services() const {
  std::set<std::string> services;
  for (const auto& [instance, t] : tracks_) services.insert(t.service);
  return {services.begin(), services.end()};
}

size_t AvailabilityBook::EntriesForTest(const std::string& instance) const {
  auto it = tracks_.find(instance);
  return it == tracks_.end() ? 0 : it->second.spans.size() + it->second.episodes.size();
}

// {"instances": {"api@m1": {"service": "api", "open": true, "last_ms": T,
//   "last_up_ms": T, "spans": [[begin, end] or [begin, end, covered]],
//   "episodes": [[last_up, began, recovered] or [last_up, began, recovered,
//   count, ttd_count, down, ttd_sum, ttr_sum, last_ttr]]}}}
json AvailabilityBook::ToJson() const {
  json instances = json::object();
  for (const auto& [instance, t] : tracks_) {
    json spans = json::array(), episodes = json::array();
    for (const Span& s : t.spans) {
      spans.push_back(s.covered_ms < 0 ? json{s.begin_ms, s.end_ms}
                                       : json{s.begin_ms, s.end_ms, s.covered_ms});
    }
    for (const Episode& e : t.episodes) {
      episodes.push_back(e.count == 1
                             ? json{e.last_up_ms, e.began_ms, e.recovered_ms}
                             : json{e.last_up_ms, e.began_ms, e.recovered_ms, e.count, e.ttd_count,
                                    e.down_ms, e.ttd_sum_ms, e.ttr_sum_ms, e.last_ttr_ms});
    }
    instances[instance] = {{"service", t.service},      {"open", t.open},
                           {"last_ms", t.last_ms},      {"last_up_ms", t.last_up_ms},
                           {"spans", std::move(spans)}, {"episodes", std::move(episodes)}};
  }
  return {{"instances", std::move(instances)}};
}

AvailabilityBook AvailabilityBook::FromJson(const json& j, bool* ok, int64_t max_gap_ms,
                                            int64_t keep_ms) {
  if (ok != nullptr) *ok = false;
  AvailabilityBook book(max_gap_ms, keep_ms);
  try {
    Require(j.is_object() && j.contains("instances") && j.at("instances").is_object());
    for (const auto& [instance, v] : j.at("instances").items()) {
      Track t;
      t.service = v.at("service").get<std::string>();
      t.open = v.at("open").get<bool>();
      t.last_ms = Int(v.at("last_ms"));
      t.last_up_ms = Int(v.at("last_up_ms"));
      const json& spans = v.at("spans");
      const json& episodes = v.at("episodes");
      Require(spans.is_array() && spans.size() <= kMaxSpans);
      Require(episodes.is_array() && episodes.size() <= kMaxEpisodes);
      for (const json& s : spans) {
        Require(s.is_array() && (s.size() == 2 || s.size() == 3));
        Span span{Int(s[0]), Int(s[1]), s.size() == 3 ? Int(s[2]) : -1};
        Require(span.begin_ms <= span.end_ms);
        Require(s.size() == 2 ||
                (span.covered_ms >= 0 && span.covered_ms <= span.end_ms - span.begin_ms));
        Require(t.spans.empty() || t.spans.back().end_ms <= span.begin_ms);
        t.spans.push_back(span);
      }
      for (const json& e : episodes) {
        Require(e.is_array() && (e.size() == 3 || e.size() == 9));
        Episode ep{Int(e[0]), Int(e[1]), Int(e[2])};
        if (e.size() == 9) {
          ep.count = static_cast<int>(Int(e[3]));
          ep.ttd_count = static_cast<int>(Int(e[4]));
          ep.down_ms = Int(e[5]);
          ep.ttd_sum_ms = Int(e[6]);
          ep.ttr_sum_ms = Int(e[7]);
          ep.last_ttr_ms = Int(e[8]);
          Require(ep.count > 1 && ep.recovered_ms >= 0);
        }
        Require(ep.recovered_ms < 0 || ep.recovered_ms >= ep.began_ms);
        Require(t.episodes.empty() || (t.episodes.back().recovered_ms >= 0 &&
                                       t.episodes.back().recovered_ms <= ep.began_ms));
        t.episodes.push_back(ep);
      }
      Require(!t.open || !t.spans.empty());
      book.tracks_[instance] = std::move(t);
    }
  } catch (const json::exception&) {
    return AvailabilityBook(max_gap_ms, keep_ms);
  } catch (const Malformed&) {
    return AvailabilityBook(max_gap_ms, keep_ms);
  }
  if (ok != nullptr) *ok = true;
  return book;
}

}  // namespace clusterctl::controller
