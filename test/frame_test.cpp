#define BOOST_TEST_MODULE frame
#include "frame.hpp"
#include "frame_stream.hpp"
#include "message_rate.hpp"
#include "protocol.hpp"

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

using namespace wolf;
using namespace std::chrono_literals;
using tcp = net::ip::tcp;
using steady_clock = std::chrono::steady_clock;

namespace {

std::span<unsigned char const> as_bytes(std::string_view text) {
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
std::string numbered_payload(std::size_t index, std::size_t size) {
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

parsed_frames parse_server_frames(std::string_view bytes) {
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
std::vector<std::string> labels(std::vector<std::string> const& payloads) {
    std::vector<std::string> out;
    for (auto const& payload : payloads)
        out.push_back(payload.substr(0, payload.find(':') + 1) + "(" + std::to_string(payload.size()) +
                      " bytes)");
    return out;
}

/** The received bytes are exactly the frames carrying `expected`, whole and in order. */
void check_frames(std::string_view received, std::vector<std::string> const& expected) {
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
void settle(net::io_context& ctx) {
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
    explicit stream_owner(tcp::socket socket)
        : frames(std::move(socket)) {}
    frame_stream<tcp::socket> frames;
};

/**
 * A connected pair on 127.0.0.1: the frame_stream under test on the accepted (server) end, owned as a
 * session owns it, and a plain client socket whose reads collect everything the server wrote. With
 * `small_buffers` both sockets buffer little, so a client that does not read soon blocks the server.
 */
struct loopback_pair {
    explicit loopback_pair(bool small_buffers = false) {
        tcp::acceptor acceptor(ctx, tcp::endpoint(net::ip::address_v4::loopback(), 0));
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

    /** The client reads everything from now on, into `received`, until EOF or an error. */
    void start_reading() {
        if (!reading) read_more();
        reading = true;
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
        std::vector<std::string> payloads;
        while (frames->queued() == 0 && payloads.size() < 100'000) {
            payloads.push_back(numbered_payload(payloads.size(), size));
            frames->send(make_text_frame(payloads.back()));
        }
        BOOST_TEST_REQUIRE(frames->queued() == 1u, "the socket never filled");
        return payloads;
    }

    void read_more() {
        client.async_read_some(net::buffer(chunk), [this](beast::error_code ec, std::size_t size) {
            received.append(chunk.data(), size);
            if (ec) {
                read_ec = ec;
                read_done = true;
                return;
            }
            read_more();
        });
    }

    net::io_context ctx;
    tcp::socket client{ctx};
    std::shared_ptr<stream_owner> owner;
    frame_stream<tcp::socket>* frames = nullptr;
    std::array<char, 65536> chunk{};
    std::string received;
    beast::error_code read_ec;
    bool read_done = false;
    bool reading = false;
};

/** A frame larger than anything the socket buffers hold: sent alone, only a part of it is taken. */
constexpr std::size_t larger_than_the_buffers = 1 << 20;

/** Unsent bytes in a socket's send queue (SIOCOUTQNSD). */
int unsent_bytes(tcp::socket& socket) {
    int unsent = 0;
    BOOST_TEST_REQUIRE(::ioctl(socket.native_handle(), SIOCOUTQNSD, &unsent) == 0);
    return unsent;
}

} // namespace

BOOST_AUTO_TEST_SUITE(wire_frames)

BOOST_AUTO_TEST_CASE(the_header_is_0x81_then_the_shortest_length_form_without_a_mask) {
    struct expectation {
        std::size_t size;
        std::vector<unsigned char> header;
    };
    std::vector<expectation> const cases{
        {0, {0x81, 0x00}},
        {1, {0x81, 0x01}},
        {125, {0x81, 0x7D}},
        {126, {0x81, 0x7E, 0x00, 0x7E}},
        {127, {0x81, 0x7E, 0x00, 0x7F}},
        {65535, {0x81, 0x7E, 0xFF, 0xFF}},
        {65536, {0x81, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}},
        {70000, {0x81, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x70}},
    };
    for (auto const& c : cases) {
        BOOST_TEST_CONTEXT("payload of " << c.size << " bytes") {
            wire_frame const frame(numbered_payload(c.size, c.size));
            auto const bytes = as_bytes(frame.bytes());
            BOOST_TEST_REQUIRE(bytes.size() == c.header.size() + c.size);
            std::vector<unsigned char> const header(bytes.begin(),
                                                    bytes.begin() + static_cast<long>(c.header.size()));
            BOOST_TEST(header == c.header, boost::test_tools::per_element());
        }
    }
}

BOOST_AUTO_TEST_CASE(payload_is_exactly_the_payload_and_follows_the_header) {
    for (std::size_t size : {0, 1, 125, 126, 65535, 65536, 70000}) {
        BOOST_TEST_CONTEXT("payload of " << size << " bytes") {
            auto const payload = numbered_payload(size, size);
            wire_frame const frame(payload);
            BOOST_TEST(frame.payload() == payload);
            BOOST_TEST(frame.bytes().ends_with(payload));
            BOOST_TEST(frame.bytes().size() - frame.payload().size() == (size < 126     ? 2u
                                                                         : size < 65536 ? 4u
                                                                                        : 10u));
        }
    }
}

BOOST_AUTO_TEST_CASE(make_text_frame_encodes_the_same_bytes_as_wire_frame) {
    for (std::size_t size : {0, 125, 126, 65536}) {
        auto const payload = numbered_payload(size, size);
        auto const shared = make_text_frame(payload);
        BOOST_REQUIRE(shared);
        BOOST_TEST(shared->bytes() == wire_frame(payload).bytes());
        BOOST_TEST(shared->payload() == payload);
    }
}

BOOST_AUTO_TEST_CASE(a_prebuilt_frame_is_written_as_given_without_a_second_header) {
    // A close frame with code 1000, as the WebSocket layer makes it.
    std::string const bytes("\x88\x02\x03\xe8", 4);
    wire_frame const frame(wire_frame::prebuilt, bytes);
    BOOST_TEST(frame.bytes() == bytes);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(boundaries)

namespace {

/** A client frame: FIN/opcode byte, the shortest length form, an optional mask key, `size` payload bytes. */
void append_client_frame(std::string& out, unsigned char first, std::uint64_t size, bool masked,
                         std::mt19937& random) {
    out += static_cast<char>(first);
    auto const mask_bit = static_cast<unsigned char>(masked ? 0x80 : 0);
    if (size < 126) {
        out += static_cast<char>(mask_bit | size);
    } else if (size < 65536) {
        out += static_cast<char>(mask_bit | 126);
        for (int shift = 8; shift >= 0; shift -= 8)
            out += static_cast<char>((size >> shift) & 0xFF);
    } else {
        out += static_cast<char>(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            out += static_cast<char>((size >> shift) & 0xFF);
    }
    if (masked)
        for (int i = 0; i < 4; ++i)
            out += static_cast<char>(random());
    // Payload bytes that look like frame headers, so a follower that loses its place misreads them.
    static std::string const noise = [] {
        std::mt19937 fixed(1);
        std::string bytes(8192, '\0');
        for (std::size_t i = 0; i < bytes.size(); ++i)
            bytes[i] = static_cast<char>(i % 3 == 0 ? 0x81 : i % 3 == 1 ? 0x7F : fixed());
        return bytes;
    }();
    auto from = random() % noise.size();
    for (std::uint64_t left = size; left > 0;) {
        auto const take = std::min<std::uint64_t>(left, noise.size() - from);
        out.append(noise, from, take);
        left -= take;
        from = 0;
    }
}

/** A client's byte stream and where each of its messages ends. */
struct client_stream {
    std::string bytes;
    std::vector<std::size_t> message_ends;
};

std::size_t pick_payload_size(std::mt19937& random) {
    auto const roll = std::uniform_int_distribution<int>(0, 99)(random);
    auto between = [&](std::size_t low, std::size_t high) {
        return std::uniform_int_distribution<std::size_t>(low, high)(random);
    };
    if (roll < 55) return between(0, 125);
    if (roll < 80) return between(126, 65535);
    if (roll < 88) return between(65536, 70000);
    static constexpr std::size_t edges[] = {0, 125, 126, 65535, 65536};
    return edges[between(0, std::size(edges) - 1)];
}

void append_control_frames(client_stream& stream, std::mt19937& random) {
    auto const count = std::uniform_int_distribution<int>(0, 2)(random);
    for (int i = 0; i < count; ++i) {
        unsigned char const opcode = random() % 2 == 0 ? 0x9 : 0xA; // ping or pong, always final
        append_client_frame(stream.bytes, 0x80 | opcode, std::uniform_int_distribution<int>(0, 125)(random),
                            random() % 4 != 0, random);
    }
}

/** Text messages of 1 to 4 fragments, with pings and pongs between messages and between fragments. */
client_stream make_client_stream(std::mt19937& random, int messages) {
    client_stream stream;
    for (int m = 0; m < messages; ++m) {
        append_control_frames(stream, random);
        auto const fragments = std::uniform_int_distribution<int>(1, 4)(random);
        for (int f = 0; f < fragments; ++f) {
            bool const last = f == fragments - 1;
            unsigned char const opcode = f == 0 ? 0x1 : 0x0;
            append_client_frame(stream.bytes, static_cast<unsigned char>((last ? 0x80 : 0) | opcode),
                                pick_payload_size(random), random() % 8 != 0, random);
            if (last)
                stream.message_ends.push_back(stream.bytes.size());
            else
                append_control_frames(stream, random);
        }
    }
    append_control_frames(stream, random);
    return stream;
}

} // namespace

BOOST_AUTO_TEST_CASE(message_taken_is_true_exactly_when_no_byte_after_the_message_was_observed) {
    for_each_seed(30, [&](std::mt19937& random) {
        auto const stream = make_client_stream(random, 100);
        frame_boundaries boundaries;
        std::size_t observed = 0;
        std::size_t taken = 0;
        bool mismatch = false;
        // The reader takes each whole message some time after its last byte was read, maybe later.
        auto take = [&](bool all) {
            while (!mismatch && taken < stream.message_ends.size() &&
                   stream.message_ends[taken] <= observed && (all || random() % 3 != 0)) {
                bool const expected = stream.message_ends[taken] == observed;
                bool const got = boundaries.message_taken();
                BOOST_TEST(got == expected, "message " << taken << " ending at " << stream.message_ends[taken]
                                                       << " taken with " << observed << " bytes observed");
                mismatch = got != expected;
                ++taken;
            }
        };
        while (observed < stream.bytes.size() && !mismatch) {
            auto const left = stream.bytes.size() - observed;
            std::size_t size = 0;
            auto const roll = random() % 10;
            if (roll < 3 && taken < stream.message_ends.size() && stream.message_ends[taken] > observed)
                size = stream.message_ends[taken] - observed; // a read that ends where a message ends
            else if (roll < 5)
                size = 1 + random() % 16;
            else if (roll < 8)
                size = 1 + random() % 4096;
            else
                size = 1 + random() % 100'000;
            size = std::min(size, left);
            boundaries.observe(as_bytes(std::string_view(stream.bytes).substr(observed, size)));
            observed += size;
            take(false);
        }
        take(true);
        BOOST_TEST(taken == stream.message_ends.size());
    });
}

BOOST_AUTO_TEST_CASE(a_header_split_byte_by_byte_is_followed) {
    std::mt19937 random(7);
    std::string first, ping, second;
    append_client_frame(first, 0x81, 300, true, random);    // 16-bit length, masked: 8-byte header
    append_client_frame(ping, 0x89, 5, true, random);       // a ping between messages
    append_client_frame(second, 0x01, 70000, true, random); // 64-bit length, masked: 14-byte header
    append_client_frame(second, 0x80, 126, false, random);  // its final fragment, unmasked
    frame_boundaries boundaries;
    for (char byte : first)
        boundaries.observe(as_bytes(std::string_view(&byte, 1)));
    BOOST_TEST(boundaries.message_taken());
    for (char byte : ping + second)
        boundaries.observe(as_bytes(std::string_view(&byte, 1)));
    BOOST_TEST(boundaries.message_taken());
}

BOOST_AUTO_TEST_CASE(a_byte_after_a_taken_message_makes_it_not_the_last) {
    std::mt19937 random(11);
    std::string message, ping;
    append_client_frame(message, 0x81, 20, true, random);
    append_client_frame(ping, 0x89, 0, true, random);
    frame_boundaries boundaries;
    boundaries.observe(as_bytes(message + ping.substr(0, 1)));
    BOOST_TEST(!boundaries.message_taken());
}

BOOST_AUTO_TEST_CASE(a_64_bit_length_near_2_to_the_63_or_64_does_not_wrap) {
    for (std::uint64_t length :
         {(std::uint64_t{1} << 63) - 1, std::uint64_t{1} << 63, std::numeric_limits<std::uint64_t>::max()}) {
        BOOST_TEST_CONTEXT("length " << length) {
            frame_boundaries boundaries;
            boundaries.observe(as_bytes(std::string_view("\x81\x00", 2))); // an empty message
            BOOST_TEST(boundaries.message_taken());
            // A first fragment claiming `length` bytes: what follows is its payload, however it looks.
            std::string header("\x01\x7F", 2);
            for (int shift = 56; shift >= 0; shift -= 8)
                header += static_cast<char>((length >> shift) & 0xFF);
            boundaries.observe(as_bytes(header));
            // Were the frame's end to wrap around, these two bytes would read as a whole empty message, and
            // taking it would report nothing unread.
            boundaries.observe(as_bytes(std::string_view("\x81\x00", 2)));
            BOOST_TEST(!boundaries.message_taken());
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(rate)

namespace {

steady_clock::time_point at(std::uint64_t ms) {
    return steady_clock::time_point(std::chrono::milliseconds(ms));
}

/** The contract, naively: over if rate_limit_messages earlier arrivals lie within the last second. */
class naive_rate {
public:
    bool over_limit(std::uint64_t now_ms) {
        auto const n = protocol::rate_limit_messages;
        bool const over = arrivals_.size() >= n && now_ms - arrivals_[arrivals_.size() - n] < 1000;
        arrivals_.push_back(now_ms);
        if (arrivals_.size() > n) arrivals_.pop_front();
        return over;
    }

private:
    std::deque<std::uint64_t> arrivals_;
};

} // namespace

BOOST_AUTO_TEST_CASE(fifty_messages_within_a_second_are_allowed_and_the_fifty_first_is_over) {
    static_assert(protocol::rate_limit_messages == 50);
    message_rate rate;
    std::uint64_t now = 5'000'000;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(now + i * 20)), "message " << i + 1);
    BOOST_TEST(rate.over_limit(at(now + 999)));
}

BOOST_AUTO_TEST_CASE(the_fifty_first_message_a_full_second_after_the_first_is_allowed) {
    message_rate rate;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(i)));
    BOOST_TEST(!rate.over_limit(at(1000)));
    // One more in the same millisecond: the 50 before it go back to the one at 1 ms, 999 ms earlier.
    BOOST_TEST(rate.over_limit(at(1000)));
}

BOOST_AUTO_TEST_CASE(a_silence_longer_than_65536_ms_ends_a_burst) {
    message_rate rate;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(10 * i)));
    BOOST_TEST(!rate.over_limit(at(10 * 49 + 65'537)));
}

BOOST_AUTO_TEST_CASE(a_silence_longer_than_2_to_the_32_ms_ends_a_burst) {
    message_rate rate;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(10 * i)));
    // 49.7 days and 1 ms later: the 50 earlier messages are long gone.
    BOOST_TEST(!rate.over_limit(at(10 * 49 + (std::uint64_t{1} << 32) + 1)));
}

BOOST_AUTO_TEST_CASE(over_limit_agrees_with_a_naive_model_on_random_arrivals) {
    for_each_seed(40, [&](std::mt19937& random) {
        message_rate rate;
        naive_rate model;
        // Start anywhere, near the 32-bit millisecond wrap included.
        std::uint64_t now =
            random() % 2 == 0 ? (std::uint64_t{1} << 32) - random() % 5000 : std::uint64_t{random()} << 4;
        // Phases of 10 to 80 arrivals: bursts, a steady 50 a second, gaps on the edge of the window,
        // long silences; now and then one very long silence, after a burst as likely as anywhere.
        enum phase_kind { burst, steady, edge, sparse } phase = burst;
        int phase_left = 0;
        std::deque<std::uint64_t> recent_gaps;
        for (int i = 0; i < 3000; ++i) {
            if (phase_left-- == 0) {
                phase = static_cast<phase_kind>(random() % 4);
                phase_left = 10 + static_cast<int>(random() % 71);
            }
            std::uint64_t gap = 0;
            if (random() % 100 == 0) {
                gap = (std::uint64_t{1} << 32) + random() % 1500; // past the 32-bit millisecond range
            } else {
                switch (phase) {
                case burst:
                    gap = random() % 25;
                    break;
                case steady:
                    gap = 19 + random() % 3;
                    break;
                case edge: {
                    static constexpr std::uint64_t edges[] = {0, 0, 0, 999, 1000, 1001, 20};
                    gap = edges[random() % std::size(edges)];
                    break;
                }
                case sparse:
                    gap = random() % 2 == 0 ? 65'536 + random() % 100'000 : 500 + random() % 1000;
                    break;
                }
            }
            now += gap;
            recent_gaps.push_back(gap);
            if (recent_gaps.size() > protocol::rate_limit_messages) recent_gaps.pop_front();
            bool const expected = model.over_limit(now);
            bool const got = rate.over_limit(at(now));
            bool const wide_gap = std::any_of(recent_gaps.begin(), recent_gaps.end(),
                                              [](std::uint64_t g) { return g >> 32 != 0; });
            BOOST_TEST(got == expected, "arrival " << i << " at " << now << " ms, " << gap
                                                   << " ms after the last; a gap of 2^32 ms or more among "
                                                   << "the last 50: " << (wide_gap ? "yes" : "no"));
            if (got != expected) break;
        }
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(stream)

BOOST_AUTO_TEST_CASE(a_frame_sent_while_nothing_is_queued_is_written_at_once) {
    loopback_pair pair;
    auto const payload = numbered_payload(0, 1000);
    pair.frames->send(make_text_frame(payload));
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.frames->blocked_since());
    BOOST_TEST(pair.client.available() == wire_frame(payload).bytes().size()); // without a turn of the loop
    check_frames(pair.received_until_eof(), {payload});
}

BOOST_AUTO_TEST_CASE(frames_the_socket_cannot_take_wait_and_arrive_whole_and_in_order_once_the_peer_reads) {
    loopback_pair pair(true);
    auto const before = steady_clock::now();
    auto expected = pair.send_until_blocked(4000);
    // Many small frames behind it: the queue goes out in gather writes of at most 64 buffers.
    std::mt19937 random(3);
    for (int i = 0; i < 300; ++i) {
        expected.push_back(numbered_payload(expected.size(), 8 + random() % 300));
        pair.frames->send(make_text_frame(expected.back()));
    }
    BOOST_TEST(pair.frames->queued() == 301u);
    auto const since = pair.frames->blocked_since();
    BOOST_TEST_REQUIRE(since.has_value());
    BOOST_TEST((before <= *since && *since <= steady_clock::now()));

    check_frames(pair.received_until_eof(), expected);
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.frames->blocked_since());
}

BOOST_AUTO_TEST_CASE(drop_unsent_completes_the_partly_written_front_frame_and_drops_the_rest) {
    loopback_pair pair(true);
    auto const front = numbered_payload(0, larger_than_the_buffers);
    pair.frames->send(make_text_frame(front));
    BOOST_TEST_REQUIRE(pair.frames->queued() == 1u); // partly written
    for (std::size_t i = 1; i <= 10; ++i)
        pair.frames->send(make_text_frame(numbered_payload(i, 100)));
    BOOST_TEST(pair.frames->queued() == 11u);

    pair.frames->drop_unsent();
    BOOST_TEST(pair.frames->queued() == 1u);
    BOOST_TEST(pair.frames->blocked_since().has_value());
    // The stream goes on: a frame sent after the drop follows the front one.
    auto const after = numbered_payload(11, 100);
    pair.frames->send(make_text_frame(after));
    check_frames(pair.received_until_eof(), {front, after});
}

BOOST_AUTO_TEST_CASE(drop_unsent_drops_a_waiting_front_frame_of_which_no_byte_was_written) {
    loopback_pair pair(true);
    // Fill the socket under the stream until it takes nothing more, then send: the frame waits whole.
    auto const filler = wire_frame(numbered_payload(0, 8 << 20));
    auto const bytes = filler.bytes();
    std::size_t filled = 0;
    int error = 0;
    while (filled < bytes.size()) {
        auto const sent = ::send(pair.frames->next_layer().native_handle(), bytes.data() + filled,
                                 bytes.size() - filled, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent >= 0) {
            filled += static_cast<std::size_t>(sent);
            continue;
        }
        error = errno;
        if (error != EINTR) break;
    }
    BOOST_TEST_REQUIRE((error == EAGAIN || error == EWOULDBLOCK), "the socket never filled");
    auto const unsent_before = unsent_bytes(pair.frames->next_layer());
    pair.frames->send(make_text_frame(numbered_payload(1, 100)));
    BOOST_TEST_REQUIRE(unsent_bytes(pair.frames->next_layer()) == unsent_before); // no byte of it went out
    BOOST_TEST_REQUIRE(pair.frames->queued() == 1u);

    pair.frames->drop_unsent();
    BOOST_TEST(pair.frames->queued() == 0u);
    auto const& received = pair.received_until_eof();
    BOOST_TEST(received.size() == filled,
               "the dropped frame arrived: " << received.size() - filled << " bytes");
    BOOST_TEST((received == bytes.substr(0, filled)));
}

BOOST_AUTO_TEST_CASE(bytes_of_the_websocket_layer_are_copied_and_follow_the_frames_queued_before_them) {
    loopback_pair pair(true);
    auto const front = numbered_payload(0, larger_than_the_buffers);
    pair.frames->send(make_text_frame(front));
    BOOST_TEST_REQUIRE(pair.frames->queued() == 1u);
    auto const second = numbered_payload(1, 100);
    pair.frames->send(make_text_frame(second));

    auto const transport = numbered_payload(2, 50);
    std::string written(wire_frame(transport).bytes());
    outcome<beast::error_code, std::size_t> write;
    pair.frames->async_write_some(net::buffer(written), write.handler());
    auto const size = written.size();
    written.assign(size, 'x'); // the stream took a copy: the caller's buffer is free at once
    auto const last = numbered_payload(3, 100);
    pair.frames->send(make_text_frame(last));
    BOOST_TEST(pair.frames->queued() == 4u);

    // It completes at once, all bytes taken, while the client reads nothing.
    auto const [ec, taken] = wait_for(pair.ctx, write);
    BOOST_TEST(!ec);
    BOOST_TEST(taken == size);
    BOOST_TEST(pair.frames->queued() == 4u);

    check_frames(pair.received_until_eof(), {front, second, transport, last});
}

BOOST_AUTO_TEST_CASE(drop_unsent_keeps_the_bytes_of_the_websocket_layer) {
    loopback_pair pair(true);
    auto const front = numbered_payload(0, larger_than_the_buffers);
    pair.frames->send(make_text_frame(front));
    BOOST_TEST_REQUIRE(pair.frames->queued() == 1u);
    std::vector<std::string> const transport{numbered_payload(2, 40), numbered_payload(4, 2)};
    std::vector<std::string> raw;
    for (auto const& payload : transport)
        raw.emplace_back(wire_frame(payload).bytes());
    outcome<beast::error_code, std::size_t> first, second;
    pair.frames->send(make_text_frame(numbered_payload(1, 100)));
    pair.frames->async_write_some(net::buffer(raw[0]), first.handler());
    pair.frames->send(make_text_frame(numbered_payload(3, 100)));
    pair.frames->async_write_some(net::buffer(raw[1]), second.handler());
    pair.frames->send(make_text_frame(numbered_payload(5, 100)));
    BOOST_TEST(pair.frames->queued() == 6u);

    pair.frames->drop_unsent();
    BOOST_TEST(pair.frames->queued() == 3u);
    wait_for(pair.ctx, first);
    wait_for(pair.ctx, second);
    check_frames(pair.received_until_eof(), {front, transport[0], transport[1]});
}

BOOST_AUTO_TEST_CASE(corked_frames_are_held_until_uncork_sends_them_in_one_write_in_order) {
    loopback_pair pair;
    pair.frames->cork();
    auto const response = numbered_payload(0, 120); // what the WebSocket layer writes: the 101, say
    std::string raw(wire_frame(response).bytes());
    outcome<beast::error_code, std::size_t> write;
    pair.frames->async_write_some(net::buffer(raw), write.handler());
    std::vector<std::string> expected{response};
    for (std::size_t i = 1; i <= 3; ++i) {
        expected.push_back(numbered_payload(i, 200));
        pair.frames->send(make_text_frame(expected.back()));
    }
    BOOST_TEST(pair.frames->queued() == 4u);
    BOOST_TEST(!pair.frames->blocked_since()); // held, not waiting on the socket
    wait_for(pair.ctx, write);                 // the WebSocket layer's write completes while held
    settle(pair.ctx);
    BOOST_TEST(pair.client.available() == 0u); // nothing written, by the calls or by a turn of the loop

    pair.frames->uncork();
    BOOST_TEST(pair.frames->queued() == 0u); // all written by uncork itself, with no wait
    std::size_t total = 0;
    for (auto const& payload : expected)
        total += wire_frame(payload).bytes().size();
    BOOST_TEST(pair.client.available() == total);
    check_frames(pair.received_until_eof(), expected);
}

BOOST_AUTO_TEST_CASE(teardown_in_the_server_role_closes_the_socket_only_after_the_queue_is_written) {
    loopback_pair pair(true);
    std::vector<std::string> expected{numbered_payload(0, larger_than_the_buffers), numbered_payload(1, 100),
                                      numbered_payload(2, 70000)};
    for (auto const& payload : expected)
        pair.frames->send(make_text_frame(payload));
    BOOST_TEST_REQUIRE(pair.frames->queued() == 3u);

    outcome<beast::error_code> teardown;
    async_teardown(beast::role_type::server, *pair.frames, teardown.handler());
    settle(pair.ctx);
    BOOST_TEST(!teardown.done());
    BOOST_TEST(pair.frames->next_layer().is_open());

    pair.start_reading();
    BOOST_TEST_REQUIRE(run_until(pair.ctx, [&] { return pair.read_done; }));
    BOOST_TEST(pair.read_ec == beast::error_code(net::error::eof));
    check_frames(pair.received, expected);
    auto const [ec] = wait_for(pair.ctx, teardown);
    BOOST_TEST(!ec);
    BOOST_TEST(!pair.frames->next_layer().is_open());
}

BOOST_AUTO_TEST_CASE(teardown_in_the_server_role_with_nothing_queued_closes_at_once) {
    loopback_pair pair;
    outcome<beast::error_code> teardown;
    async_teardown(beast::role_type::server, *pair.frames, teardown.handler());
    BOOST_TEST(!pair.frames->next_layer().is_open());
    auto const [ec] = wait_for(pair.ctx, teardown);
    BOOST_TEST(!ec);
    pair.start_reading();
    BOOST_TEST_REQUIRE(run_until(pair.ctx, [&] { return pair.read_done; }));
    BOOST_TEST(pair.read_ec == beast::error_code(net::error::eof));
    BOOST_TEST(pair.received.empty());
}

BOOST_AUTO_TEST_CASE(a_write_to_a_reset_peer_fails_the_stream_for_good) {
    loopback_pair pair(true);
    pair.client.set_option(net::socket_base::linger(true, 0));
    pair.client.close(); // RST
    outcome<beast::error_code> readable;
    pair.frames->async_read_ahead(readable.handler());
    wait_for(pair.ctx, readable); // the reset has arrived

    pair.frames->send(make_text_frame(numbered_payload(0, 100)));
    BOOST_TEST(!pair.frames->next_layer().is_open()); // failed: the socket is closed for the reader to see
    // A healthy stream to a client that does not read would queue most of these.
    for (std::size_t i = 1; i <= 200; ++i)
        pair.frames->send(make_text_frame(numbered_payload(i, 4000)));
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.frames->blocked_since());
    bool drained = false;
    pair.frames->after_drain([&] { drained = true; });
    BOOST_TEST(drained);
    outcome<beast::error_code, std::size_t> write;
    std::string raw(wire_frame("late").bytes());
    pair.frames->async_write_some(net::buffer(raw), write.handler());
    auto const [ec, size] = wait_for(pair.ctx, write);
    BOOST_TEST(ec.failed());
    BOOST_TEST(size == 0u);
}

BOOST_AUTO_TEST_CASE(a_peer_reset_while_frames_wait_fails_the_stream_and_runs_after_drain) {
    loopback_pair pair(true);
    pair.send_until_blocked(4000);
    pair.frames->send(make_text_frame(numbered_payload(999, 100)));
    bool drained = false;
    pair.frames->after_drain([&] { drained = true; });
    settle(pair.ctx);
    BOOST_TEST(!drained);

    pair.client.set_option(net::socket_base::linger(true, 0));
    pair.client.close(); // RST, with unread data too
    BOOST_TEST_REQUIRE(run_until(pair.ctx, [&] { return drained; }));
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.frames->next_layer().is_open());
    pair.frames->send(make_text_frame(numbered_payload(1000, 100)));
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.frames->blocked_since());
}

BOOST_AUTO_TEST_CASE(a_pending_wait_keeps_the_owner_alive_until_the_queue_is_written) {
    loopback_pair pair(true);
    auto const expected = pair.send_until_blocked(4000);
    std::weak_ptr<stream_owner> const watch = pair.owner;
    pair.owner.reset(); // as a session's coroutine ends while its frames still wait
    pair.frames = nullptr;
    settle(pair.ctx);
    BOOST_TEST(!watch.expired());

    pair.start_reading();
    // Written out, the stream lets its owner go, and the socket closes with it.
    BOOST_TEST_REQUIRE(run_until(pair.ctx, [&] { return watch.expired(); }));
    BOOST_TEST_REQUIRE(run_until(pair.ctx, [&] { return pair.read_done; }));
    BOOST_TEST(pair.read_ec == beast::error_code(net::error::eof));
    check_frames(pair.received, expected);
}

BOOST_AUTO_TEST_CASE(an_empty_write_behind_waiting_frames_does_not_stall_the_queue) {
    loopback_pair pair(true);
    auto const front = numbered_payload(0, larger_than_the_buffers);
    pair.frames->send(make_text_frame(front));
    BOOST_TEST_REQUIRE(pair.frames->queued() == 1u);
    outcome<beast::error_code, std::size_t> write;
    pair.frames->async_write_some(net::const_buffer(), write.handler());
    auto const [ec, size] = wait_for(pair.ctx, write);
    BOOST_TEST(!ec);
    BOOST_TEST(size == 0u);
    bool drained = false;
    pair.frames->after_drain([&] { drained = true; });

    pair.start_reading();
    BOOST_TEST(run_until(
                   pair.ctx, [&] { return drained; }, 3s),
               "queued() stays " << pair.frames->queued());
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.frames->blocked_since());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(under_websocket)

namespace {

/** A server session's write path: Beast's WebSocket layer over the frame_stream, owned together. */
struct websocket_owner {
    explicit websocket_owner(tcp::socket socket)
        : frames(std::move(socket))
        , ws(frames) {}
    frame_stream<tcp::socket> frames;
    websocket::stream<frame_stream<tcp::socket>&, false> ws;
};

/**
 * A Beast client connected to a server WebSocket over frame_stream on 127.0.0.1. The upgrade request is
 * read on the bare socket before the frame stream exists, as the HTTP session reads it, so the frame stream
 * sees WebSocket frames only.
 */
struct websocket_pair {
    websocket_pair() {
        tcp::acceptor acceptor(ctx, tcp::endpoint(net::ip::address_v4::loopback(), 0));
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
std::string client_text(std::string_view payload) {
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

} // namespace

BOOST_AUTO_TEST_CASE(a_beast_client_reads_wire_frames_of_every_length_form) {
    websocket_pair pair;
    std::vector<std::string> payloads;
    for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 70000})
        payloads.push_back(numbered_payload(size, size));
    for (auto const& payload : payloads)
        pair.server->frames.send(make_text_frame(payload));
    for (auto const& payload : payloads) {
        auto const got = pair.client_reads();
        BOOST_TEST(got.size() == payload.size());
        BOOST_TEST((got == payload));
    }
}

BOOST_AUTO_TEST_CASE(message_taken_is_true_only_when_the_websocket_layer_holds_no_unread_byte) {
    websocket_pair pair;
    pair.client_writes_raw(client_text("one"));
    pair.until_server_holds(9);
    BOOST_TEST(pair.server_reads() == "one");
    BOOST_TEST(pair.server->frames.message_taken());

    // Two messages in the socket before the server reads: the WebSocket layer reads both at once.
    pair.client_writes_raw(client_text("two") + client_text("three"));
    pair.until_server_holds(20);
    BOOST_TEST(pair.server_reads() == "two");
    BOOST_TEST(!pair.server->frames.message_taken());
    BOOST_TEST(pair.server_reads() == "three");
    BOOST_TEST(pair.server->frames.message_taken());

    // A ping read with the message is unread after it.
    pair.client_writes_raw(client_text("four") + std::string("\x89\x80\0\0\0\0", 6));
    pair.until_server_holds(16);
    BOOST_TEST(pair.server_reads() == "four");
    BOOST_TEST(!pair.server->frames.message_taken());
}

BOOST_AUTO_TEST_CASE(a_read_ahead_waits_for_the_client_and_hands_its_bytes_to_the_next_read) {
    websocket_pair pair;
    pair.client_writes_raw(client_text("one"));
    pair.until_server_holds(9);
    BOOST_TEST(pair.server_reads() == "one");
    BOOST_TEST_REQUIRE(pair.server->frames.message_taken());

    outcome<beast::error_code> ahead;
    pair.server->frames.async_read_ahead(ahead.handler());
    pair.ctx.restart();
    pair.ctx.run_for(20ms); // an event that must not come: give it a moment
    BOOST_TEST(!ahead.done());
    pair.client_writes_raw(client_text("two"));
    BOOST_TEST(!std::get<0>(wait_for(pair.ctx, ahead)));
    BOOST_TEST(pair.server_reads() == "two", "the WebSocket layer reads what the read-ahead took");
    BOOST_TEST(pair.server->frames.message_taken());

    // A message longer than the read-ahead's buffer: the rest comes from the socket.
    std::string const long_text(300, 'w');
    outcome<beast::error_code> again;
    pair.server->frames.async_read_ahead(again.handler());
    pair.client_writes_raw(client_text(long_text));
    BOOST_TEST(!std::get<0>(wait_for(pair.ctx, again)));
    BOOST_TEST(pair.server_reads() == long_text);
    BOOST_TEST(pair.server->frames.message_taken());
}

BOOST_AUTO_TEST_CASE(a_cancelled_read_ahead_leaves_the_client_s_bytes_to_the_websocket_layer) {
    websocket_pair pair;
    outcome<beast::error_code> ahead;
    pair.server->frames.async_read_ahead(ahead.handler());
    pair.server->frames.cancel_read_ahead();
    BOOST_TEST(std::get<0>(wait_for(pair.ctx, ahead)) == beast::error_code(net::error::operation_aborted));
    pair.client_writes_raw(client_text("after"));
    BOOST_TEST(pair.server_reads() == "after");
    BOOST_TEST(pair.server->frames.message_taken());
}

BOOST_AUTO_TEST_CASE(the_closing_handshake_ends_with_the_server_closing_the_connection) {
    websocket_pair pair;
    outcome<beast::error_code> closed;
    pair.server->ws.async_close(websocket::close_code::normal, closed.handler());
    beast::flat_buffer buffer;
    outcome<beast::error_code, std::size_t> read;
    pair.client.async_read(buffer, read.handler());
    BOOST_TEST(std::get<0>(wait_for(pair.ctx, read)) == beast::error_code(websocket::error::closed));
    BOOST_TEST(pair.client.reason().code == websocket::close_code::normal);
    BOOST_TEST(!std::get<0>(wait_for(pair.ctx, closed)));
    BOOST_TEST(!pair.server->frames.next_layer().is_open());
}

BOOST_AUTO_TEST_SUITE_END()
