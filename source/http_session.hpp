#pragma once

#include "shard.hpp"
#include "support/loop.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/message_generator.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>

namespace wolf {

/**
 * Serves one accepted TCP connection: plain HTTP and ws://, or with state.tls only HTTPS and wss://. On a
 * TLS port the ClientHello and the handshake must complete within --handshake-timeout, and a client that
 * speaks plain HTTP gets 400 and is closed.
 */
loop_awaitable<> run_connection(tcp_socket socket, shard& connection_shard);

/**
 * Serves HTTP requests one at a time (keep-alive) on a connected socket until one of them upgrades to a
 * WebSocket, whose session then runs in a coroutine of its own. `buffer` holds what was already read from
 * the socket. Defined for a plain TCP socket and a tls_socket past its handshake (tls_socket.hpp).
 */
template <class Socket>
loop_awaitable<> run_http_session(Socket socket, beast::flat_buffer buffer, shard& connection_shard);

/** The response to a plain (non-upgrade) request: static files, /healthz, /metrics, 404/405/426. */
http::message_generator handle_request(http::request<http::string_body> const& request,
                                       server_state const& state);

/**
 * For an upgrade request: nullopt if it may proceed to the WebSocket handshake, or the refusal to send
 * (404 on a path other than /ws and /, 503 at capacity or while shutting down).
 */
std::optional<http::response<http::string_body>>
refuse_upgrade(http::request<http::string_body> const& request, server_state const& state);

} // namespace wolf
