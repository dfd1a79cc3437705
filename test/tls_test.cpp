#define BOOST_TEST_MODULE tls
// The port with --tls-cert/--tls-key: HTTPS and wss:// only, TLS 1.2 or later, bounded handshakes, and a
// plain answer to plain HTTP.
#include "common/certificates.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"
#include "tls.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <openssl/ssl.h>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;
namespace close_code = wolf::protocol::close_code;

namespace {

/** A client context trusting `cert` that offers TLS versions from `min` to `max` only. */
net::ssl::context client_context_for_versions(test_certificate const& cert, int min, int max) {
    auto context = cert.client_context();
    SSL_CTX_set_min_proto_version(context.native_handle(), min);
    SSL_CTX_set_max_proto_version(context.native_handle(), max);
    // Security level 0, so that the client itself is willing to speak TLS 1.1 (it signs with SHA-1).
    SSL_CTX_set_cipher_list(context.native_handle(), "DEFAULT:@SECLEVEL=0");
    return context;
}

/** Connects to 127.0.0.1:port and tries a TLS handshake; returns the stream and the handshake's error. */
net::awaitable<std::pair<std::unique_ptr<tls_stream>, beast::error_code>>
try_tls_handshake(std::uint16_t port, net::ssl::context& context) {
    auto stream = std::make_unique<tls_stream>(co_await net::this_coro::executor, context);
    net::ip::tcp::endpoint const endpoint{net::ip::make_address("127.0.0.1"), port};
    auto [connect_ec] = co_await beast::get_lowest_layer(*stream).async_connect(endpoint, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!connect_ec, "connect: " << connect_ec.message());
    auto [ec] = co_await stream->async_handshake(net::ssl::stream_base::client, use_nothrow);
    co_return std::pair{std::move(stream), ec};
}

} // namespace

BOOST_AUTO_TEST_CASE(full_lifecycle_over_wss_from_initial_to_close_1000) {
    test_certificate const cert;
    auto server_context = cert.server_context();
    auto client_context = cert.client_context();
    auto cfg = fast_config();
    cfg.interval = 50ms; // real ticks
    run_with_server(cfg, server_context, [&](server& srv) -> net::awaitable<void> {
        dialer<tls_stream> const to{srv.port(), client_context};
        auto client = co_await wss_client::open(to);
        BOOST_TEST(!client.id().empty());
        BOOST_TEST(srv.connections().connections() == 1u);

        co_await client.connect_and_subscribe(); // connect, subscribe and the confirmation
        BOOST_TEST(srv.connections().subscribers() == 1u);
        auto const wisdom = co_await client.read_until(event::wisdom_distribution);
        auto const quotes = test_quotes();
        BOOST_TEST(
            (std::find(quotes.begin(), quotes.end(), payload_string(wisdom, "message")) != quotes.end()));

        co_await client.send_event(event::disconnect);
        auto const closed = co_await client.read_close();
        BOOST_TEST(closed.code == close_code::normal);
        BOOST_TEST(srv.connections().connections() == 0u);
    });
}

BOOST_AUTO_TEST_CASE(a_quiet_wss_client_speaks_again_and_is_served) {
    test_certificate const cert;
    auto server_context = cert.server_context();
    auto client_context = cert.client_context();
    run_with_server(fast_config(), server_context, [&](server& srv) -> net::awaitable<void> {
        dialer<tls_stream> const to{srv.port(), client_context};
        auto client = co_await wss_client::open(to);
        co_await client.connect_and_subscribe();
        for (int i = 0; i < 3; ++i) { // each time the reader has ended, and the read-ahead starts another
            co_await client.send_event(event::subscribe);
            co_await client.read_until(event::subscribe_confirmation);
        }
        co_await publish(srv, "Still listening.");
        BOOST_TEST(payload_string(co_await client.read_until(event::wisdom_distribution), "message") ==
                   "Still listening.");
        co_await client.send_event(event::disconnect);
        BOOST_TEST((co_await client.read_close()).code == close_code::normal);
        BOOST_TEST(srv.connections().connections() == 0u);
    });
}

BOOST_AUTO_TEST_CASE(healthz_over_https_is_200_json) {
    test_certificate const cert;
    auto server_context = cert.server_context();
    auto client_context = cert.client_context();
    run_with_server(fast_config(), server_context, [&](server& srv) -> net::awaitable<void> {
        auto const res = co_await https_request(srv.port(), client_context, http::verb::get, "/healthz");
        BOOST_TEST(res.result_int() == 200u);
        BOOST_TEST(res[http::field::content_type] == "application/json");
        auto const body = boost::json::parse(res.body()).as_object();
        BOOST_TEST(body.at("status").as_string() == "ok");
    });
}

BOOST_AUTO_TEST_CASE(a_client_that_trusts_another_certificate_refuses_the_server) {
    // The clients above verify the server: this is what makes them fail if it presented anything else.
    test_certificate const cert;
    test_certificate const other;
    auto server_context = cert.server_context();
    auto client_context = other.client_context();
    run_with_server(fast_config(), server_context, [&](server& srv) -> net::awaitable<void> {
        auto const [stream, ec] = co_await try_tls_handshake(srv.port(), client_context);
        BOOST_TEST(ec.failed());
        BOOST_TEST(ec.message().find("certificate verify failed") != std::string::npos, ec.message());
    });
}

BOOST_AUTO_TEST_CASE(plain_http_on_the_tls_port_gets_400_saying_so) {
    test_certificate const cert;
    auto server_context = cert.server_context();
    run_with_server(fast_config(), server_context, [&](server& srv) -> net::awaitable<void> {
        auto const res = co_await raw_exchange(srv.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        BOOST_TEST(res.starts_with("HTTP/1.1 400"), res);
        BOOST_TEST(res.find("Connection: close") != std::string::npos, res);
        BOOST_TEST(res.ends_with("\r\n\r\nthis port speaks TLS: use https:// or wss://\n"), res);
        // A ws:// upgrade is refused the same way.
        BOOST_TEST(co_await ws_client::try_handshake(srv.port()) == 400u);
        BOOST_TEST(srv.stats().http_timeouts_total == 0u);
    });
}

BOOST_AUTO_TEST_CASE(the_server_context_requires_tls_1_2) {
    test_certificate const cert;
    auto context = cert.server_context();
    BOOST_TEST(SSL_CTX_get_min_proto_version(context.native_handle()) == TLS1_2_VERSION);
}

BOOST_AUTO_TEST_CASE(a_tls_1_1_client_fails_the_handshake_and_a_tls_1_2_client_succeeds) {
    test_certificate const cert;
    auto server_context = cert.server_context();
    auto tls11 = client_context_for_versions(cert, TLS1_VERSION, TLS1_1_VERSION);
    auto tls12 = client_context_for_versions(cert, TLS1_2_VERSION, TLS1_2_VERSION);
    run_with_server(fast_config(), server_context, [&](server& srv) -> net::awaitable<void> {
        auto const [old_stream, old_ec] = co_await try_tls_handshake(srv.port(), tls11);
        BOOST_TEST(old_ec.failed());
        // The server refuses the version itself (a protocol_version alert), not some later step.
        BOOST_TEST(old_ec.message().find("protocol version") != std::string::npos, old_ec.message());

        auto const [stream, ec] = co_await try_tls_handshake(srv.port(), tls12);
        BOOST_REQUIRE_MESSAGE(!ec, "TLS 1.2 handshake: " << ec.message());
        BOOST_TEST(SSL_version(stream->native_handle()) == TLS1_2_VERSION);
    });
}

BOOST_AUTO_TEST_CASE(a_client_that_never_finishes_the_handshake_is_closed_after_the_handshake_timeout) {
    test_certificate const cert;
    auto server_context = cert.server_context();
    auto cfg = fast_config();
    cfg.handshake_timeout = 300ms;
    run_with_server(cfg, server_context, [&](server& srv) -> net::awaitable<void> {
        // Silent after connecting; then the first 9 bytes of a ClientHello (enough to be recognised as TLS)
        // and no more. Each connection is closed without a byte of answer.
        std::string const silent;
        std::string const partial_hello("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4", 9);
        for (auto const& sent : {silent, partial_hello}) {
            auto const started = std::chrono::steady_clock::now();
            auto const reply = co_await raw_exchange(srv.port(), sent);
            BOOST_TEST(reply.empty());
            BOOST_TEST((std::chrono::steady_clock::now() - started >= 250ms));
        }
        BOOST_TEST(srv.stats().http_timeouts_total == 2u);
    });
}

BOOST_AUTO_TEST_CASE(shutdown_closes_wss_clients_with_1001) {
    test_certificate const cert;
    auto server_context = cert.server_context();
    auto client_context = cert.client_context();
    run_with_server(fast_config(), server_context, [&](server& srv) -> net::awaitable<void> {
        dialer<tls_stream> const to{srv.port(), client_context};
        auto client = co_await wss_client::open(to);
        co_await client.connect_and_subscribe();
        using namespace net::experimental::awaitable_operators;
        auto const shut_down = [&]() -> net::awaitable<bool> {
            co_await srv.shutdown();
            co_return true;
        };
        auto const [closed, done] = co_await (client.read_close() && shut_down());
        BOOST_TEST(done);
        BOOST_TEST(closed.code == close_code::going_away);
        BOOST_TEST(srv.connections().live() == 0u);
    });
}
