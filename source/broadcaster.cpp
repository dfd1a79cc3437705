#include "broadcaster.hpp"

#include "protocol.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"

#include <boost/asio/post.hpp>
#include <chrono>

namespace wolf {

broadcaster::broadcaster(net::any_io_executor executor, std::vector<fan_out_target> targets, metrics& stats,
                         pool_counts const& pools, std::string epoch, std::size_t capacity)
    : executor_(executor)
    , targets_(std::move(targets))
    , inbox_(executor, capacity)
    , results_(executor, targets_.size() + 1)
    , stats_(stats)
    , pools_(&pools)
    , latest_{std::move(epoch), 0} {
}

broadcaster::broadcaster(net::any_io_executor executor, registry& connections, metrics& stats,
                         std::size_t capacity)
    : executor_(executor)
    , targets_{fan_out_target{executor, &connections}}
    , inbox_(executor, capacity)
    , results_(executor, 2)
    , stats_(stats)
    , pools_(nullptr)
    , latest_{new_epoch(), 0} {
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
    // A position the source gave, or the next of this broadcaster's own sequence. One given twice (a
    // cluster's message that arrived again) is never recorded or offered again.
    auto at = message.at ? std::move(*message.at) : protocol::position{latest_.epoch, latest_.offset + 1};
    if (at.epoch == latest_.epoch && at.offset <= latest_.offset) {
        log_debug("broadcast_repeated", kv("offset", at.offset), kv("latest", latest_.offset));
        co_return offer_result{};
    }
    bool const epoch_starts = at.epoch != latest_.epoch;
    latest_ = at;
    // Serialized and framed once; every subscriber's socket, on every thread, gets these same bytes.
    bool const offered = message.purpose == broadcast_message::use::deliver;
    bool const position_only = message.purpose == broadcast_message::use::position;
    auto const frame =
        position_only
            ? shared_frame{}
            : make_text_frame(protocol::make_wisdom_distribution(message.text, at.offset, message.tick),
                              at.offset);
    // One thread's share: recorded, then offered, in one handler, so a subscriber recovering on that thread
    // finds every broadcast either in the history or still to come live.
    auto const share = [frame, offered, position_only, at, epoch_starts](fan_out_target const& target) {
        if (epoch_starts)
            for (peer* p : target.connections->subscriber_peers())
                p->epoch_changed();
        if (target.record) {
            if (position_only)
                target.record->skip_to(at);
            else
                target.record->append(at, frame);
        }
        return offered ? offer_to(*target.connections, frame) : offer_result{};
    };

    // The other threads start on their shares first, then this thread does its own, so they run at once.
    std::size_t awaited = 0;
    fan_out_target const* local = nullptr;
    for (auto const& target : targets_) {
        if (target.executor == executor_) {
            local = &target;
            continue;
        }
        ++awaited;
        net::post(target.executor, [this, share, &target] {
            auto const result = share(target);
            net::post(executor_, [this, result] { results_.try_send(boost::system::error_code{}, result); });
        });
    }
    offer_result total;
    if (local) {
        total += share(*local);
        if (local->record) stats_.history_length = local->record->size();
    }
    for (; awaited > 0; --awaited) {
        auto [ec, result] = co_await results_.async_receive(use_nothrow);
        if (ec) break;
        total += result;
    }

    if (!offered) co_return total;
    stats_.wisdom_sent_total += total.queued;
    stats_.wisdom_dropped_total += total.dropped;
    std::uint64_t const number = ++stats_.broadcast_ticks_total;
    stats_.last_broadcast_seconds =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto const elapsed = steady_clock::now() - started;
    stats_.broadcast_duration.observe(std::chrono::duration<double>(elapsed).count());
    auto const connections = pools_ ? pools_->connections() : targets_.front().connections->connections();
    auto const event = message.from == broadcast_message::origin::tick ? "tick" : "publish";
    auto const fanout_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    if (message.tick) // the cluster's number too, the same on every node
        log_info(event, kv("number", number), kv("cluster_tick", *message.tick),
                 kv("recipients", total.queued), kv("dropped", total.dropped), kv("connections", connections),
                 kv("fanout_us", fanout_us), kv("offset", at.offset));
    else
        log_info(event, kv("number", number), kv("recipients", total.queued), kv("dropped", total.dropped),
                 kv("connections", connections), kv("fanout_us", fanout_us), kv("offset", at.offset));
    co_return total;
}

} // namespace wolf
