#define BOOST_TEST_MODULE redis_tls
// Redis over TLS (rediss://) against a real redis-server whose port speaks TLS only, with certificates the
// test makes: commands and a subscription work; a certificate from another CA is refused; a plain URL
// against the TLS port and a TLS URL against a plain port fail with words that say so; a Redis that asks
// for client certificates takes ours and refuses a client without one; two wolf-wisdom nodes share one
// broadcast over TLS; a node with the wrong CA keeps retrying and says so once.
#include "cluster/redis_client.hpp"
#include "cluster/redis_tls.hpp"
#include "cluster/redis_url.hpp"
#include "common/binary.hpp"
#include "common/certificates.hpp"
#include "common/clients.hpp"
#include "common/redis_server.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <variant>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;

namespace {

constexpr duration timeout{2000};

redis_endpoint endpoint(std::string const& url) {
    auto parsed = parse_redis_url(url);
    BOOST_REQUIRE_MESSAGE(std::holds_alternative<redis_endpoint>(parsed), url);
    return std::get<redis_endpoint>(std::move(parsed));
}

std::shared_ptr<net::ssl::context> context_for(redis_tls_files const& files) {
    auto made = make_redis_tls_context(files);
    auto const* error = std::get_if<std::string>(&made);
    BOOST_REQUIRE_MESSAGE(!error, (error ? *error : ""));
    return std::get<std::shared_ptr<net::ssl::context>>(std::move(made));
}

/** A redis-server on a TLS port with `certificate`, trusting `ca` for client certificates. */
redis_server tls_redis(test_certificate const& certificate, std::filesystem::path const& ca,
                       bool auth_clients = false) {
    return redis_server({}, redis_tls_port{certificate.cert(), certificate.key(), ca, auth_clients});
}

/** Connects `client` to `url`; returns the failure ("" on success). */
net::awaitable<std::string> try_connect(redis_client& client, std::string const& url) {
    auto const to = endpoint(url);
    co_return co_await client.connect(to);
}

std::vector<std::string> words(std::initializer_list<char const*> list) {
    return {list.begin(), list.end()};
}

/** Reads `count` wisdom_distribution events; returns their tick numbers. */
net::awaitable<std::vector<std::uint64_t>> read_ticks(ws_client& client, std::size_t count) {
    return read_wisdom_numbers(client, "tick", count);
}

} // namespace

BOOST_AUTO_TEST_CASE(commands_and_a_subscription_work_over_tls) {
    test_certificate const certificate;
    auto redis = tls_redis(certificate, certificate.cert());
    auto const tls = context_for({certificate.cert().string(), {}, {}});
    run_coro([&]() -> net::awaitable<void> {
        auto const executor = co_await net::this_coro::executor;
        redis_client commands(executor, timeout, tls.get());
        redis_client subscriber(executor, timeout, tls.get());
        auto const commands_failure = co_await try_connect(commands, redis.url());
        BOOST_REQUIRE_MESSAGE(commands_failure.empty(), commands_failure);
        auto const subscriber_failure = co_await try_connect(subscriber, redis.url());
        BOOST_REQUIRE_MESSAGE(subscriber_failure.empty(), subscriber_failure);
        std::vector<std::string> got;
        notifier arrived;
        redis_client::message_handler on_message = [&](std::string, std::string payload) {
            got.push_back(std::move(payload));
            arrived.notify();
        };
        auto const subscribed = co_await subscriber.subscribe("howls", std::move(on_message));
        BOOST_REQUIRE_MESSAGE(subscribed.empty(), subscribed);
        // Argument lists named, not built inside co_await (GCC 12 coroutines and braced lists).
        auto set_args = words({"SET", "k", "over tls"});
        auto const set = co_await commands.command(std::move(set_args));
        BOOST_TEST(set.reply.text == "OK");
        auto get_args = words({"GET", "k"});
        auto const value = co_await commands.command(std::move(get_args));
        BOOST_TEST(value.reply.text == "over tls");
        auto const howls = words({"one", "two", "three"});
        for (auto const& text : howls) {
            std::vector<std::string> publish{"PUBLISH", "howls", text};
            auto const published = co_await commands.command(std::move(publish));
            BOOST_TEST(published.reply.integer == 1);
        }
        BOOST_REQUIRE(co_await arrived.until([&] { return got.size() == 3; }, 2s));
        BOOST_TEST(got == howls, boost::test_tools::per_element());
    });
}

BOOST_AUTO_TEST_CASE(a_certificate_from_another_ca_is_refused) {
    test_certificate const certificate;
    test_certificate const stranger;
    auto redis = tls_redis(certificate, certificate.cert());
    auto const tls = context_for({stranger.cert().string(), {}, {}});
    run_coro([&]() -> net::awaitable<void> {
        redis_client client(co_await net::this_coro::executor, timeout, tls.get());
        auto const failure = co_await try_connect(client, redis.url());
        BOOST_TEST(failure.find("TLS handshake with 127.0.0.1:") == 0u, failure);
        BOOST_TEST(failure.find("certificate verify failed") != std::string::npos, failure);
        auto ping = words({"PING"});
        auto const answered = co_await client.command(std::move(ping));
        BOOST_TEST(!answered.ok(), "nothing on a refused connection");
    });
}

BOOST_AUTO_TEST_CASE(a_plain_url_on_the_tls_port_and_a_tls_url_on_a_plain_port_say_which_they_need) {
    test_certificate const certificate;
    auto tls_port = tls_redis(certificate, certificate.cert());
    redis_server plain_port;
    auto const tls = context_for({certificate.cert().string(), {}, {}});
    run_coro([&]() -> net::awaitable<void> {
        auto const executor = co_await net::this_coro::executor;
        redis_client plain_client(executor, timeout, tls.get());
        auto const plain_failure =
            co_await try_connect(plain_client, "redis://127.0.0.1:" + std::to_string(tls_port.port()));
        BOOST_TEST(plain_failure.find("rediss://") != std::string::npos, plain_failure);

        redis_client tls_client(executor, timeout, tls.get());
        auto const tls_failure =
            co_await try_connect(tls_client, "rediss://127.0.0.1:" + std::to_string(plain_port.port()));
        BOOST_TEST(tls_failure.find("TLS handshake") == 0u, tls_failure);
        BOOST_TEST(tls_failure.find("redis://") != std::string::npos, tls_failure);
    });
}

BOOST_AUTO_TEST_CASE(a_redis_asking_for_client_certificates_takes_ours_and_refuses_none) {
    test_certificate const server_certificate;
    test_certificate const client_certificate;
    // Redis trusts the client's self-signed certificate; the client trusts the server's.
    auto const bundle = server_certificate.dir() / "clients.pem";
    {
        std::ofstream out(bundle);
        out << std::ifstream(client_certificate.cert()).rdbuf();
    }
    auto redis = tls_redis(server_certificate, bundle, true);
    auto const with_certificate =
        context_for({server_certificate.cert().string(), client_certificate.cert().string(),
                     client_certificate.key().string()});
    auto const without = context_for({server_certificate.cert().string(), {}, {}});
    run_coro([&]() -> net::awaitable<void> {
        auto const executor = co_await net::this_coro::executor;
        redis_client shown(executor, timeout, with_certificate.get());
        auto const shown_failure = co_await try_connect(shown, redis.url());
        BOOST_TEST(shown_failure.empty(), shown_failure);
        redis_client anonymous(executor, timeout, without.get());
        auto const failure = co_await try_connect(anonymous, redis.url());
        BOOST_TEST(!failure.empty(), "a client without a certificate is refused");
        BOOST_TEST_MESSAGE("without a client certificate: " << failure);
    });
}

BOOST_AUTO_TEST_CASE(a_bad_file_is_named_in_one_line) {
    test_certificate const certificate;
    auto const missing = (certificate.dir() / "missing.pem").string();
    auto const ca = make_redis_tls_context({missing, {}, {}});
    BOOST_REQUIRE(std::holds_alternative<std::string>(ca));
    BOOST_TEST(std::get<std::string>(ca).find("--redis-tls-ca: cannot load '" + missing + "'") == 0u,
               std::get<std::string>(ca));
    test_certificate const other;
    auto const mismatch = make_redis_tls_context(
        {certificate.cert().string(), certificate.cert().string(), other.key().string()});
    BOOST_REQUIRE(std::holds_alternative<std::string>(mismatch));
    BOOST_TEST(std::get<std::string>(mismatch) == "--redis-tls-key: does not match --redis-tls-cert");
}

BOOST_AUTO_TEST_CASE(two_nodes_share_one_broadcast_over_tls) {
    test_certificate const certificate;
    auto redis = tls_redis(certificate, certificate.cert());
    std::vector<std::string> const args{"--interval", "200ms", "--redis-tls-ca", certificate.cert().string()};
    cluster_node a(WOLF_BINARY, redis.url(), args);
    cluster_node b(WOLF_BINARY, redis.url(), args);
    run_coro(
        [&]() -> net::awaitable<void> {
            auto on_a = co_await ws_client::open(a.port);
            co_await on_a.connect_and_subscribe();
            auto on_b = co_await ws_client::open(b.port);
            co_await on_b.connect_and_subscribe();
            // Both hear the same ticks: from the first tick both have, the next three are the same.
            auto tick_a = (co_await read_ticks(on_a, 1)).front();
            auto tick_b = (co_await read_ticks(on_b, 1)).front();
            while (tick_a < tick_b)
                tick_a = (co_await read_ticks(on_a, 1)).front();
            while (tick_b < tick_a)
                tick_b = (co_await read_ticks(on_b, 1)).front();
            BOOST_REQUIRE_EQUAL(tick_a, tick_b);
            auto const next_a = co_await read_ticks(on_a, 3);
            auto const next_b = co_await read_ticks(on_b, 3);
            BOOST_TEST(next_a == next_b, boost::test_tools::per_element());
            BOOST_TEST(next_a.back() == tick_a + 3);
            BOOST_TEST((co_await healthz(a.port)).connected);
        },
        20s);
}

BOOST_AUTO_TEST_CASE(a_node_with_the_wrong_ca_keeps_retrying_and_says_so_once) {
    test_certificate const certificate;
    test_certificate const stranger;
    auto redis = tls_redis(certificate, certificate.cert());
    cluster_node node(
        WOLF_BINARY, redis.url(),
        {"--interval", "200ms", "--log-level", "debug", "--redis-tls-ca", stranger.cert().string()});
    run_coro(
        [&]() -> net::awaitable<void> {
            BOOST_REQUIRE(co_await node.server.async_wait_for_line(" broker_disconnected ", 5s));
            for (int retry = 0; retry < 3; ++retry)
                BOOST_REQUIRE(co_await node.server.async_wait_for_line(" broker_retry ", 10s));
            auto const log = node.server.output();
            BOOST_TEST(log.find("certificate verify failed") != std::string::npos, log);
            std::size_t warnings = 0;
            for (auto at = log.find(" broker_disconnected "); at != std::string::npos;
                 at = log.find(" broker_disconnected ", at + 1))
                ++warnings;
            BOOST_TEST(warnings == 1u);
            BOOST_TEST(!(co_await healthz(node.port)).connected);
        },
        30s);
}
