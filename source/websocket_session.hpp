#pragma once

#include "shard.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>

namespace wolf {

/**
 * The coroutine of one WebSocket connection, from the upgrade request to the end: the handshake, `initial`,
 * the read loop that applies client events, and the close. Returns when the connection is gone. Defined for
 * beast::tcp_stream (ws://; the session keeps only its socket) and tls_socket (wss://, tls_socket.hpp). The
 * caller has taken the connection's place among --max-connections (pools.try_admit).
 */
template <class Stream>
net::awaitable<void> run_websocket_session(Stream stream,
                                           std::unique_ptr<http::request<http::string_body>> request,
                                           shard& connection_shard);

} // namespace wolf
