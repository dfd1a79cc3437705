#define BOOST_TEST_MODULE cluster_recovery
// Lossless reconnect across a cluster (protocol section 10): real wolf-wisdom nodes and a real
// redis-server. A client recovers on another node than the one it left, also after that node was SIGKILLed
// and after a leader change; a Redis restarted empty makes a new epoch; a node cut off from Redis while the
// leader goes on delivers what its subscribers missed, in order and once, as soon as it is back.
#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/redis_server.hpp"
#include "common/tcp_proxy.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <memory>
#include <vector>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;

namespace {

constexpr auto interval = 200ms;

/** A node with short intervals. */
std::unique_ptr<cluster_node> start_node(std::string const& redis_url) {
    return std::make_unique<cluster_node>(
        WOLF_BINARY, redis_url, std::vector<std::string>{"--interval", "200ms", "--ping-timeout", "1m"});
}

/** Reads `count` wisdom_distribution events; returns their offsets. */
net::awaitable<std::vector<std::uint64_t>> read_offsets(ws_client& client, std::size_t count) {
    return read_wisdom_numbers(client, "offset", count);
}

/** Every offset after `since`, one by one, `count` of them. */
std::vector<std::uint64_t> after(std::uint64_t since, std::size_t count) {
    std::vector<std::uint64_t> offsets;
    for (std::size_t i = 1; i <= count; ++i)
        offsets.push_back(since + i);
    return offsets;
}

/** Returns once a new subscriber on `port` has received `count` broadcasts: the cluster went on. */
net::awaitable<void> witness_broadcasts(std::uint16_t port, std::size_t count) {
    auto witness = co_await ws_client::open(port);
    co_await witness.connect_and_subscribe();
    co_await read_offsets(witness, count);
}

/** The node that leads, by /healthz; fails unless exactly one does. */
net::awaitable<std::size_t> leader_of(std::vector<std::unique_ptr<cluster_node>> const& nodes) {
    std::vector<std::size_t> leaders;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (nodes[i] && (co_await healthz(nodes[i]->port)).leader) leaders.push_back(i);
    BOOST_REQUIRE_EQUAL(leaders.size(), 1u);
    co_return leaders.front();
}

/** A client subscribed on `port` that has received `count` broadcasts; returns it and the last offset. */
net::awaitable<std::pair<ws_client, protocol::position>> subscriber_on(std::uint16_t port,
                                                                       std::size_t count) {
    auto client = co_await ws_client::open(port);
    co_await client.connect_and_subscribe();
    auto const offsets = co_await read_offsets(client, count);
    BOOST_TEST(offsets == after(offsets.front() - 1, count), boost::test_tools::per_element());
    // The epoch of those offsets: a node that had not yet heard from Redis when the client connected sent
    // none in `initial`; once broadcasts arrive, it knows it.
    auto const probe = co_await ws_client::open(port);
    auto position = probe.initial_position();
    BOOST_REQUIRE(!position.epoch.empty());
    position.offset = offsets.back();
    co_return std::pair{std::move(client), position};
}

/**
 * The client that stopped at `since` subscribes on `port` with it: it must be recovered and read every offset
 * after it, the missed ones and then live ones, `more` beyond the latest, exactly once and in order.
 */
net::awaitable<void> recover_on(std::uint16_t port, protocol::position const& since, std::size_t more = 3) {
    auto back = co_await ws_client::open(port);
    co_await back.send_event(event::connect);
    BOOST_TEST(back.initial_position().epoch == since.epoch, "one epoch for the whole cluster");
    auto const confirmation = co_await back.subscribe_since(since);
    BOOST_REQUIRE(confirmation.at("recovered").as_bool());
    auto const latest = confirmation.at("offset").to_number<std::uint64_t>();
    auto const count = static_cast<std::size_t>(latest > since.offset ? latest - since.offset : 0) + more;
    BOOST_TEST_MESSAGE("recovering " << (latest - since.offset) << " broadcasts after " << since.offset);
    BOOST_TEST(co_await read_offsets(back, count) == after(since.offset, count),
               boost::test_tools::per_element());
}

} // namespace

BOOST_AUTO_TEST_CASE(a_client_moves_from_one_node_to_another_and_recovers) {
    redis_server redis;
    auto a = start_node(redis.url());
    auto b = start_node(redis.url());
    run_coro(
        [&]() -> net::awaitable<void> {
            auto [client, since] = co_await subscriber_on(a->port, 2);
            co_await client.close();
            co_await witness_broadcasts(b->port, 4); // the cluster went on while the client was away
            co_await recover_on(b->port, since);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_client_recovers_on_another_node_after_its_own_was_killed) {
    redis_server redis;
    auto a = start_node(redis.url());
    auto b = start_node(redis.url());
    run_coro(
        [&]() -> net::awaitable<void> {
            auto [client, since] = co_await subscriber_on(a->port, 2);
            a->server.send_signal(SIGKILL);
            BOOST_REQUIRE(a->server.wait(5s));
            co_await witness_broadcasts(b->port, 4);
            co_await recover_on(b->port, since);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_client_recovers_across_a_leader_change) {
    redis_server redis;
    std::vector<std::unique_ptr<cluster_node>> nodes;
    for (int i = 0; i < 3; ++i)
        nodes.push_back(start_node(redis.url()));
    run_coro(
        [&]() -> net::awaitable<void> {
            // Once a broadcast has gone out, one node leads.
            co_await witness_broadcasts(nodes[0]->port, 1);
            auto const leader = co_await leader_of(nodes);
            auto const home = (leader + 1) % nodes.size();
            auto const other = (leader + 2) % nodes.size();
            auto [client, since] = co_await subscriber_on(nodes[home]->port, 2);
            co_await client.close();
            nodes[leader]->server.send_signal(SIGKILL);
            BOOST_REQUIRE(nodes[leader]->server.wait(5s));
            nodes[leader].reset();
            co_await witness_broadcasts(nodes[other]->port, 3); // the new leader ticks
            BOOST_TEST(co_await leader_of(nodes) != leader);
            co_await recover_on(nodes[other]->port, since);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_redis_restarted_empty_makes_a_new_epoch_and_clients_learn_it) {
    redis_server redis;
    auto a = start_node(redis.url());
    run_coro(
        [&]() -> net::awaitable<void> {
            auto [client, since] = co_await subscriber_on(a->port, 2);
            co_await client.close();
            redis.kill();
            redis.restart();
            // Reconnected, the node's first broadcasts are of a new epoch: offsets from 1 again.
            BOOST_REQUIRE(co_await a->server.async_wait_for_line(" broker_disconnected ", 5s));
            BOOST_REQUIRE(co_await a->server.async_wait_for_line(" broker_connected ", 10s));
            co_await witness_broadcasts(a->port, 2);
            auto back = co_await ws_client::open(a->port);
            co_await back.send_event(event::connect);
            BOOST_TEST(back.initial_position().epoch != since.epoch);
            auto const confirmation = co_await back.subscribe_since(since);
            BOOST_TEST(!confirmation.at("recovered").as_bool());
            BOOST_TEST(confirmation.at("epoch").as_string() == back.initial_position().epoch);
            auto const live = co_await read_offsets(back, 1);
            BOOST_TEST(live.front() > confirmation.at("offset").to_number<std::uint64_t>());
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_node_cut_off_from_redis_delivers_what_its_subscribers_missed_once_back) {
    redis_server redis;
    auto leader = start_node(redis.url());
    tcp_proxy link(redis.port());
    std::unique_ptr<cluster_node> follower;
    run_coro(
        [&]() -> net::awaitable<void> {
            // The first node leads (it was alone); the follower reaches Redis through the proxy.
            BOOST_REQUIRE(co_await leader->server.async_wait_for_line(" leader_acquired ", 5s));
            BOOST_REQUIRE((co_await healthz(leader->port)).leader);
            follower = start_node("redis://127.0.0.1:" + std::to_string(link.port()));
            auto [client, since] = co_await subscriber_on(follower->port, 2);
            link.cut();
            BOOST_REQUIRE(co_await follower->server.async_wait_for_line(" broker_disconnected ", 5s));
            co_await witness_broadcasts(leader->port, 5); // the leader went on
            link.restore();
            BOOST_REQUIRE(co_await follower->server.async_wait_for_line(" broker_caught_up ", 10s));
            // The subscriber never left: after its last offset, every one once and in order, the missed
            // ones first.
            auto const got = co_await read_offsets(client, 8);
            BOOST_TEST(got == after(since.offset, 8), boost::test_tools::per_element());
        },
        40s);
}
