#pragma once

#include "broadcaster.hpp"
#include "config.hpp"
#include "quote_deck.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

namespace wolf {

/**
 * Feeds the broadcaster the deck's next quote every interval, whether or not anyone listens. Ticks are
 * scheduled on absolute times so they do not drift; if the process falls behind by a whole interval
 * the missed ticks are skipped, not sent in a burst.
 */
class ticker {
public:
    ticker(net::any_io_executor executor, broadcaster& target, quote_deck& deck, duration interval);

    net::awaitable<void> run();
    void stop();

private:
    net::steady_timer timer_;
    broadcaster& target_;
    quote_deck& deck_;
    duration interval_;
    bool stopped_ = false;
};

} // namespace wolf
