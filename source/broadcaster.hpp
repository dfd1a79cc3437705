#pragma once

#include "metrics.hpp"
#include "net.hpp"
#include "registry.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <string>

namespace wolf {

/** Something to broadcast: the ticker's quote, or (later) an operator's message. */
struct broadcast_message {
    enum class origin { tick, publish };
    std::string text;
    origin from = origin::tick;
};

/**
 * The one broadcaster of the process. It receives messages from a channel, serializes each one once
 * into a `wisdom_distribution` frame and offers that same frame to every subscriber's queue.
 *
 * Invariant: fan-out never waits on a connection. peer::offer only queues (or drops on a full queue)
 * and never changes the registry, so the subscriber list is walked once, without copying it.
 */
class broadcaster {
public:
    broadcaster(net::any_io_executor executor, registry& connections, metrics& stats,
                std::size_t capacity = 16);

    /** Receives and fans out until close() is called. */
    net::awaitable<void> run();

    /** Queues a message for the broadcaster, waiting for room; false once closed. */
    net::awaitable<bool> publish(broadcast_message message);

    /** Queues a message if there is room now, without waiting; false when full or closed. */
    bool try_publish(broadcast_message message);

    /** Ends run() and every publish(). */
    void close();

    /** Serializes once and offers the frame to every current subscriber; returns how many queued it. */
    std::size_t fan_out(broadcast_message const& message);

private:
    using channel = net::experimental::channel<void(boost::system::error_code, broadcast_message)>;

    channel channel_;
    registry& connections_;
    metrics& stats_;
};

} // namespace wolf
