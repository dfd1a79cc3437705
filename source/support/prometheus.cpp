#include "support/prometheus.hpp"

#include "support/process_stats.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

namespace wolf {

histogram::histogram(std::span<double const> upper_bounds)
    : bounds_(upper_bounds.begin(), upper_bounds.end())
    , counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
}

void histogram::observe(double value) noexcept {
    if (std::isnan(value)) return;
    // The first bound >= value: Prometheus buckets are "less than or equal".
    auto const bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
    counts_[static_cast<std::size_t>(bucket)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
}

std::uint64_t histogram::cumulative_count(std::size_t i) const noexcept {
    std::uint64_t total = 0;
    for (std::size_t k = 0; k <= i && k <= bounds_.size(); ++k)
        total += counts_[k].load(std::memory_order_relaxed);
    return total;
}

std::string format_number(double value) {
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    if (std::isnan(value)) return "NaN";
    char digits[32];
    auto const [end, ec] = std::to_chars(digits, digits + sizeof digits, value, std::chars_format::general);
    return std::string(digits, end);
}

void write_family(std::ostream& out, std::string_view name, std::string_view type, std::string_view help) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

std::string render_histogram(std::string_view name, std::string_view help, histogram const& h) {
    std::ostringstream out;
    write_family(out, name, "histogram", help);
    auto const bounds = h.upper_bounds();
    for (std::size_t i = 0; i <= bounds.size(); ++i)
        out << name << "_bucket{le=\"" << (i < bounds.size() ? format_number(bounds[i]) : "+Inf") << "\"} "
            << h.cumulative_count(i) << '\n';
    out << name << "_sum " << format_number(h.sum()) << '\n';
    out << name << "_count " << h.count() << '\n';
    return std::move(out).str();
}

void write_process_metrics(std::ostream& out) {
    auto const process = read_process_stats();
    if (!process) return;
    write_family(out, "process_cpu_seconds_total", "counter",
                 "Total user and system CPU time spent in seconds.");
    out << "process_cpu_seconds_total " << format_number(process->cpu_seconds) << '\n';
    write_family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    out << "process_open_fds " << process->open_fds << '\n';
    write_family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    out << "process_max_fds " << process->max_fds << '\n';
    write_family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    out << "process_virtual_memory_bytes " << process->virtual_memory_bytes << '\n';
    write_family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    out << "process_resident_memory_bytes " << process->resident_memory_bytes << '\n';
    write_family(out, "process_start_time_seconds", "gauge",
                 "Start time of the process since unix epoch in seconds.");
    out << "process_start_time_seconds " << format_number(process->start_time_seconds) << '\n';
}

} // namespace wolf
