#pragma once

#include "assets.hpp"
#include "config.hpp"
#include "metrics.hpp"
#include "net.hpp"
#include "registry.hpp"

#include <functional>
#include <unordered_set>

namespace wolf {

/** An HTTP connection that shutdown must be able to close while it waits for a request. */
class closable {
public:
    virtual void close() = 0;

protected:
    ~closable() = default;
};

/**
 * What every connection shares: the configuration, the UI files, the registry and the counters.
 * Owned by the server; sessions hold a reference, never a copy. Single-threaded.
 */
struct shared_state {
    shared_state(config c, asset_store a, net::ssl::context* t = nullptr)
        : cfg(std::move(c))
        , assets(std::move(a))
        , tls(t) {}

    config const cfg;
    asset_store const assets;
    net::ssl::context* const tls; // null: plain HTTP and ws://; else only HTTPS and wss:// on the port
    registry connections;
    metrics stats;

    std::size_t pending_upgrades = 0; // WebSocket handshakes under way: they count against --max-connections
    bool listening = false;           // the listener is up (the deck is loaded before a server exists)
    bool shutting_down = false;
    steady_clock::time_point const started = steady_clock::now();
    // The admin publish path (POST /api/wisdom): hands a message to the broadcaster without waiting;
    // false when it cannot take one now. Set by the server.
    std::function<bool(std::string)> publish;
    std::unordered_set<closable*> http_connections;
    std::function<void()> on_peer_removed; // the server's shutdown waits on it
};

} // namespace wolf
