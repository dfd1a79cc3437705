#define BOOST_TEST_MODULE tls_socket
// The server's TLS connection on a loopback pair, against Asio's ssl::stream as the client: the handshake
// (with bytes read before it, and a deadline), frames written in place with one SSL_write each and queued
// when the socket is full (OpenSSL holding a begun one), the graceful close, and the quiet reader's
// read-ahead, which must not wait on the socket while OpenSSL already holds the client's next record.
#include "common/certificates.hpp"
#include "common/loopback.hpp"
#include "frame_stream.hpp"
#include "tls_socket.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/test/unit_test.hpp>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;
using tcp = net::ip::tcp;

namespace {

/** The server's context, but for the session tickets it sends after a handshake: the client's socket then
 * holds only what a test sends. */
net::ssl::context without_tickets(net::ssl::context context) {
    SSL_CTX_set_num_tickets(context.native_handle(), 0);
    return context;
}

/** What owns a TLS frame_stream in the server: a session, reached through a shared_ptr. */
struct tls_owner {
    tls_owner(tcp_socket socket, net::ssl::context& context)
        : frames(std::move(socket), context) {}
    frame_stream<tls_socket> frames;
};

/**
 * A connected pair on 127.0.0.1: a tls_socket's frame_stream on the accepted end, owned as a session owns
 * it, and an Asio ssl::stream client whose reads collect the plaintext the server wrote. With
 * `small_buffers` both sockets buffer little, so a client that does not read soon blocks the server. The
 * TLS handshake is done unless `handshake` is false.
 */
struct tls_pair : client_reads<net::ssl::stream<tcp::socket>> {
    explicit tls_pair(bool small_buffers = false, bool handshake = true)
        : client_reads(client) { // bound now, used once the handshake is done

        tcp_acceptor acceptor(ctx, tcp::endpoint(net::ip::address_v4::loopback(), 0));
        auto& client_socket = client.next_layer();
        client_socket.open(tcp::v4());
        if (small_buffers) client_socket.set_option(net::socket_base::receive_buffer_size(4096));
        client_socket.connect(acceptor.local_endpoint());
        auto socket = acceptor.accept();
        if (small_buffers) socket.set_option(net::socket_base::send_buffer_size(4096));
        owner = std::make_shared<tls_owner>(std::move(socket), server_context);
        owner->frames.keep_alive_with(owner);
        frames = &owner->frames;
        if (!handshake) return;
        outcome<beast::error_code> client_done;
        client.async_handshake(net::ssl::stream_base::client, client_done.handler());
        outcome<beast::error_code, std::size_t> server_done;
        server().async_handshake(net::const_buffer(), server_done.handler());
        BOOST_TEST_REQUIRE(!std::get<0>(wait_for(ctx, server_done)));
        BOOST_TEST_REQUIRE(!std::get<0>(wait_for(ctx, client_done)));
    }

    ~tls_pair() {
        beast::error_code ignored;
        client.next_layer().close(ignored);
        if (owner) server().close();
        owner.reset();
        ctx.restart();
        ctx.run_for(5s);
        BOOST_CHECK_MESSAGE(ctx.stopped(), "work was left pending on the io_context");
    }

    tls_socket& server() { return owner->frames.next_layer(); }

    /**
     * Everything the server wrote, through its teardown: close_notify and the FIN after the queue; then the
     * client answers with its own close_notify and FIN, which the server reads before it closes, so the
     * connection ends without a reset.
     */
    std::string const& received_through_teardown() {
        outcome<beast::error_code> teardown;
        async_teardown(beast::role_type::server, *frames, teardown.handler());
        start_reading();
        BOOST_TEST_REQUIRE(run_until(ctx, [&] { return read_done; }), "the client never saw the end");
        BOOST_TEST(read_ec == beast::error_code(net::error::eof), "close_notify, not " << read_ec.message());
        settle(ctx);
        BOOST_TEST(!teardown.done(), "the server waits for the client to close its side");
        BOOST_TEST(server().next_layer().is_open());

        outcome<beast::error_code> client_shutdown;
        client.async_shutdown(client_shutdown.handler()); // close_notify, the server's already in hand
        BOOST_TEST(!std::get<0>(wait_for(ctx, client_shutdown)));
        client.next_layer().shutdown(tcp::socket::shutdown_send);
        BOOST_TEST(!std::get<0>(wait_for(ctx, teardown)));
        BOOST_TEST(!server().next_layer().is_open());
        std::array<char, 16> after{};
        beast::error_code end;
        client.next_layer().read_some(net::buffer(after), end);
        BOOST_TEST(end == beast::error_code(net::error::eof), "a FIN, not " << end.message());
        return received;
    }

    /** Sends frames of `size` bytes until one waits in the queue; returns their payloads. */
    std::vector<std::string> send_until_blocked(std::size_t size) {
        return test::send_until_blocked(*frames, size);
    }

    /** Writes `bytes` with one SSL_write of the client: one record. */
    void client_writes(std::string const& bytes) {
        outcome<beast::error_code, std::size_t> write;
        net::async_write(client, net::buffer(bytes), write.handler());
        BOOST_TEST_REQUIRE(!std::get<0>(wait_for(ctx, write)));
    }

    /** Runs until `socket` holds at least `size` unread bytes. */
    template <class Socket>
    void until_holds(Socket& socket, std::size_t size) {
        net::steady_timer tick(ctx);
        auto const deadline = steady_clock::now() + 5s;
        while (socket.available() < size && steady_clock::now() < deadline) {
            outcome<beast::error_code> waited;
            tick.expires_after(1ms);
            tick.async_wait(waited.handler());
            wait_for(ctx, waited);
        }
        BOOST_TEST_REQUIRE(socket.available() >= size);
    }
    void until_server_socket_holds(std::size_t size) { until_holds(server().next_layer(), size); }
    void until_client_socket_holds(std::size_t size) { until_holds(client.next_layer(), size); }

    /** One read of the server's frame stream, with room for `room` bytes. */
    std::string server_reads_some(std::size_t room = 4096) {
        std::string into(room, '\0');
        outcome<beast::error_code, std::size_t> read;
        frames->async_read_some(net::buffer(into), read.handler());
        auto const [ec, size] = wait_for(ctx, read);
        BOOST_TEST_REQUIRE(!ec, "server read: " << ec.message());
        into.resize(size);
        return into;
    }

    test_certificate certificate;
    net::ssl::context server_context = without_tickets(certificate.server_context());
    net::ssl::context client_context = certificate.client_context();
    net::io_context ctx;
    net::ssl::stream<tcp::socket> client{ctx, client_context};
    std::shared_ptr<tls_owner> owner;
    frame_stream<tls_socket>* frames = nullptr;
};

} // namespace

BOOST_AUTO_TEST_SUITE(handshake)

BOOST_AUTO_TEST_CASE(the_bytes_read_before_the_handshake_are_the_first_openssl_reads) {
    tls_pair pair(false, false);
    outcome<beast::error_code> client_done;
    pair.client.async_handshake(net::ssl::stream_base::client, client_done.handler());
    // As the TLS port reads the start of the ClientHello to tell it from plain HTTP.
    std::array<char, 11> start{};
    outcome<beast::error_code, std::size_t> peeked;
    net::async_read(pair.server().next_layer(), net::buffer(start), peeked.handler());
    BOOST_TEST_REQUIRE(!std::get<0>(wait_for(pair.ctx, peeked)));
    BOOST_TEST(start[0] == '\x16'); // a handshake record

    outcome<beast::error_code, std::size_t> server_done;
    pair.server().async_handshake(net::buffer(start), server_done.handler());
    auto const [ec, used] = wait_for(pair.ctx, server_done);
    BOOST_TEST(!ec, ec.message());
    BOOST_TEST(used == start.size());
    BOOST_TEST(!std::get<0>(wait_for(pair.ctx, client_done)));
}

BOOST_AUTO_TEST_CASE(a_handshake_the_client_never_begins_ends_at_the_deadline_with_timeout) {
    tls_pair pair(false, false);
    pair.server().expires_after(100ms);
    auto const started = steady_clock::now();
    outcome<beast::error_code, std::size_t> server_done;
    pair.server().async_handshake(net::const_buffer(), server_done.handler());
    auto const [ec, used] = wait_for(pair.ctx, server_done);
    BOOST_TEST(ec == beast::error_code(beast::error::timeout), ec.message());
    BOOST_TEST(pair.server().expired());
    BOOST_TEST((steady_clock::now() - started >= 100ms));
    BOOST_TEST(!pair.server().next_layer().is_open());
}

BOOST_AUTO_TEST_CASE(a_deadline_removed_in_time_never_closes_the_socket) {
    tls_pair pair;
    pair.server().expires_after(50ms);
    pair.server().expires_never();
    net::steady_timer later(pair.ctx);
    later.expires_after(150ms);
    outcome<beast::error_code> waited;
    later.async_wait(waited.handler());
    wait_for(pair.ctx, waited);
    BOOST_TEST(pair.server().next_layer().is_open());
    BOOST_TEST(!pair.server().expired());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(writes)

BOOST_AUTO_TEST_CASE(a_frame_sent_while_nothing_is_queued_is_encrypted_and_sent_at_once) {
    tls_pair pair;
    auto const payload = numbered_payload(0, 1000);
    pair.frames->send(make_text_frame(payload));
    // All of it handed to the socket (nothing left in OpenSSL or the queue), without a turn of the loop.
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.frames->blocked_since());
    // As one record: the frame, a header and the AEAD tag (the kernel may hold it back a moment to
    // coalesce it with the handshake's last segments, so it is awaited).
    auto const frame_size = wire_frame(payload).bytes().size();
    pair.until_client_socket_holds(frame_size + 1);
    auto const on_the_wire = pair.client.next_layer().available();
    BOOST_TEST(on_the_wire < frame_size + 64);
    check_frames(pair.received_through_teardown(), {payload});
}

BOOST_AUTO_TEST_CASE(frames_the_socket_cannot_take_wait_and_arrive_whole_and_in_order_once_the_peer_reads) {
    tls_pair pair(true);
    auto const before = steady_clock::now();
    auto expected = pair.send_until_blocked(4000);
    std::mt19937 random(3);
    for (int i = 0; i < 300; ++i) {
        expected.push_back(numbered_payload(expected.size(), 8 + random() % 300));
        pair.frames->send(make_text_frame(expected.back()));
    }
    // A frame the size of several records behind them.
    expected.push_back(numbered_payload(expected.size(), 70000));
    pair.frames->send(make_text_frame(expected.back()));
    BOOST_TEST(pair.frames->queued() == 302u);
    auto const since = pair.frames->blocked_since();
    BOOST_TEST_REQUIRE(since.has_value());
    BOOST_TEST((before <= *since && *since <= steady_clock::now()));

    check_frames(pair.received_through_teardown(), expected);
    BOOST_TEST(pair.frames->queued() == 0u);
}

BOOST_AUTO_TEST_CASE(drop_unsent_keeps_the_frame_openssl_has_begun_and_drops_the_rest) {
    tls_pair pair(true);
    auto const front = numbered_payload(0, larger_than_the_buffers);
    pair.frames->send(make_text_frame(front));
    BOOST_TEST_REQUIRE(pair.frames->queued() == 1u); // OpenSSL holds the records the socket did not take
    for (std::size_t i = 1; i <= 10; ++i)
        pair.frames->send(make_text_frame(numbered_payload(i, 100)));
    pair.frames->drop_unsent();
    BOOST_TEST(pair.frames->queued() == 1u);
    auto const after = numbered_payload(11, 100);
    pair.frames->send(make_text_frame(after));
    check_frames(pair.received_through_teardown(), {front, after});
}

BOOST_AUTO_TEST_CASE(a_peer_reset_while_frames_wait_fails_the_stream_and_runs_after_drain) {
    tls_pair pair(true);
    pair.send_until_blocked(4000);
    bool drained = false;
    pair.frames->after_drain([&] { drained = true; });
    settle(pair.ctx);
    BOOST_TEST(!drained);
    pair.client.next_layer().set_option(net::socket_base::linger(true, 0));
    pair.client.next_layer().close(); // RST, with unread data too
    BOOST_TEST_REQUIRE(run_until(pair.ctx, [&] { return drained; }));
    BOOST_TEST(pair.frames->queued() == 0u);
    BOOST_TEST(!pair.server().next_layer().is_open());
    pair.frames->send(make_text_frame(numbered_payload(1, 100)));
    BOOST_TEST(pair.frames->queued() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(reads)

BOOST_AUTO_TEST_CASE(a_read_ahead_waits_for_the_client_and_openssl_reads_what_it_took) {
    tls_pair pair;
    outcome<beast::error_code> ahead;
    pair.frames->async_read_ahead(ahead.handler());
    pair.ctx.restart();
    pair.ctx.run_for(20ms); // an event that must not come: give it a moment
    BOOST_TEST(!ahead.done());
    auto const one = client_text("one");
    pair.client_writes(one);
    BOOST_TEST(!std::get<0>(wait_for(pair.ctx, ahead)));
    BOOST_TEST(pair.server_reads_some() == one);
    BOOST_TEST(pair.frames->message_taken());

    // A record longer than the read-ahead's 96 bytes: the rest comes from the socket.
    auto const long_text = client_text(std::string(300, 'w'));
    outcome<beast::error_code> again;
    pair.frames->async_read_ahead(again.handler());
    pair.client_writes(long_text);
    BOOST_TEST(!std::get<0>(wait_for(pair.ctx, again)));
    BOOST_TEST(pair.server_reads_some() == long_text);
    BOOST_TEST(pair.frames->message_taken());
}

BOOST_AUTO_TEST_CASE(a_read_ahead_completes_at_once_while_openssl_holds_the_client_s_next_record) {
    tls_pair pair;
    auto const one = client_text("one");
    auto const two = client_text("two");
    pair.client_writes(one); // two records, both on the server's socket before it reads
    pair.client_writes(two);
    pair.until_server_socket_holds(2 * (one.size() + 22));
    // OpenSSL reads ahead: both records leave the socket with the first read, which returns the first.
    BOOST_TEST(pair.server_reads_some() == one);
    BOOST_TEST(pair.frames->message_taken());
    BOOST_TEST(pair.server().next_layer().available() == 0u);

    outcome<beast::error_code> ahead;
    pair.frames->async_read_ahead(ahead.handler());
    BOOST_TEST_REQUIRE(run_until(
                           pair.ctx, [&] { return ahead.done(); }, 2s),
                       "the read-ahead waited on the socket for a record OpenSSL already held");
    BOOST_TEST(!std::get<0>(ahead.get()));
    BOOST_TEST(pair.server_reads_some() == two);
}

BOOST_AUTO_TEST_CASE(a_cancelled_read_ahead_leaves_the_client_s_bytes_to_the_next_read) {
    tls_pair pair;
    outcome<beast::error_code> ahead;
    pair.frames->async_read_ahead(ahead.handler());
    pair.frames->cancel_read_ahead();
    BOOST_TEST(std::get<0>(wait_for(pair.ctx, ahead)) == beast::error_code(net::error::operation_aborted));
    auto const after = client_text("after");
    pair.client_writes(after);
    BOOST_TEST(pair.server_reads_some() == after);
}

BOOST_AUTO_TEST_SUITE_END()
