#pragma once

#include "frame.hpp"
#include "history.hpp"
#include "metrics.hpp"
#include "protocol.hpp"
#include "registry.hpp"
#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wolf {

/** Something to broadcast: the ticker's quote, or an operator's message. */
struct broadcast_message {
    enum class origin { tick, publish };
    std::string text;
    origin from = origin::tick;
    std::optional<std::uint64_t> tick{}; // a cluster's tick number (--redis): the frame carries it as "tick"
    // Its position (protocol section 10) when the source gave it one (a cluster's, the same on every node);
    // none: the broadcaster numbers it next in its own epoch (a single node).
    std::optional<protocol::position> at{};
    // What to do with it: offer it to the subscribers (and record it); record it in the history only (a node
    // filling its history); or only take its position as the latest, with no broadcast (a node that learns
    // its cluster's epoch and offset).
    enum class use { deliver, record, position } purpose = use::deliver;
};

/** What one fan-out did: frames queued (or written) and frames dropped on full queues. */
struct offer_result {
    std::size_t queued = 0;
    std::size_t dropped = 0;

    offer_result& operator+=(offer_result const& other) noexcept {
        queued += other.queued;
        dropped += other.dropped;
        return *this;
    }
};

/** One event-loop thread's subscribers, as the broadcaster reaches them: the thread's executor, the registry
 * and the history only that thread touches (null: none kept). */
struct fan_out_target {
    net::any_io_executor executor;
    registry* connections;
    history* record = nullptr;
};

/**
 * The one broadcaster of the process. It receives messages from a channel (any thread may publish), gives
 * each its position (or takes the one the source gave), serializes it once into a complete
 * `wisdom_distribution` frame, and hands that same frame to every event-loop thread at once; each thread
 * records it in its history and offers it to its own subscribers, in one handler, and the broadcaster waits
 * until all have, so each tick's figures and log line are exact.
 *
 * Invariant: fan-out never waits on a connection. peer::offer only writes what the socket takes at once or
 * queues (or drops on a full queue), and never changes the registry, so a thread walks its subscriber list
 * once, without copying it. Only the frame pointer crosses threads; no lock is taken per delivery.
 */
class broadcaster {
public:
    /** Fans out to `targets`; the one whose executor is `executor` (if any) is served inline. `pools` gives
     * the connection count each tick logs; `epoch` names the sequence this broadcaster numbers. */
    broadcaster(net::any_io_executor executor, std::vector<fan_out_target> targets, metrics& stats,
                pool_counts const& pools, std::string epoch, std::size_t capacity = 16);
    /** One registry on the broadcaster's own executor (a single-threaded server). */
    broadcaster(net::any_io_executor executor, registry& connections, metrics& stats,
                std::size_t capacity = 16);

    /** Receives and fans out until close() is called. */
    net::awaitable<void> run();

    /** Queues a message for the broadcaster, waiting for room; false once closed. */
    net::awaitable<bool> publish(broadcast_message message);

    /** Queues a message if there is room now, without waiting; false when full or closed. From any thread. */
    bool try_publish(broadcast_message message);

    /** Ends run() and every publish(). */
    void close();

    /** Serializes `message` once and has every thread offer the frame to its subscribers. */
    net::awaitable<offer_result> fan_out(broadcast_message message);

    /** Offers `frame` to every subscriber of `connections` (on the calling thread, which must own it). */
    static offer_result offer_to(registry const& connections, shared_frame const& frame);

    /** The latest broadcast's position. On the broadcaster's executor. */
    protocol::position const& latest() const noexcept { return latest_; }

private:
    using inbox = net::experimental::concurrent_channel<void(boost::system::error_code, broadcast_message)>;
    using results = net::experimental::channel<void(boost::system::error_code, offer_result)>;

    net::any_io_executor executor_;
    std::vector<fan_out_target> targets_;
    inbox inbox_;
    results results_; // the other threads' offer_results, posted back to executor_
    metrics& stats_;
    pool_counts const* pools_; // null: one registry, on this thread, counts the connections
    protocol::position latest_;
};

} // namespace wolf
