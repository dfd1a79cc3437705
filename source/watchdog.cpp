#include "watchdog.hpp"

#include "async.hpp"
#include "logger.hpp"
#include "protocol.hpp"

#include <algorithm>
#include <vector>

namespace wolf {

watchdog::watchdog(net::any_io_executor executor, registry& connections, metrics& stats,
                   duration ping_timeout)
    : timer_(std::move(executor))
    , connections_(connections)
    , stats_(stats)
    , ping_timeout_(ping_timeout) {
}

duration watchdog::period_for(duration ping_timeout) noexcept {
    return std::clamp(ping_timeout / 4, duration{5}, duration{1000});
}

net::awaitable<void> watchdog::run() {
    auto const period = period_for(ping_timeout_);
    while (!stopped_) {
        timer_.expires_after(period);
        auto [ec] = co_await timer_.async_wait(use_nothrow);
        if (ec || stopped_) co_return;
        sweep(steady_clock::now());
    }
}

void watchdog::stop() {
    stopped_ = true;
    timer_.cancel();
}

std::size_t watchdog::sweep(steady_clock::time_point now) {
    // Collect first: closing a peer removes it from the open set we are walking.
    std::vector<peer*> expired;
    std::vector<peer*> failing;
    for (peer* p : connections_.open_peers()) {
        if (p->transport_closing())
            failing.push_back(p);
        else if (now - p->last_seen() > ping_timeout_)
            expired.push_back(p);
    }

    for (peer* p : expired) {
        stats_.count(eviction_reason::ping_timeout);
        log_info("evict ", p->id(), ": ", to_string(eviction_reason::ping_timeout));
        p->close(protocol::close_code::ping_timeout, protocol::close_reason::ping_timeout);
    }
    // A close the WebSocket layer began itself (the peer broke the protocol) counts as begun now; the
    // peer's own deadline drops it if it never finishes the closing handshake.
    for (peer* p : failing)
        p->close(protocol::close_code::policy_violation, {});
    return expired.size();
}

} // namespace wolf
