#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "registry.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

namespace wolf {

/**
 * One coarse sweep over the open connections, a few times per timeout (at most once a second), instead
 * of a timer per connection. It closes with 4000 "ping timeout" every connection that has applied no
 * client event for longer than the ping timeout, and drops (no closing handshake: nothing more can be
 * written) every connection whose socket has accepted nothing for longer than the write timeout. Either
 * happens at most one sweep period after the deadline.
 */
class watchdog {
public:
    watchdog(net::any_io_executor executor, registry& connections, metrics& stats, duration ping_timeout,
             duration write_timeout);

    net::awaitable<void> run();
    void stop();

    /** One sweep at `now`; returns how many connections it closed. */
    std::size_t sweep(steady_clock::time_point now);

    /** How often run() sweeps for a given (shortest) timeout. */
    static duration period_for(duration timeout) noexcept;

private:
    net::steady_timer timer_;
    registry& connections_;
    metrics& stats_;
    duration ping_timeout_;
    duration write_timeout_;
    bool stopped_ = false;
};

} // namespace wolf
