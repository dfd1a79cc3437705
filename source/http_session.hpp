#pragma once

#include "net.hpp"
#include "shared_state.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/message_generator.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>

namespace wolf {

/**
 * Serves one TCP connection: HTTP requests one at a time (keep-alive), until one of them upgrades to a
 * WebSocket, which then runs in this same coroutine.
 */
net::awaitable<void> run_http_session(net::ip::tcp::socket socket, shared_state& state);

/** The response to a plain (non-upgrade) request: static files, /healthz, /metrics, 404/405/426. */
http::message_generator handle_request(http::request<http::string_body> const& request,
                                       shared_state const& state);

/**
 * For an upgrade request: nullopt if it may proceed to the WebSocket handshake, or the refusal to send
 * (404 on a path other than /ws and /, 503 at capacity or while shutting down).
 */
std::optional<http::response<http::string_body>>
refuse_upgrade(http::request<http::string_body> const& request, shared_state const& state);

} // namespace wolf
