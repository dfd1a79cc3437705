#define BOOST_TEST_MODULE recovery
// Lossless reconnect on one node (protocol section 10): every broadcast has a position, `initial` gives the
// latest, and a subscribe with `since` gets exactly the broadcasts missed, then the live ones; a gap, a
// foreign epoch, --history 0, operator messages, a malformed since, and recovery while ticks arrive every
// few milliseconds, on one thread and on two.
#include "broadcaster.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <random>
#include <vector>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;

namespace {

/** A received wisdom_distribution: its offset and message. */
struct wisdom {
    std::uint64_t offset = 0;
    std::string message;
};

/** Reads until `count` wisdom_distribution events have arrived; fails on anything else but errors. */
net::awaitable<std::vector<wisdom>> read_wisdoms(ws_client& client, std::size_t count) {
    std::vector<wisdom> got;
    while (got.size() < count) {
        auto const e = co_await client.read_until(event::wisdom_distribution);
        auto const& payload = e.at("payload").as_object();
        got.push_back({payload.at("offset").to_number<std::uint64_t>(), payload_string(e, "message")});
    }
    co_return got;
}

/** A client that has sent `connect`. */
net::awaitable<ws_client> connected_client(server& srv) {
    auto client = co_await ws_client::open(srv.port());
    co_await client.send_event(event::connect);
    co_return client;
}

/** The offsets from `first`, one by one: what an exactly-once, in-order delivery reads. */
std::vector<std::uint64_t> consecutive(std::uint64_t first, std::size_t count) {
    std::vector<std::uint64_t> offsets;
    for (std::size_t i = 0; i < count; ++i)
        offsets.push_back(first + i);
    return offsets;
}

std::vector<std::uint64_t> offsets_of(std::vector<wisdom> const& got) {
    std::vector<std::uint64_t> offsets;
    for (auto const& w : got)
        offsets.push_back(w.offset);
    return offsets;
}

} // namespace

BOOST_AUTO_TEST_CASE(every_broadcast_carries_its_offset_and_initial_the_latest_position) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto first = co_await ws_client::open(srv.port());
        BOOST_TEST(first.initial_position().offset == 0u, "nothing broadcast yet");
        BOOST_TEST(first.initial_position().epoch.size() == 16u);
        co_await first.connect_and_subscribe();
        for (int i = 0; i < 3; ++i)
            co_await publish(srv, "howl " + std::to_string(i));
        auto const got = co_await read_wisdoms(first, 3);
        BOOST_TEST(offsets_of(got) == consecutive(1, 3), boost::test_tools::per_element());
        auto const later = co_await ws_client::open(srv.port());
        BOOST_TEST(later.initial_position().offset == 3u);
        BOOST_TEST(later.initial_position().epoch == first.initial_position().epoch);
    });
}

BOOST_AUTO_TEST_CASE(a_reconnect_within_history_gets_exactly_the_missed_broadcasts_then_live_ones) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto witness = co_await ws_client::open(srv.port());
        co_await witness.connect_and_subscribe();
        auto leaving = co_await ws_client::open(srv.port());
        co_await leaving.connect_and_subscribe();
        co_await publish(srv, "before");
        auto const seen = (co_await read_wisdoms(leaving, 1)).back();
        co_await leaving.close();
        for (int i = 0; i < 5; ++i)
            co_await publish(srv, "while away " + std::to_string(i));
        co_await read_wisdoms(witness, 6); // all six are out

        auto back = co_await connected_client(srv);
        protocol::position const since_1{back.initial_position().epoch,
                                         seen.offset}; // named: GCC 12, PR 99576
        auto const confirmation = co_await back.subscribe_since(since_1);
        BOOST_TEST(confirmation.at("recovered").as_bool());
        BOOST_TEST(confirmation.at("offset").to_number<std::uint64_t>() == seen.offset + 5);
        BOOST_TEST(confirmation.at("epoch").as_string() == back.initial_position().epoch);
        co_await publish(srv, "live");
        auto const got = co_await read_wisdoms(back, 6);
        BOOST_TEST(offsets_of(got) == consecutive(seen.offset + 1, 6), boost::test_tools::per_element());
        BOOST_TEST(got.front().message == "while away 0");
        BOOST_TEST(got.back().message == "live");
        BOOST_TEST(srv.stats().recoveries[0] == 1u);
        BOOST_TEST(srv.stats().resent_total == 5u);
        BOOST_TEST((co_await back.barrier()).empty(), "nothing else: the barrier's error is the next frame");
    });
}

BOOST_AUTO_TEST_CASE(a_gap_older_than_the_history_and_a_foreign_epoch_are_not_recovered) {
    auto cfg = fast_config();
    cfg.history = 3;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto witness = co_await ws_client::open(srv.port());
        co_await witness.connect_and_subscribe();
        for (int i = 0; i < 10; ++i)
            co_await publish(srv, "quote " + std::to_string(i));
        co_await read_wisdoms(witness, 10);

        auto late = co_await connected_client(srv);
        auto const epoch = late.initial_position().epoch;
        protocol::position const since_2{epoch, 2}; // named: GCC 12, PR 99576
        auto const gap = co_await late.subscribe_since(since_2);
        BOOST_TEST(!gap.at("recovered").as_bool(), "3..7 are no longer kept");
        BOOST_TEST(gap.at("offset").to_number<std::uint64_t>() == 10u);
        co_await publish(srv, "live");
        auto const live = co_await read_wisdoms(late, 1);
        BOOST_TEST(live.front().offset == 11u, "live broadcasts follow, nothing replayed");

        auto stranger = co_await connected_client(srv);
        protocol::position const since_3{"another-epoch", 11}; // named: GCC 12, PR 99576
        auto const foreign = co_await stranger.subscribe_since(since_3);
        BOOST_TEST(!foreign.at("recovered").as_bool());
        BOOST_TEST(foreign.at("epoch").as_string() == epoch);

        auto edge = co_await connected_client(srv);
        protocol::position const since_4{epoch, 8}; // named: GCC 12, PR 99576
        auto const kept = co_await edge.subscribe_since(since_4);
        BOOST_TEST(kept.at("recovered").as_bool(), "9, 10 and 11 are the three kept");
        BOOST_TEST(offsets_of(co_await read_wisdoms(edge, 3)) == consecutive(9, 3),
                   boost::test_tools::per_element());
        BOOST_TEST(srv.stats().recoveries[1] == 1u); // gap
        BOOST_TEST(srv.stats().recoveries[2] == 1u); // epoch
    });
}

BOOST_AUTO_TEST_CASE(with_history_0_only_a_client_that_missed_nothing_is_recovered) {
    auto cfg = fast_config();
    cfg.history = 0;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto witness = co_await ws_client::open(srv.port());
        co_await witness.connect_and_subscribe();
        co_await publish(srv, "one");
        co_await publish(srv, "two");
        co_await read_wisdoms(witness, 2);
        auto current = co_await connected_client(srv);
        auto const epoch = current.initial_position().epoch;
        protocol::position const since_5{epoch, 2}; // named: GCC 12, PR 99576
        BOOST_TEST((co_await current.subscribe_since(since_5)).at("recovered").as_bool());
        auto behind = co_await connected_client(srv);
        protocol::position const since_6{epoch, 1}; // named: GCC 12, PR 99576
        BOOST_TEST(!(co_await behind.subscribe_since(since_6)).at("recovered").as_bool());
    });
}

BOOST_AUTO_TEST_CASE(a_subscriber_that_sends_since_again_is_confirmed_and_gets_nothing_twice) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        co_await client.connect_and_subscribe();
        co_await publish(srv, "once");
        co_await read_wisdoms(client, 1);
        protocol::position const since_7{client.initial_position().epoch, 0}; // named: GCC 12, PR 99576
        auto const again = co_await client.subscribe_since(since_7);
        BOOST_TEST(!again.contains("recovered"), "answered like any repeated subscribe");
        BOOST_TEST((co_await client.barrier()).empty(), "nothing replayed");
    });
}

BOOST_AUTO_TEST_CASE(a_client_from_a_node_further_on_is_sent_nothing_it_had_until_it_unsubscribes) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto witness = co_await ws_client::open(srv.port());
        co_await witness.connect_and_subscribe();
        auto client = co_await connected_client(srv);
        protocol::position const ahead{client.initial_position().epoch, 10}; // named: GCC 12, PR 99576
        BOOST_TEST((co_await client.subscribe_since(ahead)).at("recovered").as_bool());
        co_await publish(srv, "had it already");
        co_await read_wisdoms(witness, 1); // offered to both: one thread, one handler
        BOOST_TEST((co_await client.barrier()).empty(), "offset 1 is at or below its since");

        co_await client.send_event(event::unsubscribe);
        co_await client.connect_and_subscribe(); // a plain subscribe: every broadcast from now on
        co_await publish(srv, "owed");
        auto const got = co_await read_wisdoms(client, 1);
        BOOST_TEST(got.front().offset == 2u);
        BOOST_TEST(got.front().message == "owed");
    });
}

namespace {

/**
 * A client leaves after one broadcast, `replayed` broadcasts of a MiB each go out (more than every buffer
 * between a sender and a receiver that does not read holds on loopback: the server's socket up to 4 MiB,
 * the client's about its initial 128 KiB), and it comes back with `since`, reading only the confirmation.
 * Returns it and the offset it stopped at.
 */
net::awaitable<std::pair<ws_client, std::uint64_t>> behind_a_long_replay(server& srv, int replayed) {
    auto leaving = co_await ws_client::open(srv.port());
    co_await leaving.connect_and_subscribe();
    co_await publish(srv, "before");
    auto const seen = (co_await read_wisdoms(leaving, 1)).back().offset;
    co_await leaving.close();
    std::string const big(std::size_t{1} << 20, 'w');
    for (int i = 0; i < replayed; ++i)
        co_await publish(srv, big);
    auto back = co_await connected_client(srv);
    protocol::position const since{back.initial_position().epoch, seen}; // named: GCC 12, PR 99576
    BOOST_REQUIRE((co_await back.subscribe_since(since)).at("recovered").as_bool());
    co_return std::pair{std::move(back), seen};
}

} // namespace

BOOST_AUTO_TEST_CASE(live_broadcasts_behind_a_replay_still_going_out_are_not_dropped) {
    auto cfg = fast_config();
    cfg.max_queue = 1; // without the rule for a replay, the second live broadcast would be dropped
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto [back, seen] = co_await behind_a_long_replay(srv, 40);
        for (int i = 0; i < 10; ++i) {
            auto const text = "live " + std::to_string(i); // named: GCC 12, PR 99576
            co_await publish(srv, text);
        }
        auto const got = co_await read_wisdoms(back, 50);
        BOOST_TEST(offsets_of(got) == consecutive(seen + 1, 50), boost::test_tools::per_element());
        BOOST_TEST(got.back().message == "live 9");
        BOOST_TEST(srv.stats().wisdom_dropped_total == 0u);
    });
}

BOOST_AUTO_TEST_CASE(live_broadcasts_piling_up_behind_a_replay_close_it_as_a_slow_consumer_not_skipped) {
    auto cfg = fast_config();
    cfg.max_queue = 1;
    cfg.history = 40; // the bound: 40 + 1 frames resent and queued
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto [back, seen] = co_await behind_a_long_replay(srv, 40);
        for (int i = 0; i < 60; ++i) {
            auto const text = "live " + std::to_string(i); // named: GCC 12, PR 99576
            co_await publish(srv, text);
        }
        // Whatever it reads before the close follows its since without a gap; then 1008 slow consumer.
        auto const read = co_await back.read_events_until_close();
        std::vector<std::uint64_t> offsets;
        for (auto const& e : read.events)
            if (event_type(e) == event::wisdom_distribution)
                offsets.push_back(e.at("payload").at("offset").to_number<std::uint64_t>());
        BOOST_TEST(read.close.code == protocol::close_code::policy_violation);
        BOOST_TEST(read.close.reason == protocol::close_reason::slow_consumer);
        BOOST_TEST(offsets == consecutive(seen + 1, offsets.size()), boost::test_tools::per_element());
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::slow_consumer) == 1u);
    });
}

BOOST_AUTO_TEST_CASE(a_malformed_since_is_bad_message_and_subscribes_nobody) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await connected_client(srv);
        co_await client.send_text(R"({"type":"subscribe","payload":{"id":")" + client.id() +
                                  R"(","since":{"epoch":"e","offset":-3}}})");
        auto const error = co_await client.read_until(event::error);
        BOOST_TEST(payload_string(error, "code") == "bad_message");
        BOOST_TEST(srv.connections().subscribers() == 0u);
    });
}

BOOST_AUTO_TEST_CASE(operator_messages_are_recovered_like_ticks) {
    auto cfg = fast_config();
    cfg.interval = std::chrono::milliseconds(20);
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        co_await client.connect_and_subscribe();
        auto const seen = (co_await read_wisdoms(client, 1)).back();
        co_await client.close();
        co_await publish(srv, "an operator speaks");
        auto witness = co_await ws_client::open(srv.port());
        co_await witness.connect_and_subscribe();
        co_await read_wisdoms(witness, 2); // a tick after the operator's message: it is recorded

        auto back = co_await connected_client(srv);
        protocol::position const since_8{back.initial_position().epoch,
                                         seen.offset}; // named: GCC 12, PR 99576
        auto const confirmation = co_await back.subscribe_since(since_8);
        BOOST_REQUIRE(confirmation.at("recovered").as_bool());
        auto const missed = confirmation.at("offset").to_number<std::uint64_t>() - seen.offset;
        auto const got = co_await read_wisdoms(back, missed);
        BOOST_TEST(offsets_of(got) == consecutive(seen.offset + 1, missed), boost::test_tools::per_element());
        BOOST_TEST(std::count_if(got.begin(), got.end(),
                                 [](wisdom const& w) { return w.message == "an operator speaks"; }) == 1);
    });
}

namespace {

/**
 * Ticks every 2 ms while clients leave after a random number of broadcasts and come back after a random
 * pause with `since`: each must read every offset after its last one exactly once, in order, across the
 * replay and the live broadcasts that arrive during it. WOLF_RECOVERY_SEED repeats a run.
 */
void recover_while_ticking(std::size_t threads) {
    char const* text = std::getenv("WOLF_RECOVERY_SEED");
    auto const seed =
        text && *text ? static_cast<std::uint32_t>(std::strtoul(text, nullptr, 10)) : std::random_device{}();
    BOOST_TEST_MESSAGE("seed " << seed << " (WOLF_RECOVERY_SEED repeats it), threads " << threads);
    BOOST_TEST_CONTEXT("seed " << seed) {
        auto cfg = fast_config();
        cfg.interval = std::chrono::milliseconds(2);
        cfg.threads = threads;
        run_with_server(
            cfg,
            [seed](server& srv) -> net::awaitable<void> {
                std::mt19937 random(seed);
                for (int round = 0; round < 20; ++round) {
                    auto client = co_await ws_client::open(srv.port());
                    co_await client.connect_and_subscribe();
                    auto const before = co_await read_wisdoms(client, 1 + random() % 5);
                    BOOST_TEST(offsets_of(before) == consecutive(before.front().offset, before.size()),
                               boost::test_tools::per_element());
                    co_await client.close();
                    co_await pause(std::chrono::milliseconds(random() % 60)); // up to ~30 ticks away

                    auto back = co_await connected_client(srv);
                    auto const since = before.back().offset;
                    protocol::position const from{back.initial_position().epoch,
                                                  since}; // named: GCC 12, PR 99576
                    auto const confirmation = co_await back.subscribe_since(from);
                    BOOST_REQUIRE_MESSAGE(confirmation.at("recovered").as_bool(), "round " << round);
                    auto const latest = confirmation.at("offset").to_number<std::uint64_t>();
                    // The missed ones, and as many live ones again.
                    auto const count = static_cast<std::size_t>(2 * (latest - since) + 1);
                    auto const after = co_await read_wisdoms(back, count);
                    BOOST_TEST(offsets_of(after) == consecutive(since + 1, count),
                               "round " << round << boost::test_tools::per_element());
                    co_await back.close();
                }
            },
            60s);
    }
}

} // namespace

BOOST_AUTO_TEST_CASE(recovery_while_ticks_arrive_is_exactly_once_and_in_order_on_one_thread) {
    recover_while_ticking(1);
}

BOOST_AUTO_TEST_CASE(recovery_while_ticks_arrive_is_exactly_once_and_in_order_on_two_threads) {
    recover_while_ticking(2);
}
