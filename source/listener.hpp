#pragma once

#include "net.hpp"
#include "shared_state.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace wolf {

/**
 * Accepts connections until the acceptor is closed, spawning an HTTP session for each. When accept
 * fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) it backs off (10 ms doubling to 1 s) and
 * retries, with at most one log line a second, instead of spinning.
 */
net::awaitable<void> run_listener(net::ip::tcp::acceptor& acceptor, shared_state& state);

} // namespace wolf
