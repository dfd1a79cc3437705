#pragma once

#include "assets.hpp"
#include "config.hpp"
#include "history.hpp"
#include "metrics.hpp"
#include "registry.hpp"
#include "support/loop.hpp"
#include "support/net.hpp"

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <boost/intrusive/list.hpp>
#include <functional>
#include <memory>
#include <string>

namespace wolf {

class broadcast_source;

/** An HTTP connection that shutdown must be able to close while it waits for a request. On its shard's list
 * while it lives (an intrusive link: joining and leaving allocate nothing). */
class closable
    : public boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
public:
    virtual void close() = 0;

protected:
    ~closable() = default;
};

/**
 * What every connection shares, whatever its thread: the configuration, the UI files, the counters and the
 * pool totals. Owned by the server; connections hold a reference, never a copy. Safe from any thread: each
 * member is immutable, atomic, or set before the event-loop threads start.
 */
struct server_state {
    server_state(config c, asset_store a, net::ssl::context* t = nullptr,
                 std::shared_ptr<net::ssl::context> r = nullptr)
        : cfg(std::move(c))
        , assets(std::move(a))
        , tls(t)
        , redis_tls(std::move(r)) {
        stats.max_connections = cfg.max_connections;
        stats.interval_seconds = std::chrono::duration<double>(cfg.interval).count();
    }

    config const cfg;
    asset_store const assets;
    net::ssl::context* const tls; // null: plain HTTP and ws://; else only HTTPS and wss:// on the port
    std::shared_ptr<net::ssl::context> const redis_tls; // for a rediss:// --redis; null otherwise
    metrics stats;
    pool_counts pools;

    std::atomic<bool> listening{false}; // the listener is up (the deck is loaded before a server exists)
    std::atomic<bool> shutting_down{false};
    steady_clock::time_point const started = steady_clock::now();
    // When a listener last logged accept_failed (steady_clock ticks; 0: never): at most one a second in all.
    std::atomic<steady_clock::rep> last_accept_warning{0};
    // Where the broadcasts come from: HTTP publishes an operator's message through it and reads the broker's
    // status from it, from any thread. Set by the server before it starts listening; never null after.
    broadcast_source* source = nullptr;
};

/**
 * One event-loop thread's share of the server: the connections it runs and their registry. Everything here
 * is touched from that thread only; what crosses threads goes through `server`.
 */
struct shard {
    /** `epoch` names the sequence of broadcasts this server numbers until its source says otherwise. */
    shard(server_state& s, loop_executor ex, std::string const& epoch)
        : server(s)
        , executor(std::move(ex))
        , connections(&s.pools)
        , record(s.cfg.history, epoch) {}
    shard(shard const&) = delete;
    shard& operator=(shard const&) = delete;

    server_state& server;
    loop_executor const executor;
    registry connections;
    history record; // the latest broadcasts offered on this thread, for subscribers that recover
    boost::intrusive::list<closable, boost::intrusive::constant_time_size<false>> http_connections;
    std::function<void()> on_peer_removed; // the server's shutdown waits on it
};

} // namespace wolf
