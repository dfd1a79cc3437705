#define BOOST_TEST_MODULE frame_reader
// The read side of a connection: frame boundaries followed in the bytes read (against a model), and the
// quiet reader's read-ahead under Beast's WebSocket layer.
#include "common/loopback.hpp"
#include "frame_reader.hpp"
#include "frame_stream.hpp"

#include <boost/test/unit_test.hpp>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;
using tcp = net::ip::tcp;

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

BOOST_AUTO_TEST_SUITE(under_websocket)

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

BOOST_AUTO_TEST_SUITE_END()
