#pragma once

#include "net.hpp"
#include "shared_state.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>

namespace wolf {

/**
 * The coroutine of one WebSocket connection, from the upgrade request to the end: the handshake, `initial`,
 * the read loop that applies client events, and the close. Returns when the connection is gone. Defined for
 * beast::tcp_stream (ws://; the session keeps only its socket) and tls_stream (wss://, tls.hpp). The caller
 * has counted the handshake in state.pending_upgrades; the session uncounts it when the handshake ends.
 */
template <class Stream>
net::awaitable<void> run_websocket_session(Stream stream,
                                           std::unique_ptr<http::request<http::string_body>> request,
                                           shared_state& state);

} // namespace wolf
