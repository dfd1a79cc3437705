#include "common/clients.hpp"

#include "protocol.hpp"
#include "support/async.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <charconv>

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

/** A connected stream, with the TLS handshake done for a TLS dialer. */
net::awaitable<beast::tcp_stream> dial(dialer<beast::tcp_stream> to) {
    co_return co_await connect_tcp(to.port);
}

net::awaitable<tls_stream> dial(dialer<tls_stream> to) {
    auto tcp = co_await connect_tcp(to.port);
    tls_stream stream(std::move(tcp), to.context);
    auto [ec] = co_await stream.async_handshake(net::ssl::stream_base::client, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "TLS handshake with port " << to.port << ": " << ec.message());
    co_return stream;
}

/** One request on a fresh connection; the response is read whole. */
template <class Stream>
net::awaitable<http::response<http::string_body>> request_over(dialer<Stream> to, http::verb method,
                                                               std::string target, std::string body,
                                                               header_list headers) {
    auto stream = co_await dial(to);
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "127.0.0.1:" + std::to_string(to.port));
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

template <class Stream>
net::awaitable<unsigned> basic_ws_client<Stream>::try_handshake(dialer<Stream> to, std::string target) {
    auto stream = co_await dial(to);
    websocket::stream<Stream> ws(std::move(stream));
    websocket::response_type response;
    auto const host = "127.0.0.1:" + std::to_string(to.port);
    // A refused upgrade fails the handshake; the status is what the test wants.
    co_await ws.async_handshake(response, host, target, use_nothrow);
    co_return response.result_int();
}

template <class Stream>
net::awaitable<basic_ws_client<Stream>> basic_ws_client<Stream>::handshake(dialer<Stream> to,
                                                                           std::string target) {
    auto stream = co_await dial(to);
    websocket::stream<Stream> ws(std::move(stream));
    websocket::response_type response;
    auto const host = "127.0.0.1:" + std::to_string(to.port);
    auto [ec] = co_await ws.async_handshake(response, host, target, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "handshake on " << target << ": " << ec.message() << " (HTTP "
                                               << response.result_int() << ")");
    ws.text(true);
    co_return basic_ws_client(std::move(ws));
}

template <class Stream>
net::awaitable<basic_ws_client<Stream>> basic_ws_client<Stream>::open(dialer<Stream> to, std::string target) {
    auto client = co_await handshake(to, std::move(target));
    auto const initial = co_await client.read_event();
    BOOST_REQUIRE_EQUAL(event_type(initial), protocol::event::initial);
    client.id_ = payload_string(initial, "id");
    BOOST_REQUIRE(!client.id_.empty());
    auto const& payload = initial.at("payload").as_object();
    BOOST_REQUIRE_MESSAGE(payload.contains("epoch") && payload.contains("offset"),
                          "initial without a position");
    client.latest_ = {std::string(payload.at("epoch").as_string()),
                      payload.at("offset").template to_number<std::uint64_t>()};
    co_return client;
}

template <class Stream>
net::awaitable<boost::json::object> basic_ws_client<Stream>::read_event() {
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

template <class Stream>
net::awaitable<boost::json::object> basic_ws_client<Stream>::read_until(std::string_view type) {
    for (;;) {
        auto event = co_await read_event();
        if (event_type(event) == type) co_return event;
    }
}

template <class Stream>
net::awaitable<close_info> basic_ws_client<Stream>::read_close() {
    auto const read = co_await read_events_until_close();
    co_return read.close;
}

template <class Stream>
net::awaitable<read_to_close> basic_ws_client<Stream>::read_events_until_close() {
    read_to_close result;
    beast::flat_buffer buffer;
    for (;;) {
        auto [ec, size] = co_await ws_.async_read(buffer, use_nothrow);
        // A close frame was received even if answering it failed (the server may reset the connection
        // when unread data is left behind, as after an oversized message).
        if (ec == websocket::error::closed || (ec && ws_.reason().code != 0)) {
            result.close = {ws_.reason().code, std::string(ws_.reason().reason.c_str())};
            co_return result;
        }
        BOOST_REQUIRE_MESSAGE(!ec, "expected a close frame, got: " << ec.message());
        boost::json::error_code parse_ec;
        auto value = boost::json::parse(beast::buffers_to_string(buffer.data()), parse_ec);
        BOOST_REQUIRE_MESSAGE(!parse_ec && value.is_object(), "not a JSON object");
        result.events.push_back(std::move(value.get_object()));
        buffer.consume(buffer.size());
    }
}

template <class Stream>
net::awaitable<void> basic_ws_client<Stream>::send_text(std::string_view text) {
    auto [ec, size] = co_await ws_.async_write(net::buffer(text.data(), text.size()), use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "write: " << ec.message());
}

template <class Stream>
net::awaitable<void> basic_ws_client<Stream>::send_event(std::string_view type) {
    co_await send_event(type, id_);
}

template <class Stream>
net::awaitable<void> basic_ws_client<Stream>::send_event(std::string_view type, std::string_view id) {
    auto const text = boost::json::serialize(boost::json::object{{"type", type}, {"payload", {{"id", id}}}});
    co_await send_text(text);
}

template <class Stream>
net::awaitable<bool> basic_ws_client<Stream>::try_send_event(std::string_view type, std::string_view id) {
    auto const text = boost::json::serialize(boost::json::object{{"type", type}, {"payload", {{"id", id}}}});
    auto [ec, size] = co_await ws_.async_write(net::buffer(text), use_nothrow);
    co_return !ec;
}

template <class Stream>
net::awaitable<boost::json::object>
basic_ws_client<Stream>::subscribe_since(protocol::position const& since) {
    auto const text = boost::json::serialize(boost::json::object{
        {"type", protocol::event::subscribe},
        {"payload", {{"id", id_}, {"since", {{"epoch", since.epoch}, {"offset", since.offset}}}}}});
    co_await send_text(text);
    auto const confirmation = co_await read_until(protocol::event::subscribe_confirmation);
    BOOST_REQUIRE_EQUAL(payload_string(confirmation, "status"), "ok");
    co_return confirmation.at("payload").as_object();
}

template <class Stream>
net::awaitable<void> basic_ws_client<Stream>::connect_and_subscribe() {
    co_await send_event(protocol::event::connect);
    co_await send_event(protocol::event::subscribe);
    auto const confirmation = co_await read_until(protocol::event::subscribe_confirmation);
    BOOST_REQUIRE_EQUAL(payload_string(confirmation, "status"), "ok");
}

template <class Stream>
net::awaitable<std::vector<boost::json::object>> basic_ws_client<Stream>::barrier() {
    co_await send_event("barrier");
    std::vector<boost::json::object> before;
    for (;;) {
        auto event = co_await read_event();
        if (event_type(event) == protocol::event::error && payload_string(event, "code") == "unknown_type")
            co_return before;
        before.push_back(std::move(event));
    }
}

template <class Stream>
net::awaitable<void> basic_ws_client<Stream>::close() {
    auto [ec] = co_await ws_.async_close(websocket::close_code::normal, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "close: " << ec.message());
}

net::awaitable<http::response<http::string_body>> http_request(std::uint16_t port, http::verb method,
                                                               std::string target, std::string body,
                                                               header_list headers) {
    return request_over<beast::tcp_stream>(port, method, std::move(target), std::move(body),
                                           std::move(headers));
}

net::awaitable<http::response<http::string_body>> https_request(std::uint16_t port,
                                                                net::ssl::context& context, http::verb method,
                                                                std::string target, std::string body,
                                                                header_list headers) {
    return request_over<tls_stream>({port, context}, method, std::move(target), std::move(body),
                                    std::move(headers));
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

template class basic_ws_client<beast::tcp_stream>;
template class basic_ws_client<tls_stream>;

metric_samples parse_metrics(std::string_view text) {
    metric_samples samples;
    while (!text.empty()) {
        auto const eol = text.find('\n');
        auto const line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        if (line.empty() || line.front() == '#') continue;
        auto const space = line.rfind(' ');
        if (space == std::string_view::npos) continue;
        double value = 0;
        auto const number = line.substr(space + 1);
        if (std::from_chars(number.data(), number.data() + number.size(), value).ec != std::errc{}) continue;
        samples.emplace(std::string(line.substr(0, space)), value);
    }
    return samples;
}

net::awaitable<std::vector<std::uint64_t>> read_wisdom_numbers(ws_client& client, std::string_view field,
                                                               std::size_t count) {
    std::vector<std::uint64_t> numbers;
    while (numbers.size() < count) {
        auto const e = co_await client.read_until(protocol::event::wisdom_distribution);
        numbers.push_back(e.at("payload").at(field).to_number<std::uint64_t>());
    }
    co_return numbers;
}

net::awaitable<metric_samples> scrape_metrics(std::uint16_t port) {
    auto const res = co_await http_request(port, http::verb::get, "/metrics");
    BOOST_REQUIRE_EQUAL(res.result_int(), 200u);
    co_return parse_metrics(res.body());
}

double metric(metric_samples const& samples, std::string_view name) {
    auto const it = samples.find(name);
    BOOST_REQUIRE_MESSAGE(it != samples.end(), "no metric " << name);
    return it->second;
}

} // namespace wolf::test
