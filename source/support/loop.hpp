#pragma once

// The types of every connection's path, on the concrete executor of an event-loop thread's io_context.
//
// Asio's default I/O types (net::ip::tcp::socket, net::steady_timer, net::awaitable<T>) carry an
// any_io_executor: a type-erased executor whose every copy, move, destruction and dispatch is an indirect
// call. A connection copies its executor dozens of times over a session (each operation, handler and
// coroutine frame holds one): naming it cut 18 % of the instructions of a short session
// (docs/architecture.md, "A connection's path names its executor"). On the per-connection path everything
// names the executor as it is; the long-lived actors (broadcaster, ticker, watchdog, cluster) keep
// any_io_executor.

#include "support/net.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace wolf {

/** The executor of one event-loop thread (a shard's io_context). */
using loop_executor = net::io_context::executor_type;

/** A coroutine on a loop_executor. */
template <class T = void>
using loop_awaitable = net::awaitable<T, loop_executor>;

/** use_nothrow for a loop_awaitable: `auto [ec, n] = co_await op(..., loop_nothrow);`. */
inline constexpr auto loop_nothrow = net::as_tuple(net::use_awaitable_t<loop_executor>{});

using tcp_socket = net::basic_stream_socket<net::ip::tcp, loop_executor>;
using tcp_acceptor = net::basic_socket_acceptor<net::ip::tcp, loop_executor>;
using loop_timer = net::basic_waitable_timer<steady_clock, net::wait_traits<steady_clock>, loop_executor>;

} // namespace wolf
