#pragma once

#include "protocol.hpp"
#include "support/prometheus.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace wolf {

class pool_counts;

/** Why the server closed a connection on its own initiative (wolf_evictions_total{reason}). */
enum class eviction_reason {
    ping_timeout,
    rate_limit,
    too_big,
    binary,
    bad_utf8,
    slow_consumer,
    error_limit,
    write_timeout
};
inline constexpr std::size_t eviction_reason_count = 8;
std::string_view to_string(eviction_reason reason) noexcept;

/** wolf_broadcast_duration_seconds: one fan-out, 10 µs to 1 s. */
inline constexpr std::array<double, 16> broadcast_duration_bounds{
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   0.5,   1};
/** wolf_session_duration_seconds: one WebSocket session, 1 s to a day. */
inline constexpr std::array<double, 13> session_duration_bounds{1,    5,    15,    30,    60,    300,  900,
                                                                1800, 3600, 10800, 21600, 43200, 86400};

/** The results a recovery can have (history::outcome): recovered, gap, epoch. */
inline constexpr std::size_t recovery_result_count = 3;
inline constexpr std::array<std::string_view, recovery_result_count> recovery_result_names{"recovered", "gap",
                                                                                           "epoch"};

/** Counters since start, shared by every event-loop thread. Gauges (connections, subscribers) are read from
 * the pool counts. */
struct metrics {
    counter connections_total;
    counter broadcast_ticks_total;
    counter wisdom_sent_total;
    counter wisdom_dropped_total;
    counter http_timeouts_total; // HTTP requests not complete within --handshake-timeout
    std::array<counter, eviction_reason_count> evictions{};
    std::array<counter, protocol::error_code_count> protocol_errors{};
    histogram broadcast_duration{broadcast_duration_bounds}; // seconds to offer one frame to every subscriber
    histogram session_duration{session_duration_bounds};     // seconds from handshake to the end
    // Lossless reconnect: subscribes with `since` by result (recovered, gap, epoch; history::outcome's
    // order), the broadcasts sent again to them, and how many broadcasts the history holds now.
    std::array<counter, recovery_result_count> recoveries{};
    counter resent_total;
    std::atomic<std::uint64_t> history_length{0};
    // For alerts: the limits they compare with (set before the threads start) and the last broadcast's time.
    std::uint64_t max_connections = 0;             // --max-connections
    double interval_seconds = 0;                   // --interval
    std::atomic<double> last_broadcast_seconds{0}; // since the Unix epoch; 0 before the first

    void count(eviction_reason reason) noexcept { ++evictions[static_cast<std::size_t>(reason)]; }
    void count(protocol::error_code code) noexcept { ++protocol_errors[static_cast<std::size_t>(code)]; }
    template <class Result>
    void count_recovery(Result result) noexcept {
        ++recoveries[static_cast<std::size_t>(result)];
    }
    std::uint64_t evictions_for(eviction_reason reason) const noexcept {
        return evictions[static_cast<std::size_t>(reason)];
    }
    std::uint64_t errors_for(protocol::error_code code) const noexcept {
        return protocol_errors[static_cast<std::size_t>(code)];
    }
};

/** Who decides the broadcast: the process itself (a single node), or a cluster's leader through Redis. */
struct broker_status {
    bool redis = false;    // --redis: one node of a cluster
    bool connected = true; // Redis answers (a single node is always connected to itself)
    bool leader = true;    // this node picks the quotes (a single node always does)
    // --redis: the Redis this node talks to (never a password).
    std::string master;          // host:port (the last one, while disconnected; "" before the first)
    std::string role;            // what ROLE said: "master", or "unknown"
    std::string sentinel;        // host:port of the sentinel in use ("" without Sentinel)
    bool tls = false;            // rediss://
    std::uint64_t failovers = 0; // master switches the sentinels announced
    std::string deck;            // "shared", "mismatch" (the cluster deals another deck), "" not known yet
    std::string fingerprint;     // of this node's deck
};

/** The Prometheus text exposition (format 0.0.4) of the counters, the histograms, the pools' and the
 * broker's gauges and the process collector's figures of this process (read from /proc on each call). */
std::string render_prometheus(metrics const& m, pool_counts const& pools, broker_status const& broker = {});

/** The /healthz body: {"status":"ok","connections":N,"subscribers":M,"broker":"memory"|"redis",
 * "broker_connected":B,"leader":B}, and with --redis "redis":{master, role, sentinel, tls, failovers, deck,
 * deck_fingerprint}. */
std::string render_health(pool_counts const& pools, broker_status const& broker = {});

} // namespace wolf
