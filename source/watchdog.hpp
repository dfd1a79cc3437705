#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "net.hpp"
#include "registry.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

namespace wolf {

/**
 * Closes, with 4000 "ping timeout", every open connection that has applied no client event for longer
 * than the ping timeout. It sweeps a few times per timeout (at most once a second), so an eviction
 * happens at most one sweep period after the deadline.
 */
class watchdog {
public:
    watchdog(net::any_io_executor executor, registry& connections, metrics& stats, duration ping_timeout);

    net::awaitable<void> run();
    void stop();

    /** One sweep at `now`; returns how many connections it closed. */
    std::size_t sweep(steady_clock::time_point now);

    /** How often run() sweeps for a given timeout. */
    static duration period_for(duration ping_timeout) noexcept;

private:
    net::steady_timer timer_;
    registry& connections_;
    metrics& stats_;
    duration ping_timeout_;
    bool stopped_ = false;
};

} // namespace wolf
