#pragma once

#include "protocol.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace wolf {

class registry;

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

/** Counters since start. Gauges (connections, subscribers) are read from the registry. */
struct metrics {
    std::uint64_t connections_total = 0;
    std::uint64_t broadcast_ticks_total = 0;
    std::uint64_t wisdom_sent_total = 0;
    std::uint64_t wisdom_dropped_total = 0;
    std::uint64_t http_timeouts_total = 0; // HTTP requests not complete within --handshake-timeout
    std::array<std::uint64_t, eviction_reason_count> evictions{};
    std::array<std::uint64_t, protocol::error_code_count> protocol_errors{};

    void count(eviction_reason reason) noexcept { ++evictions[static_cast<std::size_t>(reason)]; }
    void count(protocol::error_code code) noexcept { ++protocol_errors[static_cast<std::size_t>(code)]; }
    std::uint64_t evictions_for(eviction_reason reason) const noexcept {
        return evictions[static_cast<std::size_t>(reason)];
    }
    std::uint64_t errors_for(protocol::error_code code) const noexcept {
        return protocol_errors[static_cast<std::size_t>(code)];
    }
};

/** The Prometheus text exposition (format 0.0.4) of the counters, the registry's gauges and the process
 * collector's figures of this process (read from /proc on each call). */
std::string render_prometheus(metrics const& m, registry const& r);

/** The /healthz body: {"status":"ok","connections":N,"subscribers":M}. */
std::string render_health(registry const& r);

} // namespace wolf
