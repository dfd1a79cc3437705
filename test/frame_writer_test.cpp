#define BOOST_TEST_MODULE frame_writer
// The write side of a connection, through its frame_stream on a loopback pair: in-place sends, the queue
// of frames the socket did not take, dropping, corking, failures, and the teardown after the queue.
#include "common/loopback.hpp"
#include "frame_stream.hpp"

#include <boost/test/unit_test.hpp>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;
using tcp = net::ip::tcp;

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
