#pragma once

// The pieces of a Prometheus exposition that know nothing of what they count: a counter and a histogram any
// thread may add to, and the text format 0.0.4 of a family, a histogram and the standard process collector.

#include <atomic>
#include <cstdint>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wolf {

/**
 * A monotonic counter that any event-loop thread may add to. Relaxed atomics: each addition is exact, and
 * a reader sees every addition made before the last synchronisation with the adding thread.
 */
class counter {
public:
    std::uint64_t operator++() noexcept { return value_.fetch_add(1, std::memory_order_relaxed) + 1; }
    counter& operator+=(std::uint64_t n) noexcept {
        value_.fetch_add(n, std::memory_order_relaxed);
        return *this;
    }
    std::uint64_t load() const noexcept { return value_.load(std::memory_order_relaxed); }
    operator std::uint64_t() const noexcept { return load(); }

private:
    std::atomic<std::uint64_t> value_{0};
};

inline std::ostream& operator<<(std::ostream& out, counter const& c) {
    return out << c.load();
}

/**
 * A Prometheus histogram with fixed upper bounds. Each observation lands in the first bucket whose bound is
 * at least the value, or in the +Inf bucket past the last; rendering makes the counts cumulative. Any
 * thread may observe; the counts are relaxed atomics, like counter's.
 */
class histogram {
public:
    /** `upper_bounds` ascending, without +Inf. */
    explicit histogram(std::span<double const> upper_bounds);

    void observe(double value) noexcept;

    std::span<double const> upper_bounds() const noexcept { return bounds_; }
    /** Observations at most upper_bounds()[i]; i == upper_bounds().size() is the +Inf bucket (= count()). */
    std::uint64_t cumulative_count(std::size_t i) const noexcept;
    std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
    double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_; // per bucket, not cumulative; the last is +Inf
    std::atomic<std::uint64_t> count_{0};
    std::atomic<double> sum_{0};
};

/** A sample value or bound as the Go client writes one: shortest round trip, %g style ("1e-05", "86400"). */
std::string format_number(double value);

/** A family's `# HELP` and `# TYPE` lines. */
void write_family(std::ostream& out, std::string_view name, std::string_view type, std::string_view help);

/** One histogram family in the text exposition: HELP, TYPE, the cumulative buckets, _sum and _count. */
std::string render_histogram(std::string_view name, std::string_view help, histogram const& h);

/** The standard process collector's families (process_cpu_seconds_total, process_open_fds, ...) for this
 * process, read from /proc now, with the names and meanings the Prometheus client libraries give them;
 * nothing if /proc cannot be read. */
void write_process_metrics(std::ostream& out);

} // namespace wolf
