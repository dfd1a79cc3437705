#define BOOST_TEST_MODULE redis_client
// The Redis client against a real redis-server: replies of every kind and in order, subscriptions,
// AUTH and SELECT from the URL, and every way a connection ends (refused, stopped, killed, closed), each
// bounded by the timeout and reported once.
#include "cluster/redis_client.hpp"
#include "cluster/redis_url.hpp"
#include "common/redis_server.hpp"
#include "common/test_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>
#include <variant>
#include <vector>

using namespace wolf;
using namespace wolf::test;
using namespace std::string_literals;

namespace {

constexpr duration timeout{500};

redis_endpoint endpoint(std::string const& url) {
    auto parsed = parse_redis_url(url);
    BOOST_REQUIRE_MESSAGE(std::holds_alternative<redis_endpoint>(parsed), url);
    return std::get<redis_endpoint>(std::move(parsed));
}

/** A connected client, or the test fails. */
net::awaitable<std::unique_ptr<redis_client>> connected_client(std::string const& url) {
    auto client = std::make_unique<redis_client>(co_await net::this_coro::executor, timeout);
    auto const failure = co_await client->connect(endpoint(url));
    BOOST_REQUIRE_MESSAGE(failure.empty(), "connect to " << url << ": " << failure);
    co_return client;
}

net::awaitable<redis_reply> run_args(redis_client& client, std::vector<std::string> args) {
    auto result = co_await client.command(std::move(args));
    BOOST_REQUIRE_MESSAGE(result.ok(), result.failure);
    co_return std::move(result.reply);
}

// Not coroutines: the argument list is built outside the co_await expression, where GCC 12 would destroy a
// braced temporary twice (PR 99576).

/** One command that must be answered. */
template <class... Args>
net::awaitable<redis_reply> run(redis_client& client, Args const&... args) {
    return run_args(client, std::vector<std::string>{std::string(args)...});
}

/** One command, answered or not. */
template <class... Args>
net::awaitable<redis_result> try_run(redis_client& client, Args const&... args) {
    return client.command(std::vector<std::string>{std::string(args)...});
}

} // namespace

BOOST_AUTO_TEST_CASE(every_kind_of_reply_is_copied_out) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto client = co_await connected_client(redis.url());
        BOOST_TEST(client->connected());
        auto const binary = "a\0b\r\nc"s;

        auto const ok = co_await run(*client, "SET", "k", binary);
        BOOST_TEST((ok.type == redis_reply::kind::status));
        BOOST_TEST(ok.text == "OK");
        auto const value = co_await run(*client, "GET", "k");
        BOOST_TEST((value.type == redis_reply::kind::string));
        BOOST_TEST(value.text == binary, "binary-safe both ways");
        auto const missing = co_await run(*client, "GET", "missing");
        BOOST_TEST((missing.type == redis_reply::kind::nil));
        auto const number = co_await run(*client, "INCRBY", "n", "41");
        BOOST_TEST((number.type == redis_reply::kind::integer));
        BOOST_TEST(number.integer == 41);
        auto const error = co_await run(*client, "INCR", "k");
        BOOST_TEST((error.type == redis_reply::kind::error), "a Redis error is a reply, not a failure");
        BOOST_TEST(error.text.starts_with("ERR"));
        co_await run(*client, "RPUSH", "list", "x", "y");
        auto const list = co_await run(*client, "LRANGE", "list", "0", "-1");
        BOOST_TEST((list.type == redis_reply::kind::array));
        BOOST_REQUIRE(list.elements.size() == 2u);
        BOOST_TEST(list.elements[1].text == "y");
        client->close();
        BOOST_TEST(!client->connected());
    });
}

BOOST_AUTO_TEST_CASE(pipelined_commands_complete_in_the_order_they_were_sent) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto client = co_await connected_client(redis.url());
        auto const executor = co_await net::this_coro::executor;
        std::vector<long long> replies;
        int done = 0;
        notifier replied;
        for (int i = 0; i < 200; ++i)
            net::co_spawn(
                executor,
                [&]() -> net::awaitable<void> {
                    auto const reply = co_await run(*client, "INCR", "counter");
                    replies.push_back(reply.integer);
                    ++done;
                    replied.notify();
                },
                [](std::exception_ptr e) {
                    if (e) std::rethrow_exception(e);
                });
        BOOST_REQUIRE(co_await replied.until([&] { return done == 200; }, 5s));
        for (std::size_t i = 0; i < replies.size(); ++i)
            BOOST_TEST(replies[i] == static_cast<long long>(i + 1));
    });
}

BOOST_AUTO_TEST_CASE(a_subscriber_receives_every_published_message_in_order) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto publisher = co_await connected_client(redis.url());
        auto subscriber = co_await connected_client(redis.url());
        std::vector<std::pair<std::string, std::string>> received;
        notifier arrived;
        auto const failure =
            co_await subscriber->subscribe("news", [&](std::string channel, std::string payload) {
                received.emplace_back(channel, payload);
                arrived.notify();
            });
        BOOST_REQUIRE_MESSAGE(failure.empty(), failure);

        auto const payload = "Волк\0!"s;
        std::vector<std::string> const texts{"one", "two", payload};
        for (auto const& text : texts) {
            auto const receivers = co_await run(*publisher, "PUBLISH", "news", text);
            BOOST_TEST(receivers.integer == 1);
        }
        co_await run(*publisher, "PUBLISH", "other", "not for us");
        BOOST_REQUIRE(co_await arrived.until([&] { return received.size() >= 3; }, 2s));
        BOOST_TEST(received[0].first == "news");
        BOOST_TEST(received[0].second == "one");
        BOOST_TEST(received[1].second == "two");
        BOOST_TEST(received[2].second == payload);
        co_await run(*publisher, "PING"); // a round trip after "other" was published
        BOOST_TEST(received.size() == 3u);
    });
}

BOOST_AUTO_TEST_CASE(the_password_and_database_come_from_the_url) {
    redis_server redis({"--requirepass", "s3cret/with@signs"});
    run_coro([&]() -> net::awaitable<void> {
        auto const executor = co_await net::this_coro::executor;
        redis_client anonymous(executor, timeout);
        auto const refused = co_await anonymous.connect(endpoint(redis.url()));
        BOOST_TEST(refused.find("NOAUTH") != std::string::npos, refused);
        BOOST_TEST(!anonymous.connected());

        redis_client wrong(executor, timeout);
        auto const denied = co_await wrong.connect(
            endpoint("redis://:nope@127.0.0.1:" + std::to_string(redis.port()) + "/0"));
        BOOST_TEST(denied.starts_with("AUTH: "), denied);

        auto const url = [&](unsigned db) {
            return "redis://:s3cret%2Fwith%40signs@127.0.0.1:" + std::to_string(redis.port()) + "/" +
                   std::to_string(db);
        };
        auto in_db2 = co_await connected_client(url(2));
        co_await run(*in_db2, "SET", "where", "two");
        auto in_db0 = co_await connected_client(url(0));
        auto const absent = co_await run(*in_db0, "GET", "where");
        BOOST_TEST((absent.type == redis_reply::kind::nil));
        BOOST_TEST((co_await run(*in_db2, "GET", "where")).text == "two");
    });
}

// "127.1" is not an address to make_address (inet_pton) but getaddrinfo reads it as 127.0.0.1 without
// /etc/hosts, so it always takes the resolver's path; "localhost" too where the machine knows the name (a
// minimal Debian root has no /etc/hosts).
namespace {
bool resolves(std::string const& host) {
    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto const results = resolver.resolve(host, "0", ec);
    return !ec && !results.empty();
}
} // namespace

BOOST_AUTO_TEST_CASE(a_host_name_is_resolved_without_blocking) {
    redis_server redis;
    std::vector<std::string> names{"127.1"};
    if (resolves("localhost"))
        names.push_back("localhost");
    else
        BOOST_TEST_MESSAGE("localhost does not resolve here: only 127.1 goes through the resolver");
    boost::system::error_code ec;
    net::ip::make_address("127.1", ec);
    BOOST_TEST(ec.failed(), "127.1 must not be an address literal to Asio");
    run_coro([&]() -> net::awaitable<void> {
        for (auto const& name : names) {
            auto client = co_await connected_client("redis://" + name + ":" + std::to_string(redis.port()));
            BOOST_TEST((co_await run(*client, "PING")).text == "PONG", name);
        }

        redis_client unknown(co_await net::this_coro::executor, timeout);
        auto const failure = co_await unknown.connect(endpoint("redis://no-such-host.invalid:6379"));
        BOOST_TEST(!failure.empty());
    });
}

BOOST_AUTO_TEST_CASE(a_refused_connection_fails_at_once) {
    auto const port = free_port();
    run_coro([&]() -> net::awaitable<void> {
        redis_client client(co_await net::this_coro::executor, timeout);
        auto const started = std::chrono::steady_clock::now();
        auto const failure = co_await client.connect(endpoint("redis://127.0.0.1:" + std::to_string(port)));
        BOOST_TEST(failure.find("refused") != std::string::npos, failure);
        BOOST_TEST((std::chrono::steady_clock::now() - started < timeout));
        auto const result = co_await try_run(client, "PING");
        BOOST_TEST(!result.ok(), "no command on a client that never connected");
    });
}

BOOST_AUTO_TEST_CASE(a_stopped_redis_times_out_commands_and_connects_and_the_loss_is_reported_once) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto client = co_await connected_client(redis.url());
        std::vector<std::string> losses;
        notifier lost;
        client->on_lost([&](std::string why) {
            losses.push_back(why);
            lost.notify();
        });

        redis.pause();
        auto const started = std::chrono::steady_clock::now();
        auto const result = co_await try_run(*client, "PING");
        auto const waited = std::chrono::steady_clock::now() - started;
        BOOST_TEST(!result.ok());
        BOOST_TEST(result.failure == "PING timed out after 500ms", result.failure);
        BOOST_TEST((waited >= timeout));
        BOOST_TEST((waited < timeout + 400ms));
        BOOST_TEST(!client->connected());
        BOOST_REQUIRE(co_await lost.until([&] { return !losses.empty(); }, 1s));
        BOOST_TEST(losses.front() == result.failure);

        // TCP still connects to a stopped process (the kernel accepts); Redis's answer never comes.
        redis_client late(co_await net::this_coro::executor, timeout);
        auto const failure = co_await late.connect(endpoint(redis.url()));
        BOOST_TEST(failure.find("timed out") != std::string::npos, failure);

        redis.resume();
        auto again = co_await connected_client(redis.url());
        BOOST_TEST((co_await run(*again, "PING")).text == "PONG");
        BOOST_TEST(losses.size() == 1u);
    });
}

BOOST_AUTO_TEST_CASE(a_killed_redis_ends_commands_and_subscriptions_at_once) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto commands = co_await connected_client(redis.url());
        auto subscriber = co_await connected_client(redis.url());
        BOOST_REQUIRE((co_await subscriber->subscribe("news", [](std::string, std::string) {})).empty());
        std::vector<std::string> losses;
        notifier lost;
        commands->on_lost([&](std::string why) {
            losses.push_back("commands: " + why);
            lost.notify();
        });
        subscriber->on_lost([&](std::string why) {
            losses.push_back("subscriber: " + why);
            lost.notify();
        });

        redis.kill();
        BOOST_REQUIRE(co_await lost.until([&] { return losses.size() == 2; }, timeout));
        BOOST_TEST(!commands->connected());
        BOOST_TEST(!subscriber->connected());
        auto const result = co_await try_run(*commands, "PING");
        BOOST_TEST(!result.ok());
        BOOST_TEST_MESSAGE(losses[0] << "; " << losses[1]);
    });
}

BOOST_AUTO_TEST_CASE(close_fails_what_is_pending_and_reports_nothing) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto client = co_await connected_client(redis.url());
        bool lost = false;
        client->on_lost([&](std::string) { lost = true; });
        redis.pause();
        std::optional<redis_result> pending;
        notifier answered;
        net::co_spawn(
            co_await net::this_coro::executor,
            [&]() -> net::awaitable<void> {
                pending = co_await try_run(*client, "PING");
                answered.notify();
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
        co_await pause(50ms); // the PING is on its way
        client->close();
        BOOST_REQUIRE(co_await answered.until([&] { return pending.has_value(); }, 100ms));
        BOOST_TEST(pending->failure == "closed");
        redis.resume();
        co_await pause(100ms); // a loss would be posted by now
        BOOST_TEST(!lost);
    });
}
