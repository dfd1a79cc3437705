#pragma once

#include "metrics.hpp" // broker_status
#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

namespace wolf {

class broadcaster;
class quote_deck;
struct config;

/**
 * Where the broadcasts come from: the one seam between the broadcaster and whoever decides what is broadcast
 * and when. A single node's ticker deals the deck's quotes on the local clock; a cluster node (--redis)
 * hands on what the cluster's leader publishes through Redis. The server owns one, made by
 * make_broadcast_source, and everything that depends on which it is asks it: the ticks, an operator's
 * message (POST /api/wisdom) and the broker's status (/healthz, /metrics).
 *
 * A source hands the broadcaster every publication, ticks and operator messages alike, in the one order it
 * decides, and numbers them where the numbers must agree across nodes (a cluster's tick): the position of
 * each publication in that order is the source's to give.
 */
class broadcast_source {
public:
    virtual ~broadcast_source() = default;

    /** Feeds the broadcaster until stop(). On the server's executor. */
    virtual net::awaitable<void> run() = 0;
    /** Ends run() soon (a cluster's leader first gives its lease up). On the server's executor. */
    virtual void stop() = 0;

    /** An operator's message for every subscriber, taken without waiting; false when the source cannot take
     * one now. From any thread. */
    virtual bool try_publish(std::string text) = 0;
    /** Who decides the broadcast, and whether it can now. From any thread. */
    virtual broker_status status() const = 0;
};

/** The epoch the server numbers its broadcasts in until its source says otherwise: a fresh one for a single
 * node; none ("") for a cluster node, which learns the cluster's from Redis. */
std::string starting_epoch(config const& cfg);

/** How many messages the broadcaster's inbox holds for `cfg`: enough for all a cluster node reads back from
 * its stream at once (about --history entries, Redis's approximate trimming keeping up to a hundred more)
 * and what arrives live meanwhile. */
std::size_t broadcaster_capacity(config const& cfg) noexcept;

/**
 * The source `cfg` asks for, feeding `target`: a ticker over `deck` for a single node, or with cfg.redis this
 * node's membership of a cluster (whose leader deals the cluster's deck, kept in Redis, which must
 * hold the same quotes as `deck`). The one place a source is chosen;
 * `deck` and `target` must outlive it.
 */
std::unique_ptr<broadcast_source> make_broadcast_source(net::any_io_executor executor, config const& cfg,
                                                        std::shared_ptr<net::ssl::context> redis_tls,
                                                        quote_deck& deck, broadcaster& target);

} // namespace wolf
