#pragma once

#include "assets.hpp"
#include "config.hpp"
#include "metrics.hpp"
#include "net.hpp"
#include "quote_deck.hpp"
#include "registry.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>

namespace wolf {

class broadcaster;

/**
 * The whole server on one executor: the listener, the broadcaster fed by the ticker, the watchdog, and
 * the registry they share. main() runs one; the integration tests run one inside their own io_context.
 */
class server {
public:
    /** With `tls` (which must outlive the server) the port speaks only HTTPS and wss://; without it, plain
     * HTTP and ws://. */
    server(net::any_io_executor executor, config cfg, asset_store assets, quote_deck deck,
           net::ssl::context* tls = nullptr);
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

    registry const& connections() const noexcept;
    metrics const& stats() const noexcept;
    broadcaster& broadcast() noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace wolf
