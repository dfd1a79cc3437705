#include "metrics.hpp"

#include "process_stats.hpp"
#include "registry.hpp" // pool_counts

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <sstream>

namespace wolf {
namespace {

/** A sample value or bound as the Go client writes one: shortest round trip, %g style ("1e-05", "86400"). */
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

} // namespace

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

std::string_view to_string(eviction_reason reason) noexcept {
    static constexpr std::array<std::string_view, eviction_reason_count> names{
        "ping_timeout", "rate_limit",    "too_big",     "binary",
        "bad_utf8",     "slow_consumer", "error_limit", "write_timeout"};
    return names[static_cast<std::size_t>(reason)];
}

std::string render_prometheus(metrics const& m, pool_counts const& r, broker_status const& broker) {
    std::ostringstream out;
    auto const family = [&](std::string_view name, std::string_view type, std::string_view help) {
        write_family(out, name, type, help);
    };
    family("wolf_connections", "gauge", "Open WebSocket connections (handshake done, close not begun).");
    out << "wolf_connections " << r.connections() << '\n';
    family("wolf_subscribers", "gauge", "Connections subscribed to the broadcast.");
    out << "wolf_subscribers " << r.subscribers() << '\n';
    family("wolf_ready", "gauge", "Connections in the ready pool (sent connect).");
    out << "wolf_ready " << r.ready() << '\n';
    family("wolf_broker_info", "gauge",
           "Who decides the broadcast: memory (this process) or redis (a cluster).");
    out << "wolf_broker_info{broker=\"" << (broker.redis ? "redis" : "memory") << "\"} 1\n";
    family("wolf_broker_connected", "gauge", "1 while the broker answers (always, for memory).");
    out << "wolf_broker_connected " << (broker.connected ? 1 : 0) << '\n';
    family("wolf_leader", "gauge", "1 while this node picks the quotes (always, for a single node).");
    out << "wolf_leader " << (broker.leader ? 1 : 0) << '\n';
    family("wolf_connections_total", "counter", "WebSocket handshakes completed.");
    out << "wolf_connections_total " << m.connections_total << '\n';
    family("wolf_broadcast_ticks_total", "counter", "Broadcasts made.");
    out << "wolf_broadcast_ticks_total " << m.broadcast_ticks_total << '\n';
    family("wolf_wisdom_sent_total", "counter", "wisdom_distribution frames queued to subscribers.");
    out << "wolf_wisdom_sent_total " << m.wisdom_sent_total << '\n';
    family("wolf_wisdom_dropped_total", "counter", "wisdom_distribution frames dropped on a full queue.");
    out << "wolf_wisdom_dropped_total " << m.wisdom_dropped_total << '\n';
    family(
        "wolf_http_timeouts_total", "counter",
        "HTTP requests (and upgrades) not complete within --handshake-timeout; the connection was closed.");
    out << "wolf_http_timeouts_total " << m.http_timeouts_total << '\n';
    family("wolf_evictions_total", "counter", "Connections closed by the server, by reason.");
    for (std::size_t i = 0; i < eviction_reason_count; ++i)
        out << "wolf_evictions_total{reason=\"" << to_string(static_cast<eviction_reason>(i)) << "\"} "
            << m.evictions[i] << '\n';
    family("wolf_protocol_errors_total", "counter", "error events sent, by code.");
    for (std::size_t i = 0; i < protocol::error_code_count; ++i)
        out << "wolf_protocol_errors_total{code=\""
            << protocol::to_string(static_cast<protocol::error_code>(i)) << "\"} " << m.protocol_errors[i]
            << '\n';
    out << render_histogram(
        "wolf_broadcast_duration_seconds",
        "Time one broadcast takes to serialize its frame and offer it to every subscriber's queue.",
        m.broadcast_duration);
    out << render_histogram("wolf_session_duration_seconds",
                            "WebSocket session lifetimes, from the handshake to the end of the connection.",
                            m.session_duration);

    // The standard process collector's names and meanings, as the Prometheus client libraries export them.
    if (auto const process = read_process_stats()) {
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        out << "process_cpu_seconds_total " << format_number(process->cpu_seconds) << '\n';
        family("process_open_fds", "gauge", "Number of open file descriptors.");
        out << "process_open_fds " << process->open_fds << '\n';
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
        out << "process_max_fds " << process->max_fds << '\n';
        family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        out << "process_virtual_memory_bytes " << process->virtual_memory_bytes << '\n';
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        out << "process_resident_memory_bytes " << process->resident_memory_bytes << '\n';
        family("process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
        out << "process_start_time_seconds " << format_number(process->start_time_seconds) << '\n';
    }
    return std::move(out).str();
}

std::string render_health(pool_counts const& r, broker_status const& broker) {
    return boost::json::serialize(boost::json::object{{"status", "ok"},
                                                      {"connections", r.connections()},
                                                      {"subscribers", r.subscribers()},
                                                      {"broker", broker.redis ? "redis" : "memory"},
                                                      {"broker_connected", broker.connected},
                                                      {"leader", broker.leader}});
}

} // namespace wolf
