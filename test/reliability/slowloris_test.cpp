#define BOOST_TEST_MODULE slowloris
// Clients that hold a connection open by sending slowly, against the real binary. Before the upgrade the
// whole HTTP request must arrive within --handshake-timeout; after it, liveness is the watchdog's job
// (--ping-timeout, close 4000), and a close the peer never answers is dropped after --handshake-timeout.
// Oversized headers (431) are covered by http_test.
#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>

using namespace wolf;
using namespace wolf::test;
using namespace net::experimental::awaitable_operators;
using tcp = net::ip::tcp;
using std::chrono::steady_clock;

namespace {

constexpr auto handshake_timeout = 1s;
constexpr auto ping_timeout = 3s;
constexpr auto drip_every = 100ms;
constexpr auto sweep = std::chrono::milliseconds(ping_timeout) / 4; // the watchdog's period

net::awaitable<tcp::socket> connect_to(std::uint16_t port) {
    tcp::socket socket(co_await net::this_coro::executor);
    auto [ec] = co_await socket.async_connect({net::ip::make_address("127.0.0.1"), port}, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "connect: " << ec.message());
    socket.set_option(tcp::no_delay(true));
    co_return socket;
}

/** What a slow client saw: when it started sending, what it sent, what it got, and when it was cut off. */
struct slow_client {
    std::chrono::steady_clock::time_point connected{}, first_byte{}, closed{};
    std::size_t sent = 0;
    std::string received;
    bool done = false;
};

/** Every byte a slow client sends, and every slow client's end: what the tests' waits wake on. */
notifier progress;

/** Sends `bytes` one at a time, drip_every apart, until they run out or a write fails. */
net::awaitable<void> drip(tcp::socket& socket, std::string bytes, slow_client& client) {
    for (char const c : bytes) {
        auto [ec, n] = co_await net::async_write(socket, net::buffer(&c, 1), use_nothrow);
        if (ec) co_return;
        if (client.sent++ == 0) client.first_byte = steady_clock::now();
        progress.notify();
        co_await pause(drip_every);
    }
    co_await pause(1h); // everything sent: keep the connection, still silent
}

/** Reads until the server ends the connection. */
net::awaitable<void> read_until_closed(tcp::socket& socket, slow_client& client) {
    char chunk[4096];
    for (;;) {
        auto [ec, n] = co_await socket.async_read_some(net::buffer(chunk), use_nothrow);
        client.received.append(chunk, n);
        if (ec) break;
    }
    client.closed = steady_clock::now();
}

/** One connection that drips `bytes` while reading, until the server drops it. */
net::awaitable<void> run_slow_client(tcp::socket socket, std::string bytes, slow_client& client) {
    client.connected = steady_clock::now();
    co_await (drip(socket, std::move(bytes), client) || read_until_closed(socket, client));
    client.done = true;
    progress.notify();
}

std::chrono::milliseconds since(std::chrono::steady_clock::time_point from,
                                std::chrono::steady_clock::time_point to) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(to - from);
}

constexpr std::string_view upgrade_request =
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/** One unmasked server frame at the front of `bytes`: opcode and payload, or nullopt if incomplete. */
std::optional<std::pair<int, std::string>> take_server_frame(std::string& bytes) {
    if (bytes.size() < 2) return std::nullopt;
    auto const opcode = static_cast<unsigned char>(bytes[0]) & 0x0F;
    std::size_t length = static_cast<unsigned char>(bytes[1]) & 0x7F;
    std::size_t header = 2;
    if (length == 126) {
        if (bytes.size() < 4) return std::nullopt;
        length = (static_cast<unsigned char>(bytes[2]) << 8) | static_cast<unsigned char>(bytes[3]);
        header = 4;
    }
    if (bytes.size() < header + length) return std::nullopt;
    auto payload = bytes.substr(header, length);
    bytes.erase(0, header + length);
    return std::pair{opcode, std::move(payload)};
}

/** A masked client text frame carrying `text`, as a browser would send it (RFC 6455 5.3). */
std::string masked_text_frame(std::string const& text) {
    BOOST_REQUIRE(text.size() < 126);
    std::string frame{'\x81', static_cast<char>(0x80 | text.size()), '\x12', '\x34', '\x56', '\x78'};
    for (std::size_t i = 0; i < text.size(); ++i)
        frame.push_back(static_cast<char>(text[i] ^ frame[2 + i % 4]));
    return frame;
}

} // namespace

BOOST_AUTO_TEST_CASE(
    requests_dripped_a_byte_per_100ms_are_dropped_at_the_handshake_timeout_while_others_are_served) {
    child_process server(server_command(WOLF_BINARY, {"--handshake-timeout", "1s"}));
    auto const port = wait_until_listening(server);

    run_coro([&]() -> net::awaitable<void> {
        auto const executor = co_await net::this_coro::executor;
        // Half trickle a plain request, half an upgrade; either takes 9 s or more at this pace.
        std::string const plain = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
                                  "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        std::string const upgrade(upgrade_request);
        std::vector<slow_client> slow(20);
        for (std::size_t i = 0; i < slow.size(); ++i)
            net::co_spawn(executor,
                          run_slow_client(co_await connect_to(port), i % 2 ? upgrade : plain, slow[i]),
                          [](std::exception_ptr e) {
                              if (e) std::rethrow_exception(e);
                          });

        // While every slow client is connected and sending, others are served as usual.
        BOOST_REQUIRE(co_await progress.until(
            [&] { return std::all_of(slow.begin(), slow.end(), [](auto& c) { return c.sent >= 2; }); }, 5s));
        auto const health = co_await http_request(port, http::verb::get, "/healthz");
        BOOST_TEST(health.result_int() == 200u);
        auto ws = co_await ws_client::open(port);
        co_await ws.connect_and_subscribe();
        BOOST_TEST(std::none_of(slow.begin(), slow.end(), [](auto& c) { return c.done; }),
                   "a slow client was dropped before the others were served");

        BOOST_REQUIRE(co_await progress.until(
            [&] { return std::all_of(slow.begin(), slow.end(), [](auto& c) { return c.done; }); }, 5s));
        for (auto const& client : slow) {
            BOOST_TEST(client.received.empty(), "an unfinished request gets no response");
            BOOST_TEST(client.sent < plain.size());
            // The deadline runs from the start of the request, so it ends about 1 s after the connect.
            auto const after_connect = since(client.connected, client.closed);
            BOOST_TEST((after_connect >= handshake_timeout - 50ms), after_connect.count() << " ms");
            BOOST_TEST((since(client.first_byte, client.closed) <= handshake_timeout + 500ms),
                       since(client.first_byte, client.closed).count() << " ms");
        }
        // Each drop is counted; nobody reached the WebSocket layer but the one real client.
        auto const metrics = co_await scrape_metrics(port);
        BOOST_TEST(metric(metrics, "wolf_http_timeouts_total") == slow.size());
        BOOST_TEST(metric(metrics, "wolf_connections_total") == 1);
        co_await ws.close();
    });
}

BOOST_AUTO_TEST_CASE(an_idle_keep_alive_connection_is_closed_at_the_handshake_timeout) {
    child_process server(server_command(WOLF_BINARY, {"--handshake-timeout", "1s"}));
    auto const port = wait_until_listening(server);

    run_coro([&]() -> net::awaitable<void> {
        auto socket = co_await connect_to(port);
        std::string_view const request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"; // keep-alive
        auto [write_ec, written] = co_await net::async_write(socket, net::buffer(request), use_nothrow);
        BOOST_REQUIRE(!write_ec);
        auto const sent = steady_clock::now();
        slow_client idle;
        co_await read_until_closed(socket, idle); // the response, then nothing until the server closes
        BOOST_TEST(idle.received.starts_with("HTTP/1.1 200"), idle.received.substr(0, 40));
        BOOST_TEST(idle.received.find("HTTP/1.1", 1) == std::string::npos, "one response only");
        // The next request's deadline starts once the response is written.
        auto const held = since(sent, idle.closed);
        BOOST_TEST((held >= handshake_timeout - 50ms), held.count() << " ms");
        BOOST_TEST((held <= handshake_timeout + 500ms), held.count() << " ms");
        BOOST_TEST(metric(co_await scrape_metrics(port), "wolf_http_timeouts_total") == 1);
    });
}

BOOST_AUTO_TEST_CASE(
    after_the_upgrade_silence_is_closed_by_the_watchdog_with_4000_not_at_the_handshake_timeout) {
    child_process server(server_command(WOLF_BINARY, {"--handshake-timeout", "1s", "--ping-timeout", "3s"}));
    auto const port = wait_until_listening(server);

    run_coro([&]() -> net::awaitable<void> {
        auto client = co_await ws_client::open(port);
        auto const opened = steady_clock::now();
        auto const closed = co_await client.read_close();
        auto const silent_for = since(opened, steady_clock::now());
        BOOST_TEST(closed.code == protocol::close_code::ping_timeout);
        BOOST_TEST(closed.reason == protocol::close_reason::ping_timeout);
        // The watchdog's clock started at the handshake, just before `initial` was read.
        BOOST_TEST((silent_for >= ping_timeout - 100ms), silent_for.count() << " ms");
        BOOST_TEST((silent_for <= ping_timeout + sweep + 500ms), silent_for.count() << " ms");
    });
}

BOOST_AUTO_TEST_CASE(
    a_frame_dripped_after_the_upgrade_is_closed_with_4000_and_dropped_when_the_close_goes_unanswered) {
    child_process server(server_command(WOLF_BINARY, {"--handshake-timeout", "1s", "--ping-timeout", "3s"}));
    auto const port = wait_until_listening(server);

    run_coro([&]() -> net::awaitable<void> {
        auto socket = co_await connect_to(port);
        auto [write_ec, written] =
            co_await net::async_write(socket, net::buffer(upgrade_request), use_nothrow);
        BOOST_REQUIRE(!write_ec);

        // The 101 and `initial`, read by hand: this client speaks raw bytes from here on.
        std::string bytes;
        char chunk[4096];
        std::optional<std::pair<int, std::string>> initial;
        bool upgraded = false;
        while (!initial) {
            auto [ec, n] = co_await socket.async_read_some(net::buffer(chunk), use_nothrow);
            BOOST_REQUIRE_MESSAGE(!ec, "reading the upgrade: " << ec.message());
            bytes.append(chunk, n);
            if (!upgraded) {
                auto const end = bytes.find("\r\n\r\n");
                if (end == std::string::npos) continue;
                BOOST_REQUIRE_MESSAGE(bytes.starts_with("HTTP/1.1 101"), bytes.substr(0, 40));
                bytes.erase(0, end + 4);
                upgraded = true;
            }
            initial = take_server_frame(bytes);
        }
        auto const opened = steady_clock::now();
        BOOST_REQUIRE(initial->second.find(protocol::event::initial) != std::string::npos);
        auto const id = initial->second.substr(initial->second.find("\"id\":\"") + 6, 36);

        // A valid ping, one byte per 100 ms: about 6 s of frame, never complete before the ping timeout.
        auto const frame = masked_text_frame(R"({"type":"ping","payload":{"id":")" + id + R"("}})");
        slow_client client;
        client.received = bytes;
        co_await (drip(socket, frame, client) || read_until_closed(socket, client));
        BOOST_TEST(client.sent < frame.size());

        // What arrived: a close frame 4000 "ping timeout", then the end of the connection.
        std::optional<std::pair<int, std::string>> close;
        while (auto next = take_server_frame(client.received))
            if (next->first == 0x8) close = next;
        BOOST_REQUIRE_MESSAGE(close, "no close frame before the connection ended");
        auto const& payload = close->second;
        BOOST_REQUIRE(payload.size() >= 2u);
        auto const code =
            (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
        BOOST_TEST(code == protocol::close_code::ping_timeout);
        BOOST_TEST(payload.substr(2) == protocol::close_reason::ping_timeout);

        // Evicted at the ping timeout (plus a sweep), then dropped one handshake timeout later because the
        // close is never answered.
        auto const held = since(opened, client.closed);
        BOOST_TEST((held >= ping_timeout + handshake_timeout - 100ms), held.count() << " ms");
        BOOST_TEST((held <= ping_timeout + sweep + handshake_timeout + 500ms), held.count() << " ms");
        auto const evicted = server.wait_for_line(" evict id=" + id + " reason=ping_timeout", 1s);
        BOOST_TEST(evicted.has_value(), "the server logged the eviction");
    });
}
