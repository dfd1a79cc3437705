#pragma once

#include "net.hpp"
#include "shared_state.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace wolf {

/**
 * Runs one WebSocket connection from the upgrade request to the end: the handshake, `initial`, the read
 * loop that applies client events, and the close. Returns when the connection is gone. Defined for
 * beast::tcp_stream (ws://) and tls_stream (wss://, tls.hpp).
 */
template <class Stream>
net::awaitable<void> run_websocket_session(Stream stream, http::request<http::string_body> request,
                                           shared_state& state);

} // namespace wolf
