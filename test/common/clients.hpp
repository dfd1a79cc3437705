#pragma once

#include "protocol.hpp"
#include "support/net.hpp"
#include "tls.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wolf::test {

/** The close frame a client received. */
struct close_info {
    std::uint16_t code = 0;
    std::string reason;
};

/** What a client read until the server closed: every event, then the close. */
struct read_to_close {
    std::vector<boost::json::object> events;
    close_info close;
};

/** A test client's TLS stream: Asio's, which checks the server's against an implementation of its own. */
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/** How a test client reaches the server on 127.0.0.1: a stream type and what it needs to connect. */
template <class Stream>
struct dialer;

/** Plain TCP to a port; converts from the port, so `ws_client::open(srv.port())` reads as before. */
template <>
struct dialer<beast::tcp_stream> {
    dialer(std::uint16_t p) noexcept
        : port(p) {}
    std::uint16_t port;
};

/** TLS to a port; the handshake verifies the server's certificate with `context`. */
template <>
struct dialer<tls_stream> {
    std::uint16_t port;
    net::ssl::context& context;
};

/**
 * A WebSocket test client on coroutines, over plain TCP (ws_client) or TLS (wss_client). Failures (a
 * failed connection or TLS handshake, a read error where an event was expected, a frame that is not a
 * JSON object) end the test through BOOST_REQUIRE.
 */
template <class Stream>
class basic_ws_client {
public:
    /** Completes the handshake and reads `initial`. */
    static net::awaitable<basic_ws_client> open(dialer<Stream> to, std::string target = "/ws");
    /** Completes the handshake only; returns the server's HTTP response status on failure via BOOST_REQUIRE.
     */
    static net::awaitable<basic_ws_client> handshake(dialer<Stream> to, std::string target = "/ws");
    /** Tries the handshake and returns the HTTP status the server answered with (101 on success). */
    static net::awaitable<unsigned> try_handshake(dialer<Stream> to, std::string target = "/ws");

    std::string const& id() const noexcept { return id_; }
    /** The latest broadcast's position, as `initial` gave it. */
    protocol::position const& initial_position() const noexcept { return latest_; }
    websocket::stream<Stream>& stream() noexcept { return ws_; }

    /** The next frame, parsed as a JSON object. */
    net::awaitable<boost::json::object> read_event();
    /** Reads until an event of `type` arrives; returns it. */
    net::awaitable<boost::json::object> read_until(std::string_view type);
    /** Reads (discarding every event) until the server closes; returns its close code and reason. */
    net::awaitable<close_info> read_close();
    /** Reads every event until the server closes; returns them and the close. */
    net::awaitable<read_to_close> read_events_until_close();

    net::awaitable<void> send_text(std::string_view text);
    /** {"type": type, "payload": {"id": id}}; with the connection's own id by default. */
    net::awaitable<void> send_event(std::string_view type);
    net::awaitable<void> send_event(std::string_view type, std::string_view id);

    /** Like send_event, but returns false instead of failing when the connection is gone. */
    net::awaitable<bool> try_send_event(std::string_view type, std::string_view id);

    /** `subscribe` with `since` (connected already); returns the confirmation's payload. */
    net::awaitable<boost::json::object> subscribe_since(protocol::position const& since);

    /** `connect`, then `subscribe` and wait for the confirmation. */
    net::awaitable<void> connect_and_subscribe();

    /**
     * Sends an event the server answers with an `unknown_type` error, and reads until that error. Every
     * frame the server queued before reading the barrier has then been read; they are returned.
     */
    net::awaitable<std::vector<boost::json::object>> barrier();

    /** Sends close 1000 and completes the closing handshake. */
    net::awaitable<void> close();

private:
    explicit basic_ws_client(websocket::stream<Stream> ws)
        : ws_(std::move(ws)) {}

    websocket::stream<Stream> ws_;
    std::string id_;
    protocol::position latest_;
};

using ws_client = basic_ws_client<beast::tcp_stream>;
using wss_client = basic_ws_client<tls_stream>;
extern template class basic_ws_client<beast::tcp_stream>;
extern template class basic_ws_client<tls_stream>;

/** The type of an event object ("" if absent). */
std::string event_type(boost::json::object const& event);
/** payload[field] as a string ("" if absent). */
std::string payload_string(boost::json::object const& event, std::string_view field);

/** Extra request headers, e.g. {{http::field::authorization, "Bearer ..."}}. */
using header_list = std::vector<std::pair<http::field, std::string>>;

/** One HTTP/1.1 request on a fresh connection to 127.0.0.1:port. */
net::awaitable<http::response<http::string_body>> http_request(std::uint16_t port, http::verb method,
                                                               std::string target, std::string body = {},
                                                               header_list headers = {});

/** The same over TLS, verifying the server's certificate with `context`. */
net::awaitable<http::response<http::string_body>> https_request(std::uint16_t port,
                                                                net::ssl::context& context, http::verb method,
                                                                std::string target, std::string body = {},
                                                                header_list headers = {});

/** Writes raw bytes on a fresh connection and returns everything the server sends until it closes. */
net::awaitable<std::string> raw_exchange(std::uint16_t port, std::string request);

/** Samples of the Prometheus text: "name" or "name{labels}" -> value. */
using metric_samples = std::map<std::string, double, std::less<>>;
metric_samples parse_metrics(std::string_view text);
/** GET /metrics on 127.0.0.1:port, parsed. */
net::awaitable<metric_samples> scrape_metrics(std::uint16_t port);

/** Reads `count` wisdom_distribution events; returns each payload's number `field` ("tick", "offset"). */
net::awaitable<std::vector<std::uint64_t>> read_wisdom_numbers(ws_client& client, std::string_view field,
                                                               std::size_t count);
/** The sample's value; fails the test if it is missing. */
double metric(metric_samples const& samples, std::string_view name);

} // namespace wolf::test
