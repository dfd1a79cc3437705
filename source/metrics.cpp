#include "metrics.hpp"

#include "registry.hpp" // pool_counts

#include <boost/json.hpp>
#include <charconv>
#include <sstream>

namespace wolf {

std::string_view to_string(eviction_reason reason) noexcept {
    static constexpr std::array<std::string_view, eviction_reason_count> names{
        "ping_timeout", "rate_limit",    "too_big",     "binary",
        "bad_utf8",     "slow_consumer", "error_limit", "write_timeout"};
    return names[static_cast<std::size_t>(reason)];
}

namespace {

/** Seconds since the Unix epoch as a plain decimal ("1765012345.25"), not in scientific notation. */
std::string format_timestamp(double seconds) {
    char digits[48];
    auto const [end, ec] = std::to_chars(digits, digits + sizeof digits, seconds, std::chars_format::fixed);
    return ec == std::errc{} ? std::string(digits, end) : format_number(seconds);
}

} // namespace

std::string render_prometheus(metrics const& m, pool_counts const& r, broker_status const& broker) {
    std::ostringstream out;
    write_family(out, "wolf_connections", "gauge",
                 "Open WebSocket connections (handshake done, close not begun).");
    out << "wolf_connections " << r.connections() << '\n';
    write_family(out, "wolf_subscribers", "gauge", "Connections subscribed to the broadcast.");
    out << "wolf_subscribers " << r.subscribers() << '\n';
    write_family(out, "wolf_ready", "gauge", "Connections in the ready pool (sent connect).");
    out << "wolf_ready " << r.ready() << '\n';
    write_family(out, "wolf_broker_info", "gauge",
                 "Who decides the broadcast: memory (this process) or redis (a cluster).");
    out << "wolf_broker_info{broker=\"" << (broker.redis ? "redis" : "memory") << "\"} 1\n";
    write_family(out, "wolf_broker_connected", "gauge", "1 while the broker answers (always, for memory).");
    out << "wolf_broker_connected " << (broker.connected ? 1 : 0) << '\n';
    write_family(out, "wolf_leader", "gauge",
                 "1 while this node picks the quotes (always, for a single node).");
    out << "wolf_leader " << (broker.leader ? 1 : 0) << '\n';
    if (broker.redis) {
        write_family(out, "wolf_redis_info", "gauge",
                     "The Redis this node talks to: its address, its role, the sentinel in use, TLS.");
        out << "wolf_redis_info{master=\"" << broker.master << "\",role=\"" << broker.role << "\",sentinel=\""
            << broker.sentinel << "\",tls=\"" << (broker.tls ? "true" : "false") << "\"} 1\n";
        write_family(out, "wolf_redis_failovers_total", "counter",
                     "Master switches the sentinels announced (+switch-master) since this node started.");
        out << "wolf_redis_failovers_total " << broker.failovers << '\n';
        write_family(out, "wolf_deck_info", "gauge", "The fingerprint of this node's deck of quotes.");
        out << "wolf_deck_info{fingerprint=\"" << broker.fingerprint << "\"} 1\n";
        write_family(out, "wolf_deck_mismatch", "gauge",
                     "1 while the cluster deals another deck than this node's (it does not lead).");
        out << "wolf_deck_mismatch " << (broker.deck == "mismatch" ? 1 : 0) << '\n';
    }
    write_family(out, "wolf_connections_total", "counter", "WebSocket handshakes completed.");
    out << "wolf_connections_total " << m.connections_total << '\n';
    write_family(out, "wolf_broadcast_ticks_total", "counter", "Broadcasts made.");
    out << "wolf_broadcast_ticks_total " << m.broadcast_ticks_total << '\n';
    write_family(out, "wolf_last_broadcast_timestamp_seconds", "gauge",
                 "When this node last broadcast, in seconds since the Unix epoch (0 before the first).");
    out << "wolf_last_broadcast_timestamp_seconds " << format_timestamp(m.last_broadcast_seconds.load())
        << '\n';
    write_family(out, "wolf_tick_interval_seconds", "gauge", "--interval: the time between two ticks.");
    out << "wolf_tick_interval_seconds " << format_number(m.interval_seconds) << '\n';
    write_family(out, "wolf_max_connections", "gauge",
                 "--max-connections: the most connections this node takes.");
    out << "wolf_max_connections " << m.max_connections << '\n';
    write_family(out, "wolf_wisdom_sent_total", "counter",
                 "wisdom_distribution frames queued to subscribers.");
    out << "wolf_wisdom_sent_total " << m.wisdom_sent_total << '\n';
    write_family(out, "wolf_wisdom_dropped_total", "counter",
                 "wisdom_distribution frames dropped on a full queue.");
    out << "wolf_wisdom_dropped_total " << m.wisdom_dropped_total << '\n';
    write_family(
        out, "wolf_http_timeouts_total", "counter",
        "HTTP requests (and upgrades) not complete within --handshake-timeout; the connection was closed.");
    out << "wolf_http_timeouts_total " << m.http_timeouts_total << '\n';
    write_family(out, "wolf_evictions_total", "counter", "Connections closed by the server, by reason.");
    for (std::size_t i = 0; i < eviction_reason_count; ++i)
        out << "wolf_evictions_total{reason=\"" << to_string(static_cast<eviction_reason>(i)) << "\"} "
            << m.evictions[i] << '\n';
    write_family(out, "wolf_protocol_errors_total", "counter", "Client events refused, by error code.");
    for (std::size_t i = 0; i < protocol::error_code_count; ++i)
        out << "wolf_protocol_errors_total{code=\""
            << protocol::to_string(static_cast<protocol::error_code>(i)) << "\"} " << m.protocol_errors[i]
            << '\n';
    write_family(
        out, "wolf_recoveries_total", "counter",
        "Subscribes with \"since\" (lossless reconnect), by result: recovered (every missed broadcast "
        "sent again), gap (some were no longer kept), epoch (another sequence).");
    for (std::size_t i = 0; i < recovery_result_count; ++i)
        out << "wolf_recoveries_total{result=\"" << recovery_result_names[i] << "\"} " << m.recoveries[i]
            << '\n';
    write_family(out, "wolf_recovery_resent_total", "counter",
                 "Broadcasts sent again to recovering subscribers.");
    out << "wolf_recovery_resent_total " << m.resent_total << '\n';
    write_family(out, "wolf_history_length", "gauge", "Broadcasts kept for lossless reconnect (--history).");
    out << "wolf_history_length " << m.history_length.load(std::memory_order_relaxed) << '\n';
    out << render_histogram(
        "wolf_broadcast_duration_seconds",
        "Time one broadcast takes to serialize its frame and offer it to every subscriber's queue.",
        m.broadcast_duration);
    out << render_histogram("wolf_session_duration_seconds",
                            "WebSocket session lifetimes, from the handshake to the end of the connection.",
                            m.session_duration);

    write_process_metrics(out);
    return std::move(out).str();
}

std::string render_health(pool_counts const& r, broker_status const& broker) {
    boost::json::object health{{"status", "ok"},
                               {"connections", r.connections()},
                               {"subscribers", r.subscribers()},
                               {"broker", broker.redis ? "redis" : "memory"},
                               {"broker_connected", broker.connected},
                               {"leader", broker.leader}};
    if (broker.redis) {
        boost::json::object redis{{"master", broker.master},
                                  {"role", broker.role},
                                  {"tls", broker.tls},
                                  {"failovers", broker.failovers},
                                  {"deck", broker.deck.empty() ? "unknown" : broker.deck},
                                  {"deck_fingerprint", broker.fingerprint}};
        if (!broker.sentinel.empty()) redis["sentinel"] = broker.sentinel;
        health["redis"] = std::move(redis);
    }
    return boost::json::serialize(health);
}

} // namespace wolf
