#include "ticker.hpp"

#include "broadcaster.hpp"
#include "quote_deck.hpp"
#include "support/async.hpp"
#include "support/tick_schedule.hpp"

namespace wolf {

ticker::ticker(net::any_io_executor executor, broadcaster& target, quote_deck& deck, duration interval)
    : timer_(std::move(executor))
    , target_(target)
    , deck_(deck)
    , interval_(interval) {
}

net::awaitable<void> ticker::run() {
    tick_schedule schedule(steady_clock::now() + interval_, interval_);
    while (!stopped_) {
        timer_.expires_at(schedule.next());
        auto [ec] = co_await timer_.async_wait(use_nothrow);
        if (ec || stopped_) co_return;
        // A named object, not a braced temporary inside co_await: GCC 12 destroys those twice (PR 99576).
        broadcast_message message{deck_.next(), broadcast_message::origin::tick};
        if (!co_await target_.publish(std::move(message))) co_return;
        schedule.advance(steady_clock::now());
    }
}

void ticker::stop() {
    stopped_ = true;
    timer_.cancel();
}

bool ticker::try_publish(std::string text) {
    return target_.try_publish({std::move(text), broadcast_message::origin::publish});
}

} // namespace wolf
