#define BOOST_TEST_MODULE cluster_nodes
// Three real wolf-wisdom nodes sharing one broadcast through a real redis-server, one WebSocket subscriber
// on each: every node delivers the same quote with the same tick number, exactly one node leads, an
// operator's message reaches all three; when the leader is killed another node ticks on within three
// intervals and the numbers keep increasing; when Redis stops, clients stay connected, /healthz says so,
// and the ticks resume when it returns; a node started with other quotes says so and never leads.
#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/cluster_run.hpp"
#include "common/redis_server.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"

#include <algorithm>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;

namespace {

constexpr auto interval = 250ms;
constexpr auto lease = 3 * interval;
constexpr std::string_view admin_token = "cluster-nodes-test-token";

/** A wolf-wisdom node's arguments here: short intervals. */
std::vector<std::string> node_args() {
    return {"--interval", "250ms", "--ping-timeout", "1m", "--admin-token", std::string(admin_token)};
}

} // namespace

BOOST_AUTO_TEST_CASE(every_node_delivers_the_same_quote_with_the_same_tick_number) {
    redis_server redis;
    cluster_run cluster(redis.url(), node_args());
    std::size_t leader = 0;
    cluster.with_subscribers(6, [&]() -> net::awaitable<void> {
        cluster.check_same_consecutive_ticks();
        // The three saw the same ticks once all were subscribed.
        auto const common = std::max({cluster.feed_of(0).ticks().front(), cluster.feed_of(1).ticks().front(),
                                      cluster.feed_of(2).ticks().front()});
        for (std::size_t i = 0; i < cluster.size(); ++i) {
            auto const numbers = cluster.feed_of(i).ticks();
            BOOST_TEST(std::count(numbers.begin(), numbers.end(), common) == 1, "node " << i);
        }

        auto const states = co_await cluster.all_health();
        BOOST_TEST(std::count_if(states.begin(), states.end(), [](health const& h) { return h.leader; }) ==
                   1);
        for (auto const& h : states) {
            BOOST_TEST(h.broker == "redis");
            BOOST_TEST(h.connected);
            BOOST_TEST(h.connections == 1);
        }
        double leaders = 0;
        for (std::size_t i = 0; i < cluster.size(); ++i) {
            auto const samples = co_await scrape_metrics(cluster.at(i).port);
            leaders += metric(samples, "wolf_leader");
            BOOST_TEST(metric(samples, "wolf_broker_connected") == 1);
            BOOST_TEST(metric(samples, "wolf_broker_info{broker=\"redis\"}") == 1);
        }
        BOOST_TEST(leaders == 1);

        // An operator's message, posted to one node, reaches the subscribers of all three.
        // Named, not braced temporaries inside co_await: GCC 12 destroys those twice (PR 99576).
        header_list const bearer{{http::field::authorization, "Bearer " + std::string(admin_token)}};
        std::string const body = R"({"message":"The pack gathers at moonrise."})";
        auto const posted =
            co_await http_request(cluster.at(1).port, http::verb::post, "/api/wisdom", body, bearer);
        BOOST_TEST(posted.result_int() == 202u, posted.body());
        auto const got_it = [&](std::size_t i) {
            auto const& got = cluster.feed_of(i).got;
            return std::any_of(got.begin(), got.end(), [](wisdom const& w) {
                return w.tick == 0 && w.message == "The pack gathers at moonrise.";
            });
        };
        BOOST_TEST(co_await cluster.until([&] { return got_it(0) && got_it(1) && got_it(2); }, 2s));
        leader = co_await cluster.leader_index();
    });

    // A graceful stop: every node exits 0 (under ASan, with nothing leaked), the leader giving its lease up.
    cluster.terminate_all();
    BOOST_TEST(cluster.logged(leader, " leader_released "), cluster.tails());
}

BOOST_AUTO_TEST_CASE(killing_the_leader_hands_the_ticks_to_another_node_within_three_intervals) {
    redis_server redis;
    cluster_run cluster(redis.url(), node_args());
    cluster.with_subscribers(3, [&]() -> net::awaitable<void> {
        auto const leader = co_await cluster.leader_index();
        auto const last = cluster.highest_tick();

        cluster.kill(leader);
        auto const killed = std::chrono::steady_clock::now();
        auto const survivor = (leader + 1) % cluster.size();
        BOOST_REQUIRE_MESSAGE(
            co_await cluster.until([&] { return cluster.feed_of(survivor).last_tick() > last; }, lease + 2s),
            cluster.tails());
        auto const& resumed =
            *std::find_if(cluster.feed_of(survivor).got.begin(), cluster.feed_of(survivor).got.end(),
                          [&](wisdom const& w) { return w.tick > last; });
        auto const took = std::chrono::duration_cast<std::chrono::milliseconds>(resumed.at - killed);
        BOOST_TEST_MESSAGE("tick " << resumed.tick << " came " << took.count()
                                   << " ms after the leader died");
        // The lease was renewed at most one interval before the kill and runs three: a new leader ticks
        // as it runs out.
        BOOST_TEST((took <= lease + 150ms), took.count() << " ms");
        BOOST_TEST(resumed.tick <= last + 2, "numbers continue where the dead leader stopped");

        BOOST_REQUIRE(co_await cluster.ticks_grow(3, 3s));
        auto const next_leader = co_await cluster.leader_index();
        BOOST_TEST(next_leader != leader);
        cluster.check_same_consecutive_ticks();
        BOOST_TEST(cluster.feed_of(leader).closed, "the dead node's client saw its connection end");
        for (std::size_t i = 0; i < cluster.size(); ++i)
            if (i != leader) BOOST_TEST(!cluster.feed_of(i).closed, "node " << i);
    });
}

BOOST_AUTO_TEST_CASE(a_redis_outage_keeps_clients_connected_and_the_ticks_resume_after) {
    redis_server redis;
    cluster_run cluster(redis.url(), node_args());
    cluster.with_subscribers(3, [&]() -> net::awaitable<void> {
        redis.pause();
        // A node notices at its next command: within an interval plus the Redis timeout (500 ms here).
        BOOST_REQUIRE_MESSAGE(co_await cluster.broker_event("broker_disconnected", 3s), cluster.tails());
        BOOST_REQUIRE_MESSAGE(
            co_await cluster.health_is([](health const& h) { return !h.connected && !h.leader; }),
            cluster.tails());
        auto const last = cluster.highest_tick();
        std::vector<std::size_t> during;
        for (std::size_t i = 0; i < cluster.size(); ++i)
            during.push_back(cluster.feed_of(i).got.size());
        co_await pause(interval * 3); // an outage of several intervals
        for (std::size_t i = 0; i < cluster.size(); ++i) {
            BOOST_TEST(cluster.feed_of(i).got.size() == during[i], "nothing is delivered during the outage");
            BOOST_TEST(!cluster.feed_of(i).closed, "node " << i << "'s client stays connected");
        }
        for (auto const& h : co_await cluster.all_health())
            BOOST_TEST(h.connections == 1);

        redis.resume();
        auto const resumed = std::chrono::steady_clock::now();
        BOOST_REQUIRE_MESSAGE(co_await cluster.broker_event("broker_connected", 5s), cluster.tails());
        BOOST_REQUIRE_MESSAGE(co_await cluster.health_is([](health const& h) { return h.connected; }),
                              cluster.tails());
        BOOST_REQUIRE_MESSAGE(co_await cluster.ticks_grow(3, 3s), cluster.tails());
        for (std::size_t i = 0; i < cluster.size(); ++i) {
            BOOST_TEST(!cluster.feed_of(i).closed);
            auto const numbers = cluster.feed_of(i).ticks();
            BOOST_TEST(std::is_sorted(numbers.begin(), numbers.end()));
            BOOST_TEST(numbers.back() > last);
        }
        // The first tick after Redis came back: the nodes retry with a backoff of at most 2 s.
        auto first = std::chrono::steady_clock::time_point::max();
        for (std::size_t i = 0; i < cluster.size(); ++i)
            for (auto const& w : cluster.feed_of(i).got)
                if (w.tick > last) first = std::min(first, w.at);
        auto const took = std::chrono::duration_cast<std::chrono::milliseconds>(first - resumed);
        BOOST_TEST_MESSAGE("the first tick came " << took.count() << " ms after Redis was back");
        BOOST_TEST((took <= 2s + interval + 500ms), took.count() << " ms");
        (void)co_await cluster.leader_index(); // exactly one again
        // After the outage too, a tick number carries the same quote on every node that delivered it (a
        // node still reconnecting may miss the first ones: those are skipped, not replayed).
        cluster.check_same_quote_per_tick(last);
    });
}

BOOST_AUTO_TEST_CASE(
    a_node_started_with_other_quotes_says_so_in_its_log_healthz_and_metrics_and_never_leads) {
    redis_server redis;
    cluster_run cluster(redis.url(), node_args(), 2);
    struct removed_at_end {
        std::filesystem::path path;
        ~removed_at_end() { std::filesystem::remove(path); }
    } const file{std::filesystem::temp_directory_path() /
                 ("wolf-other-deck-" + std::to_string(::getpid()) + ".txt")};
    auto const& quotes = file.path;
    std::ofstream(quotes) << "A deck of its own.\nAnd another quote.\n";
    cluster.with_subscribers(2, [&]() -> net::awaitable<void> {
        auto args = node_args();
        args.insert(args.end(), {"--quotes", quotes.string()});
        cluster_node odd(WOLF_BINARY, redis.url(), args);
        auto const warned = co_await odd.server.async_wait_for_line(" deck_mismatch ", 5s);
        BOOST_REQUIRE_MESSAGE(warned, odd.server.tail());

        auto const theirs = co_await healthz(cluster.at(0).port);
        auto const mine = co_await healthz(odd.port);
        BOOST_TEST(theirs.deck == "shared");
        BOOST_TEST(mine.deck == "mismatch");
        BOOST_TEST(mine.deck_fingerprint != theirs.deck_fingerprint);
        BOOST_TEST(logged_field(warned->text, "fingerprint").value_or("") == mine.deck_fingerprint);
        BOOST_TEST(logged_field(warned->text, "cluster").value_or("") == theirs.deck_fingerprint);
        BOOST_TEST(metric(co_await scrape_metrics(odd.port), "wolf_deck_mismatch") == 1);
        BOOST_TEST(metric(co_await scrape_metrics(cluster.at(0).port), "wolf_deck_mismatch") == 0);

        // Several lease attempts later it has still not led, nor been counted a leader.
        BOOST_REQUIRE(co_await cluster.ticks_grow(4, 3s));
        BOOST_TEST(!(co_await healthz(odd.port)).leader);
        auto const lines = odd.server.lines();
        BOOST_TEST(std::none_of(lines.begin(), lines.end(),
                                [](output_line const& line) {
                                    return line.text.find(" leader_acquired ") != std::string::npos;
                                }),
                   odd.server.tail());
        odd.server.send_signal(SIGTERM);
        BOOST_TEST(odd.server.wait(10s).value_or(-1) == 0, odd.server.tail());
    });
}
