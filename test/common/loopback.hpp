#pragma once

// What the frame tests share: a connected pair on 127.0.0.1 with a frame_stream on the server's end (owned
// as a session owns it) under test, the same with Beast's WebSocket layer on top, a parser of what the
// server wrote, runners for the pair's io_context, and randomized runs over consecutive seeds. Header-only:
// the unit tests link the core alone.

#include "frame.hpp"
#include "frame_stream.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <limits>
#include <linux/sockios.h>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <tuple>
#include <vector>

namespace wolf::test {

using namespace std::chrono_literals;
using tcp = net::ip::tcp;

inline std::span<unsigned char const> as_bytes(std::string_view text) {
    return {reinterpret_cast<unsigned char const*>(text.data()), text.size()};
}

/**
 * Runs `test(random)` for `runs` consecutive seeds, each in a context that names it. The first seed is
 * WOLF_FRAME_SEED from the environment (to repeat a failing run), else a fresh one.
 */
template <class Test>
void for_each_seed(std::uint32_t runs, Test test) {
    char const* text = std::getenv("WOLF_FRAME_SEED");
    auto const base_seed =
        text && *text ? static_cast<std::uint32_t>(std::strtoul(text, nullptr, 10)) : std::random_device{}();
    for (std::uint32_t run = 0; run < runs; ++run) {
        auto const seed = base_seed + run;
        BOOST_TEST_CONTEXT("seed " << seed << " (WOLF_FRAME_SEED=" << base_seed << " repeats this test)") {
            std::mt19937 random(seed);
            test(random);
        }
    }
}

/** `size` bytes that name their frame ("#17:" then letters), so a frame cut short or out of place shows. */
inline std::string numbered_payload(std::size_t index, std::size_t size) {
    auto text = "#" + std::to_string(index) + ":";
    text.resize(size, '\0');
    for (auto i = std::min(size, text.find('\0')); i < size; ++i)
        text[i] = static_cast<char>('a' + (index + i) % 26);
    return text;
}

/** What a client makes of the bytes a server wrote: the payloads of the whole frames, in order. */
struct parsed_frames {
    std::vector<std::string> payloads;
    std::size_t trailing = 0; // bytes of an incomplete frame at the end
    bool malformed = false;   // a header other than an unmasked final text frame
};

inline parsed_frames parse_server_frames(std::string_view bytes) {
    parsed_frames parsed;
    while (!bytes.empty()) {
        auto const* b = reinterpret_cast<unsigned char const*>(bytes.data());
        if (bytes.size() < 2) break;
        if (b[0] != 0x81 || (b[1] & 0x80) != 0) {
            parsed.malformed = true;
            return parsed;
        }
        std::size_t header = 2;
        std::uint64_t length = b[1];
        if (length >= 126) {
            header += length == 126 ? 2 : 8;
            if (bytes.size() < header) break;
            length = 0;
            for (std::size_t i = 2; i < header; ++i)
                length = length << 8 | b[i];
        }
        if (bytes.size() - header < length) break;
        parsed.payloads.emplace_back(bytes.substr(header, length));
        bytes.remove_prefix(header + length);
    }
    parsed.trailing = bytes.size();
    return parsed;
}

/** Short labels for payloads ("#3:(4000 bytes)"), for failure messages that stay readable. */
inline std::vector<std::string> labels(std::vector<std::string> const& payloads) {
    std::vector<std::string> out;
    for (auto const& payload : payloads)
        out.push_back(payload.substr(0, payload.find(':') + 1) + "(" + std::to_string(payload.size()) +
                      " bytes)");
    return out;
}

/** The received bytes are exactly the frames carrying `expected`, whole and in order. */
inline void check_frames(std::string_view received, std::vector<std::string> const& expected) {
    auto const parsed = parse_server_frames(received);
    BOOST_TEST(!parsed.malformed);
    BOOST_TEST(parsed.trailing == 0u);
    BOOST_TEST(labels(parsed.payloads) == labels(expected), boost::test_tools::per_element());
    BOOST_TEST((parsed.payloads == expected));
}

/** Runs `ctx` until `done()` holds, at most `limit`; false if it did not. */
template <class Done>
bool run_until(net::io_context& ctx, Done done, steady_clock::duration limit = 10s) {
    auto const deadline = steady_clock::now() + limit;
    while (!done()) {
        if (ctx.stopped()) ctx.restart();
        // No handler ran and none is pending: nothing can change any more.
        if (ctx.run_one_until(deadline) == 0 && (ctx.stopped() || steady_clock::now() >= deadline))
            return done();
    }
    return true;
}

/** Runs the handlers that are ready, without waiting. */
inline void settle(net::io_context& ctx) {
    if (ctx.stopped()) ctx.restart();
    ctx.poll();
}

/** The results of one asynchronous operation, once it completes; the state outlives a test that gave up. */
template <class... Results>
class outcome {
public:
    auto handler() {
        return [state = state_](Results... results) { state->emplace(std::move(results)...); };
    }
    bool done() const { return state_->has_value(); }
    std::tuple<Results...> const& get() const { return **state_; }

private:
    std::shared_ptr<std::optional<std::tuple<Results...>>> state_ =
        std::make_shared<std::optional<std::tuple<Results...>>>();
};

template <class... Results>
std::tuple<Results...> wait_for(net::io_context& ctx, outcome<Results...> const& operation) {
    BOOST_TEST_REQUIRE(run_until(ctx, [&] { return operation.done(); }), "the operation did not complete");
    return operation.get();
}

/** What owns a frame_stream in the server: a session, reached through a shared_ptr. */
struct stream_owner {
    explicit stream_owner(tcp_socket socket)
        : frames(std::move(socket)) {}
    frame_stream<tcp_socket> frames;
};

/**
 * A test client's reads of everything the server writes: from start_reading() on, every byte goes into
 * `received`, until a read fails; its error is then `read_ec` and `read_done` holds. `Stream` is the
 * client's stream (a TCP socket, or a TLS stream over one), which must outlive this.
 */
template <class Stream>
struct client_reads {
    explicit client_reads(Stream& stream)
        : reads_from(stream) {}

    /** The client reads everything from now on (once started, calling again does nothing). */
    void start_reading() {
        if (!reading) read_more();
        reading = true;
    }

    void read_more() {
        reads_from.async_read_some(net::buffer(chunk), [this](beast::error_code ec, std::size_t size) {
            received.append(chunk.data(), size);
            if (ec) {
                read_ec = ec;
                read_done = true;
                return;
            }
            read_more();
        });
    }

    Stream& reads_from;
    std::array<char, 65536> chunk{};
    std::string received;
    beast::error_code read_ec;
    bool read_done = false;
    bool reading = false;
};

/** Sends frames of `size` bytes on `frames` until one waits in its queue; returns their payloads. */
template <class NextLayer>
std::vector<std::string> send_until_blocked(frame_stream<NextLayer>& frames, std::size_t size) {
    std::vector<std::string> payloads;
    while (frames.queued() == 0 && payloads.size() < 100'000) {
        payloads.push_back(numbered_payload(payloads.size(), size));
        frames.send(make_text_frame(payloads.back()));
    }
    BOOST_TEST_REQUIRE(frames.queued() == 1u, "the socket never filled");
    return payloads;
}

/**
 * A connected pair on 127.0.0.1: the frame_stream under test on the accepted (server) end, owned as a
 * session owns it, and a plain client socket whose reads collect everything the server wrote. With
 * `small_buffers` both sockets buffer little, so a client that does not read soon blocks the server.
 */
struct loopback_pair : client_reads<tcp::socket> {
    explicit loopback_pair(bool small_buffers = false)
        : client_reads(client) { // bound now, used once the client is open

        tcp_acceptor acceptor(ctx, tcp::endpoint(net::ip::address_v4::loopback(), 0));
        client.open(tcp::v4());
        if (small_buffers) client.set_option(net::socket_base::receive_buffer_size(4096));
        client.connect(acceptor.local_endpoint());
        auto socket = acceptor.accept();
        if (small_buffers) socket.set_option(net::socket_base::send_buffer_size(4096));
        owner = std::make_shared<stream_owner>(std::move(socket));
        owner->frames.keep_alive_with(owner);
        frames = &owner->frames;
    }

    ~loopback_pair() {
        // Nothing may be left behind: once both ends are closed, every pending operation ends.
        beast::error_code ignored;
        client.close(ignored);
        if (owner) owner->frames.next_layer().close(ignored);
        owner.reset();
        ctx.restart();
        ctx.run_for(5s);
        BOOST_CHECK_MESSAGE(ctx.stopped(), "work was left pending on the io_context");
    }

    /** Everything the server wrote: waits until its queue is empty, ends its side, and reads to EOF. */
    std::string const& received_until_eof() {
        start_reading();
        BOOST_TEST_REQUIRE(run_until(ctx, [&] { return frames->queued() == 0; }), "the queue never drained");
        beast::error_code ec;
        frames->next_layer().shutdown(tcp::socket::shutdown_send, ec);
        BOOST_TEST_REQUIRE(!ec, "the server's socket: " << ec.message());
        BOOST_TEST_REQUIRE(run_until(ctx, [&] { return read_done; }), "the client never saw EOF");
        BOOST_TEST(read_ec == beast::error_code(net::error::eof));
        return received;
    }

    /** Sends frames of `size` bytes until one waits in the queue; returns their payloads. */
    std::vector<std::string> send_until_blocked(std::size_t size) {
        return test::send_until_blocked(*frames, size);
    }

    net::io_context ctx;
    tcp::socket client{ctx};
    std::shared_ptr<stream_owner> owner;
    frame_stream<tcp_socket>* frames = nullptr;
};

/** A frame larger than anything the socket buffers hold: sent alone, only a part of it is taken. */
inline constexpr std::size_t larger_than_the_buffers = 1 << 20;

/** Unsent bytes in a socket's send queue (SIOCOUTQNSD). */
template <class Socket>
int unsent_bytes(Socket& socket) {
    int unsent = 0;
    BOOST_TEST_REQUIRE(::ioctl(socket.native_handle(), SIOCOUTQNSD, &unsent) == 0);
    return unsent;
}

/** A server session's write path: Beast's WebSocket layer over the frame_stream, owned together. */
struct websocket_owner {
    explicit websocket_owner(tcp_socket socket)
        : frames(std::move(socket))
        , ws(frames) {}
    frame_stream<tcp_socket> frames;
    websocket::stream<frame_stream<tcp_socket>&, false> ws;
};

/**
 * A Beast client connected to a server WebSocket over frame_stream on 127.0.0.1. The upgrade request is
 * read on the bare socket before the frame stream exists, as the HTTP session reads it, so the frame stream
 * sees WebSocket frames only.
 */
struct websocket_pair {
    websocket_pair() {
        tcp_acceptor acceptor(ctx, tcp::endpoint(net::ip::address_v4::loopback(), 0));
        client.next_layer().connect(acceptor.local_endpoint());
        auto socket = acceptor.accept();
        outcome<beast::error_code> handshake;
        client.async_handshake("127.0.0.1", "/", handshake.handler());

        http::request<http::string_body> request;
        beast::flat_buffer buffer;
        outcome<beast::error_code, std::size_t> read;
        http::async_read(socket, buffer, request, read.handler());
        BOOST_TEST_REQUIRE(!std::get<0>(wait_for(ctx, read)));
        BOOST_TEST_REQUIRE(buffer.size() == 0u);

        server = std::make_shared<websocket_owner>(std::move(socket));
        server->frames.keep_alive_with(server);
        outcome<beast::error_code> accept;
        server->ws.async_accept(request, accept.handler());
        BOOST_TEST_REQUIRE(!std::get<0>(wait_for(ctx, accept)));
        BOOST_TEST_REQUIRE(!std::get<0>(wait_for(ctx, handshake)));
    }

    ~websocket_pair() {
        beast::error_code ignored;
        client.next_layer().close(ignored);
        server->frames.next_layer().close(ignored);
        server.reset();
        ctx.restart();
        ctx.run_for(5s);
        BOOST_CHECK_MESSAGE(ctx.stopped(), "work was left pending on the io_context");
    }

    /** The next message the client reads. */
    std::string client_reads() {
        beast::flat_buffer buffer;
        outcome<beast::error_code, std::size_t> read;
        client.async_read(buffer, read.handler());
        auto const [ec, size] = wait_for(ctx, read);
        BOOST_TEST_REQUIRE(!ec, "client read: " << ec.message());
        BOOST_TEST(client.got_text());
        return beast::buffers_to_string(buffer.data());
    }

    /** The next message the server reads. */
    std::string server_reads() {
        beast::flat_buffer buffer;
        outcome<beast::error_code, std::size_t> read;
        server->ws.async_read(buffer, read.handler());
        auto const [ec, size] = wait_for(ctx, read);
        BOOST_TEST_REQUIRE(!ec, "server read: " << ec.message());
        return beast::buffers_to_string(buffer.data());
    }

    /** Writes client frames in one write under the client's WebSocket layer. */
    void client_writes_raw(std::string const& bytes) {
        outcome<beast::error_code, std::size_t> write;
        net::async_write(client.next_layer(), net::buffer(bytes), write.handler());
        BOOST_TEST_REQUIRE(!std::get<0>(wait_for(ctx, write)));
    }

    /** Runs until the server's socket holds `size` unread bytes. */
    void until_server_holds(std::size_t size) {
        net::steady_timer tick(ctx);
        auto const deadline = steady_clock::now() + 5s;
        while (server->frames.next_layer().available() < size && steady_clock::now() < deadline) {
            outcome<beast::error_code> waited;
            tick.expires_after(1ms);
            tick.async_wait(waited.handler());
            wait_for(ctx, waited);
        }
        BOOST_TEST_REQUIRE(server->frames.next_layer().available() == size);
    }

    net::io_context ctx;
    websocket::stream<tcp::socket> client{ctx};
    std::shared_ptr<websocket_owner> server;
};

/** A masked client text frame (a zero key: the payload goes as is), with FIN. */
inline std::string client_text(std::string_view payload) {
    std::string frame;
    BOOST_REQUIRE(payload.size() < 65536);
    frame += static_cast<char>(0x81);
    if (payload.size() < 126) {
        frame += static_cast<char>(0x80 | payload.size());
    } else {
        frame += static_cast<char>(0x80 | 126);
        frame += static_cast<char>(payload.size() >> 8);
        frame += static_cast<char>(payload.size() & 0xff);
    }
    frame.append(4, '\0');
    frame += payload;
    return frame;
}

} // namespace wolf::test
