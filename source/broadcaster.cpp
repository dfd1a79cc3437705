#include "broadcaster.hpp"

#include "protocol.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"

#include <boost/asio/post.hpp>
#include <chrono>

namespace wolf {

broadcaster::broadcaster(net::any_io_executor executor, std::vector<fan_out_target> targets, metrics& stats,
                         pool_counts const& pools, std::size_t capacity)
    : executor_(executor)
    , targets_(std::move(targets))
    , inbox_(executor, capacity)
    , results_(executor, targets_.size() + 1)
    , stats_(stats)
    , pools_(&pools) {
}

broadcaster::broadcaster(net::any_io_executor executor, registry& connections, metrics& stats,
                         std::size_t capacity)
    : executor_(executor)
    , targets_{fan_out_target{executor, &connections}}
    , inbox_(executor, capacity)
    , results_(executor, 2)
    , stats_(stats)
    , pools_(nullptr) {
}

net::awaitable<void> broadcaster::run() {
    for (;;) {
        auto [ec, message] = co_await inbox_.async_receive(use_nothrow);
        if (ec) co_return; // closed
        co_await fan_out(std::move(message));
    }
}

net::awaitable<bool> broadcaster::publish(broadcast_message message) {
    auto [ec] = co_await inbox_.async_send(boost::system::error_code{}, std::move(message), use_nothrow);
    co_return !ec;
}

bool broadcaster::try_publish(broadcast_message message) {
    return inbox_.try_send(boost::system::error_code{}, std::move(message));
}

void broadcaster::close() {
    inbox_.close();
}

offer_result broadcaster::offer_to(registry const& connections, shared_frame const& frame) {
    offer_result result;
    auto const subscribers = connections.subscriber_peers();
    // Each delivery reads a few cache lines of one connection's object, a different one each time: fetch
    // them a few connections ahead, so the walk waits on system calls, not on memory.
    constexpr std::size_t ahead = 4;
    for (std::size_t i = 0; i < subscribers.size(); ++i) {
        if (i + ahead < subscribers.size()) {
            auto const* next = reinterpret_cast<char const*>(subscribers[i + ahead]);
            __builtin_prefetch(next);
            __builtin_prefetch(next + 64);
            __builtin_prefetch(next + 128);
            __builtin_prefetch(next + 192);
        }
        if (subscribers[i]->offer(frame)) ++result.queued;
    }
    result.dropped = subscribers.size() - result.queued;
    return result;
}

net::awaitable<offer_result> broadcaster::fan_out(broadcast_message message) {
    auto const started = steady_clock::now();
    // Serialized and framed once; every subscriber's socket, on every thread, gets these same bytes.
    auto const frame = make_text_frame(protocol::make_wisdom_distribution(message.text, message.tick));

    // The other threads start on their shares first, then this thread does its own, so they run at once.
    std::size_t awaited = 0;
    fan_out_target const* local = nullptr;
    for (auto const& target : targets_) {
        if (target.executor == executor_) {
            local = &target;
            continue;
        }
        ++awaited;
        net::post(target.executor, [this, frame, &target] {
            auto const result = offer_to(*target.connections, frame);
            net::post(executor_, [this, result] { results_.try_send(boost::system::error_code{}, result); });
        });
    }
    offer_result total;
    if (local) total += offer_to(*local->connections, frame);
    for (; awaited > 0; --awaited) {
        auto [ec, result] = co_await results_.async_receive(use_nothrow);
        if (ec) break;
        total += result;
    }

    stats_.wisdom_sent_total += total.queued;
    stats_.wisdom_dropped_total += total.dropped;
    std::uint64_t const number = ++stats_.broadcast_ticks_total;
    auto const elapsed = steady_clock::now() - started;
    stats_.broadcast_duration.observe(std::chrono::duration<double>(elapsed).count());
    auto const connections = pools_ ? pools_->connections() : targets_.front().connections->connections();
    auto const event = message.from == broadcast_message::origin::tick ? "tick" : "publish";
    auto const fanout_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    if (message.tick) // the cluster's number too, the same on every node
        log_info(event, kv("number", number), kv("cluster_tick", *message.tick),
                 kv("recipients", total.queued), kv("dropped", total.dropped), kv("connections", connections),
                 kv("fanout_us", fanout_us));
    else
        log_info(event, kv("number", number), kv("recipients", total.queued), kv("dropped", total.dropped),
                 kv("connections", connections), kv("fanout_us", fanout_us));
    co_return total;
}

} // namespace wolf
