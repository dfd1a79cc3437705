#pragma once

#include "shard.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <span>

namespace wolf {

/**
 * Accepts connections until the acceptor is closed and deals them round-robin to the event-loop threads:
 * each new socket is created on its thread's executor and its HTTP session spawned there, so from then on
 * the connection never crosses threads. When accept fails for lack of resources (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) it backs off (10 ms doubling to 1 s) and retries, with at most one log line a second, instead of
 * spinning.
 */
net::awaitable<void> run_listener(net::ip::tcp::acceptor& acceptor, std::span<shard* const> shards);

} // namespace wolf
