#include "broadcaster.hpp"

#include "async.hpp"
#include "logger.hpp"
#include "protocol.hpp"

#include <chrono>

namespace wolf {

broadcaster::broadcaster(net::any_io_executor executor, registry& connections, metrics& stats,
                         std::size_t capacity)
    : channel_(std::move(executor), capacity)
    , connections_(connections)
    , stats_(stats) {
}

net::awaitable<void> broadcaster::run() {
    for (;;) {
        auto [ec, message] = co_await channel_.async_receive(use_nothrow);
        if (ec) co_return; // closed
        fan_out(message);
    }
}

net::awaitable<bool> broadcaster::publish(broadcast_message message) {
    auto [ec] = co_await channel_.async_send(boost::system::error_code{}, std::move(message), use_nothrow);
    co_return !ec;
}

bool broadcaster::try_publish(broadcast_message message) {
    return channel_.try_send(boost::system::error_code{}, std::move(message));
}

void broadcaster::close() {
    channel_.close();
}

std::size_t broadcaster::fan_out(broadcast_message const& message) {
    auto const started = steady_clock::now();
    // Serialized and framed once; every subscriber's socket gets these same bytes.
    auto const frame = make_text_frame(protocol::make_wisdom_distribution(message.text));

    std::size_t queued = 0;
    auto const subscribers = connections_.subscriber_peers();
    for (peer* p : subscribers)
        if (p->offer(frame)) ++queued;
    auto const dropped = subscribers.size() - queued;

    stats_.wisdom_sent_total += queued;
    stats_.wisdom_dropped_total += dropped;
    std::uint64_t const number = ++stats_.broadcast_ticks_total;
    auto const elapsed = steady_clock::now() - started;
    stats_.broadcast_duration.observe(std::chrono::duration<double>(elapsed).count());
    log_info(message.from == broadcast_message::origin::tick ? "tick" : "publish", kv("number", number),
             kv("recipients", queued), kv("dropped", dropped), kv("connections", connections_.connections()),
             kv("fanout_us", std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));
    return queued;
}

} // namespace wolf
