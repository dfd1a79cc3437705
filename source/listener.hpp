#pragma once

#include "shard.hpp"
#include "support/loop.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <vector>

namespace wolf {

/**
 * One listening socket per event-loop thread, all bound to `endpoint`, each on its thread's executor. With
 * one thread it is a plain listener. With several, each has `SO_REUSEPORT` and the kernel spreads new
 * connections across them by a hash of the peer's address and port, so every thread accepts its own
 * connections and none is handed from one thread to another. Before the group binds a fixed port, a socket
 * without `SO_REUSEPORT` is bound to it once: that fails if anything listens there, including another
 * wolf-wisdom's group, which the kernel would otherwise let share the port. Throws
 * `boost::system::system_error` if the port cannot be had.
 */
std::vector<std::unique_ptr<tcp_acceptor>> open_listeners(net::ip::tcp::endpoint const& endpoint,
                                                          std::vector<shard*> const& shards);

/**
 * Accepts connections on `acceptor` (on `target`'s thread) until it is closed, and runs each one's HTTP
 * session there, so a connection never crosses threads. When accept fails for lack of resources (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM) it backs off (10 ms doubling to 1 s) and retries, logging at most one line a
 * second for the whole server, instead of spinning.
 */
loop_awaitable<> run_listener(tcp_acceptor& acceptor, shard& target);

} // namespace wolf
