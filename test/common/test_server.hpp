#pragma once

#include "config.hpp"
#include "server.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace wolf::test {

using namespace std::chrono_literals;

/** Fast settings for tests: 127.0.0.1, any free port, no ticks unless a test asks (1 h interval), short
 * handshake and shutdown timeouts, quiet logs. */
config fast_config();

/** The deck tests run with: known, distinct quotes. */
std::vector<std::string> test_quotes();

/**
 * Starts a server in a fresh io_context, runs `body` as a coroutine beside it, then shuts the server
 * down. Fails if `deadline` passes first or if anything is still running after the shutdown (a leaked
 * operation), and rethrows whatever the body threw, so BOOST_REQUIRE inside coroutines works.
 */
void run_with_server(config cfg, std::function<net::awaitable<void>(server&)> body,
                     std::chrono::milliseconds deadline = 30s);

/** The same, with a deck of these quotes. */
void run_with_server(config cfg, std::vector<std::string> quotes,
                     std::function<net::awaitable<void>(server&)> body,
                     std::chrono::milliseconds deadline = 30s);

/** The same on a TLS port (HTTPS and wss:// only) with this server context. */
void run_with_server(config cfg, net::ssl::context& tls, std::function<net::awaitable<void>(server&)> body,
                     std::chrono::milliseconds deadline = 30s);

/**
 * Runs `task` on `ioc` until it finishes, failing the test if `deadline` passes first, rethrows what it
 * threw, then requires everything else on `ioc` to end by itself within 5 s (nothing leaked).
 */
void run_to_completion(net::io_context& ioc, net::awaitable<void> task, std::chrono::milliseconds deadline);

/**
 * Runs `body` on a fresh io_context until it and everything it spawned have finished. Fails if
 * `deadline` passes first, or if work is still pending 5 s after the body returned; rethrows what the
 * body threw, so BOOST_REQUIRE inside coroutines works.
 */
void run_coro(std::function<net::awaitable<void>()> body, std::chrono::milliseconds deadline = 20s);

/** Publishes `text` through the server's broadcaster, as an operator's message is (it then goes out like a
 * tick's quote); the test fails if the broadcaster refuses it. */
net::awaitable<void> publish(server& srv, std::string text);

/** Waits without blocking the io_context (for pacing a client, never for awaiting an event). */
net::awaitable<void> pause(std::chrono::milliseconds how_long);

/**
 * What a test awaits that its own callbacks and coroutines announce: they change the state, then call
 * notify(); until() re-checks its condition at each notification, never on a timer of its own, and
 * returns whether it held within `limit`. For one io_context thread.
 */
class notifier {
public:
    /** The state may have changed: every until() re-checks its condition. */
    void notify() {
        for (auto* waiting : waiting_)
            waiting->cancel();
    }

    net::awaitable<bool> until(std::function<bool()> condition, std::chrono::milliseconds limit);

private:
    std::vector<net::steady_timer*> waiting_; // one per until() waiting now
};

/**
 * For server-side state no client can observe as an event (a drop without a closing handshake):
 * re-checks `condition` every 10 ms and returns whether it held within `limit`.
 */
net::awaitable<bool> eventually(std::function<bool()> condition, std::chrono::milliseconds limit);

} // namespace wolf::test
