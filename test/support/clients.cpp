#include "clients.hpp"

#include "async.hpp"
#include "protocol.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

namespace wolf::test {
namespace {

net::ip::tcp::endpoint local(std::uint16_t port) {
    return {net::ip::make_address("127.0.0.1"), port};
}

net::awaitable<beast::tcp_stream> connect_tcp(std::uint16_t port) {
    beast::tcp_stream stream(co_await net::this_coro::executor);
    auto [ec] = co_await stream.async_connect(local(port), use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "connect to port " << port << ": " << ec.message());
    // Like a browser: back-to-back events (connect, subscribe) must not wait for a delayed ACK.
    stream.socket().set_option(net::ip::tcp::no_delay(true));
    co_return stream;
}

} // namespace

std::string event_type(boost::json::object const& event) {
    auto const* type = event.if_contains("type");
    return type && type->is_string() ? std::string(type->get_string()) : std::string();
}

std::string payload_string(boost::json::object const& event, std::string_view field) {
    auto const* payload = event.if_contains("payload");
    if (!payload || !payload->is_object()) return {};
    auto const* value = payload->get_object().if_contains(field);
    return value && value->is_string() ? std::string(value->get_string()) : std::string();
}

net::awaitable<unsigned> ws_client::try_handshake(std::uint16_t port, std::string target) {
    websocket::stream<beast::tcp_stream> ws(co_await connect_tcp(port));
    websocket::response_type response;
    // A refused upgrade fails the handshake; the status is what the test wants.
    co_await ws.async_handshake(response, "127.0.0.1:" + std::to_string(port), target, use_nothrow);
    co_return response.result_int();
}

net::awaitable<ws_client> ws_client::handshake(std::uint16_t port, std::string target) {
    websocket::stream<beast::tcp_stream> ws(co_await connect_tcp(port));
    websocket::response_type response;
    auto [ec] =
        co_await ws.async_handshake(response, "127.0.0.1:" + std::to_string(port), target, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "handshake on " << target << ": " << ec.message() << " (HTTP "
                                               << response.result_int() << ")");
    ws.text(true);
    co_return ws_client(std::move(ws));
}

net::awaitable<ws_client> ws_client::open(std::uint16_t port, std::string target) {
    auto client = co_await handshake(port, std::move(target));
    auto const initial = co_await client.read_event();
    BOOST_REQUIRE_EQUAL(event_type(initial), protocol::event::initial);
    client.id_ = payload_string(initial, "id");
    BOOST_REQUIRE(!client.id_.empty());
    co_return client;
}

net::awaitable<boost::json::object> ws_client::read_event() {
    beast::flat_buffer buffer;
    auto [ec, size] = co_await ws_.async_read(buffer, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "read: " << ec.message() << " (close code " << ws_.reason().code << ")");
    BOOST_REQUIRE_MESSAGE(ws_.got_text(), "the server sent a binary frame");
    boost::json::error_code parse_ec;
    auto value = boost::json::parse(beast::buffers_to_string(buffer.data()), parse_ec);
    BOOST_REQUIRE_MESSAGE(!parse_ec && value.is_object(),
                          "not a JSON object: " << beast::buffers_to_string(buffer.data()));
    co_return std::move(value.get_object());
}

net::awaitable<boost::json::object> ws_client::read_until(std::string_view type) {
    for (;;) {
        auto event = co_await read_event();
        if (event_type(event) == type) co_return event;
    }
}

net::awaitable<close_info> ws_client::read_close() {
    beast::flat_buffer buffer;
    for (;;) {
        auto [ec, size] = co_await ws_.async_read(buffer, use_nothrow);
        // A close frame was received even if answering it failed (the server may reset the connection
        // when unread data is left behind, as after an oversized message).
        if (ec == websocket::error::closed || (ec && ws_.reason().code != 0))
            co_return close_info{ws_.reason().code, std::string(ws_.reason().reason.c_str())};
        BOOST_REQUIRE_MESSAGE(!ec, "expected a close frame, got: " << ec.message());
        buffer.consume(buffer.size());
    }
}

net::awaitable<void> ws_client::send_text(std::string_view text) {
    auto [ec, size] = co_await ws_.async_write(net::buffer(text.data(), text.size()), use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "write: " << ec.message());
}

net::awaitable<void> ws_client::send_event(std::string_view type) {
    co_await send_event(type, id_);
}

net::awaitable<void> ws_client::send_event(std::string_view type, std::string_view id) {
    auto const text = boost::json::serialize(boost::json::object{{"type", type}, {"payload", {{"id", id}}}});
    co_await send_text(text);
}

net::awaitable<bool> ws_client::try_send_event(std::string_view type, std::string_view id) {
    auto const text = boost::json::serialize(boost::json::object{{"type", type}, {"payload", {{"id", id}}}});
    auto [ec, size] = co_await ws_.async_write(net::buffer(text), use_nothrow);
    co_return !ec;
}

net::awaitable<void> ws_client::connect_and_subscribe() {
    co_await send_event(protocol::event::connect);
    co_await send_event(protocol::event::subscribe);
    auto const confirmation = co_await read_until(protocol::event::subscribe_confirmation);
    BOOST_REQUIRE_EQUAL(payload_string(confirmation, "status"), "ok");
}

net::awaitable<std::vector<boost::json::object>> ws_client::barrier() {
    co_await send_event("barrier");
    std::vector<boost::json::object> before;
    for (;;) {
        auto event = co_await read_event();
        if (event_type(event) == protocol::event::error && payload_string(event, "code") == "unknown_type")
            co_return before;
        before.push_back(std::move(event));
    }
}

net::awaitable<void> ws_client::close() {
    auto [ec] = co_await ws_.async_close(websocket::close_code::normal, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "close: " << ec.message());
}

net::awaitable<http::response<http::string_body>> http_request(std::uint16_t port, http::verb method,
                                                               std::string target, std::string body,
                                                               header_list headers) {
    auto stream = co_await connect_tcp(port);
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    request.keep_alive(false);
    for (auto const& [field, value] : headers)
        request.set(field, value);
    if (!body.empty()) {
        request.body() = std::move(body);
        request.prepare_payload();
    }
    auto [write_ec, written] = co_await http::async_write(stream, request, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!write_ec, "HTTP write: " << write_ec.message());

    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.skip(method == http::verb::head); // a HEAD response has no body whatever Content-Length says
    auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!read_ec, "HTTP read: " << read_ec.message());
    co_return parser.release();
}

net::awaitable<std::string> raw_exchange(std::uint16_t port, std::string request) {
    auto stream = co_await connect_tcp(port);
    auto [write_ec, written] = co_await net::async_write(stream, net::buffer(request), use_nothrow);
    BOOST_REQUIRE_MESSAGE(!write_ec, "raw write: " << write_ec.message());
    std::string reply;
    char chunk[4096];
    for (;;) {
        auto [ec, n] = co_await stream.async_read_some(net::buffer(chunk), use_nothrow);
        reply.append(chunk, n);
        if (ec) break;
    }
    co_return reply;
}

} // namespace wolf::test
