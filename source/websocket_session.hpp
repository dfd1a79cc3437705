#pragma once

#include "shard.hpp"
#include "support/loop.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>

namespace wolf {

/**
 * The coroutine of one WebSocket connection, from the upgrade request to the end: the handshake, `initial`,
 * the read loop that applies client events, and the close. Returns when the connection is gone. Defined for
 * a plain TCP socket (ws://) and a tls_socket (wss://, tls_socket.hpp). The caller has taken the
 * connection's place among --max-connections (pools.try_admit).
 */
template <class Transport>
loop_awaitable<> run_websocket_session(Transport transport,
                                       std::unique_ptr<http::request<http::string_body>> request,
                                       shard& connection_shard);

} // namespace wolf
