#include "watchdog.hpp"

#include "protocol.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"

#include <algorithm>
#include <vector>

namespace wolf {

watchdog::watchdog(net::any_io_executor executor, registry& connections, metrics& stats,
                   duration ping_timeout, duration write_timeout)
    : timer_(std::move(executor))
    , connections_(connections)
    , stats_(stats)
    , ping_timeout_(ping_timeout)
    , write_timeout_(write_timeout) {
}

duration watchdog::period_for(duration timeout) noexcept {
    return std::clamp(timeout / 4, duration{5}, duration{1000});
}

net::awaitable<void> watchdog::run() {
    auto const period = period_for(std::min(ping_timeout_, write_timeout_));
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
    std::vector<peer*> stalled;
    auto const open = connections_.open_peers();
    for (std::size_t i = 0; i < open.size(); ++i) {
        // As in the broadcaster's walk: fetch a connection's leading lines a few connections ahead.
        if (i + 4 < open.size()) {
            auto const* next = reinterpret_cast<char const*>(open[i + 4]);
            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
            __builtin_prefetch(next + 192);
        }
        peer* p = open[i];
        auto const writing_since = p->write_pending_since();
        if (p->transport_closing())
            failing.push_back(p);
        else if (writing_since && now - *writing_since > write_timeout_)
            stalled.push_back(p);
        else if (now - p->last_seen() > ping_timeout_)
            expired.push_back(p);
    }

    // The peer reads nothing: a closing handshake would queue behind the stuck write, so drop it.
    for (peer* p : stalled) {
        stats_.count(eviction_reason::write_timeout);
        log_info("evict", kv("id", p->id()), kv("reason", to_string(eviction_reason::write_timeout)));
        connections_.begin_close(*p);
        p->abort();
    }

    for (peer* p : expired) {
        stats_.count(eviction_reason::ping_timeout);
        log_info("evict", kv("id", p->id()), kv("reason", to_string(eviction_reason::ping_timeout)));
        p->close(protocol::close_code::ping_timeout, protocol::close_reason::ping_timeout);
    }
    // A close the WebSocket layer began itself (the peer broke the protocol) counts as begun now; the
    // peer's own deadline drops it if it never finishes the closing handshake.
    for (peer* p : failing)
        p->close(protocol::close_code::policy_violation, {});
    return expired.size() + stalled.size();
}

} // namespace wolf
