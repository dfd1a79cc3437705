#pragma once

#include "broadcast_source.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

namespace wolf {

class broadcaster;
class quote_deck;

/**
 * A single node's broadcast source: feeds the broadcaster the deck's next quote every interval, whether or
 * not anyone listens, on a drift-free tick_schedule. An operator's message goes straight to the
 * broadcaster's inbox, between two ticks.
 */
class ticker final : public broadcast_source {
public:
    ticker(net::any_io_executor executor, broadcaster& target, quote_deck& deck, duration interval);

    net::awaitable<void> run() override;
    void stop() override;
    bool try_publish(std::string text) override;
    broker_status status() const override { return {}; } // the process itself, always there

private:
    net::steady_timer timer_;
    broadcaster& target_;
    quote_deck& deck_;
    duration interval_;
    bool stopped_ = false;
};

} // namespace wolf
