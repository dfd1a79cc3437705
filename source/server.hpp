#pragma once

#include "assets.hpp"
#include "config.hpp"
#include "metrics.hpp"
#include "quote_deck.hpp"
#include "registry.hpp"
#include "support/loop.hpp"
#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wolf {

class broadcaster;

/**
 * The whole server: the listener, the broadcaster fed by its broadcast_source, and one shard per
 * event-loop thread (--threads), each with its connections, their registry and a watchdog. Shard 0 runs on
 * the executor the server is given (main's io_context, or a test's); the others get an io_context and a
 * thread each, made in start() and joined by the destructor.
 */
class server {
public:
    /** With `tls` (which must outlive the server) the port speaks only HTTPS and wss://; without it, plain
     * HTTP and ws://. `redis_tls` is the context for a rediss:// --redis (make_redis_tls_context). */
    server(loop_executor executor, config cfg, asset_store assets, quote_deck deck,
           net::ssl::context* tls = nullptr, std::shared_ptr<net::ssl::context> redis_tls = nullptr);
    ~server();
    server(server const&) = delete;
    server& operator=(server const&) = delete;

    /** Binds and listens, then starts every actor. Throws std::invalid_argument if the host does not resolve,
     * boost::system::system_error if it cannot bind. */
    void start();

    /** The bound port (useful with --port 0). */
    std::uint16_t port() const;
    /** "address:port" as bound. */
    std::string address() const;

    /**
     * Contract section 8: stops accepting at once, sends close 1001 to every connection, waits up to the
     * shutdown grace for the closing handshakes, then drops what is left and stops every actor. When it
     * returns nothing of the server is left running, so the io_context runs out of work.
     */
    net::awaitable<void> shutdown();

    /** The first shard's registry: with one thread (tests), every connection. Touch it from that thread. */
    registry const& connections() const noexcept;
    /** The pool sizes across every shard. */
    pool_counts const& pools() const noexcept;
    metrics const& stats() const noexcept;
    broadcaster& broadcast() noexcept;
    /** The number of event-loop threads (shards). */
    std::size_t threads() const noexcept;
    /** The open connections of each thread, in thread order, each counted on its own thread. */
    net::awaitable<std::vector<std::size_t>> connections_per_thread();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace wolf
