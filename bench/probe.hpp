#pragma once

// Reading a running server over HTTP: /healthz and the Prometheus text of /metrics.

#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wolf::bench {

/** An HTTP answer, or why there is none. */
struct http_reply {
    unsigned status = 0; // 0: no answer (see error)
    std::string body;
    std::string error;
};

/** One GET on a fresh connection (Connection: close), bounded as a whole by `timeout`. */
net::awaitable<http_reply> http_get(net::ip::tcp::endpoint endpoint, std::string target,
                                    std::chrono::milliseconds timeout);

/** The /healthz body. */
struct health {
    std::uint64_t connections = 0;
    std::uint64_t subscribers = 0;
};

/** Parses {"status":"ok","connections":N,"subscribers":M}; nullopt unless status is "ok" and both are
 * non-negative integers. */
std::optional<health> parse_health(std::string_view body);

/**
 * The sum of every sample of `family` in Prometheus text (format 0.0.4), whatever its labels:
 * `wolf_evictions_total` adds up all reasons. nullopt if the family has no sample.
 */
std::optional<double> metric_sum(std::string_view text, std::string_view family);

/** One sample of a family: its labels as written between the braces (`reason="ping_timeout"`), its value. */
struct metric_sample {
    std::string labels;
    double value = 0;
};

/** Every sample of `family`, in the order of the text. */
std::vector<metric_sample> metric_samples(std::string_view text, std::string_view family);

} // namespace wolf::bench
