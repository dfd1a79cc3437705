// wolf_stub_client PORT: a minimal well-behaved client in a process of its own, so a test can SIGSTOP it.
// It does initial -> connect -> subscribe, prints "id <id>" and "subscribed", then pings every second and
// reads forever, printing "wisdom" for each broadcast and "closed <code> <reason>" when the server closes.
// Exit status: 0 after a close frame, 1 on any other end.

#include "protocol.hpp"
#include "support/async.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <cstring>
#include <iostream>
#include <string>

namespace {

using namespace wolf;
using namespace std::chrono_literals;
using ws_stream = websocket::stream<beast::tcp_stream>;

std::string event_text(std::string_view type, std::string_view id) {
    return json::serialize(json::object{{"type", type}, {"payload", {{"id", id}}}});
}

std::string type_of(json::value const& event) {
    auto const* object = event.if_object();
    auto const* type = object ? object->if_contains("type") : nullptr;
    return type && type->is_string() ? std::string(type->get_string()) : std::string();
}

/** Pings every second until a write fails (the connection is gone). */
net::awaitable<void> keep_pinging(ws_stream& ws, std::string id) {
    net::steady_timer timer(ws.get_executor());
    auto const ping = event_text(protocol::event::ping, id);
    for (;;) {
        timer.expires_after(1s);
        co_await timer.async_wait(use_nothrow);
        auto [ec, n] = co_await ws.async_write(net::buffer(ping), use_nothrow);
        if (ec) co_return;
    }
}

net::awaitable<int> run(ws_stream& ws, std::uint16_t port) {
    auto& tcp = beast::get_lowest_layer(ws);
    tcp.expires_after(10s);
    if (auto [ec] = co_await tcp.async_connect({net::ip::make_address("127.0.0.1"), port}, use_nothrow); ec) {
        std::cout << "error connect: " << ec.message() << std::endl;
        co_return 1;
    }
    if (auto [ec] = co_await ws.async_handshake("127.0.0.1:" + std::to_string(port), "/ws", use_nothrow);
        ec) {
        std::cout << "error handshake: " << ec.message() << std::endl;
        co_return 1;
    }
    tcp.expires_never();
    ws.text(true);

    beast::flat_buffer buffer;
    auto const read = [&]() -> net::awaitable<std::optional<json::value>> {
        buffer.clear();
        auto [ec, n] = co_await ws.async_read(buffer, use_nothrow);
        if (ec == websocket::error::closed) {
            std::cout << "closed " << ws.reason().code << ' ' << ws.reason().reason.c_str() << std::endl;
            co_return std::nullopt;
        }
        if (ec) {
            std::cout << "error read: " << ec.message() << std::endl;
            co_return std::nullopt;
        }
        co_return json::parse(beast::buffers_to_string(buffer.data()));
    };

    auto const initial = co_await read();
    if (!initial || type_of(*initial) != protocol::event::initial) co_return 1;
    std::string const id(initial->at("payload").at("id").as_string());
    std::cout << "id " << id << std::endl;

    for (auto type : {protocol::event::connect, protocol::event::subscribe}) {
        auto [ec, n] = co_await ws.async_write(net::buffer(event_text(type, id)), use_nothrow);
        if (ec) co_return 1;
    }
    for (;;) {
        auto const event = co_await read();
        if (!event) co_return 1;
        if (type_of(*event) == protocol::event::subscribe_confirmation) break;
    }
    std::cout << "subscribed" << std::endl;

    net::co_spawn(ws.get_executor(), keep_pinging(ws, id), log_and_contain{"pinger"});
    for (;;) {
        auto const event = co_await read();
        if (!event) co_return ws.reason().code != 0 ? 0 : 1;
        if (type_of(*event) == protocol::event::wisdom_distribution) std::cout << "wisdom" << std::endl;
    }
}

} // namespace

int main(int argc, char* argv[]) {
    std::uint16_t port = 0;
    if (argc != 2 || std::from_chars(argv[1], argv[1] + std::strlen(argv[1]), port).ec != std::errc{}) {
        std::cerr << "usage: wolf_stub_client PORT\n";
        return 2;
    }
    net::io_context ioc;
    // Outside the coroutines: the pinger uses it until the io_context stops.
    ws_stream ws(ioc);
    int status = 1;
    net::co_spawn(ioc, run(ws, port), [&](std::exception_ptr error, int result) {
        if (error) {
            log_failure("stub client", error);
            return ioc.stop();
        }
        status = result;
        ioc.stop(); // the pinger is still waiting on its timer
    });
    ioc.run();
    return status;
}
