#define BOOST_TEST_MODULE cluster
// Three cluster nodes in one process against a real redis-server, without the WebSocket server: one leader
// picks every tick and every node delivers it; a dead leader's lease runs out and the count goes on; a
// leader that stops hands over at once; operator messages reach every node; a stopped, killed or
// restarted Redis is survived, and the tick numbers keep increasing; the deck's round goes on across
// leaders, and a node with another deck never leads while the cluster's deck has a live holder.
#include "cluster/cluster.hpp"
#include "cluster/redis_client.hpp"
#include "common/redis_server.hpp"
#include "common/test_server.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>
#include <map>
#include <set>
#include <variant>

using namespace wolf;
using namespace wolf::test;

namespace {

constexpr duration interval{100};
constexpr duration lease = interval * 3;

/** What one node delivered, and when. */
struct delivery {
    cluster_message message;
    std::chrono::steady_clock::time_point at;
};

/** Every node's deliveries, state changes and ends: what the tests' waits wake on. */
notifier cluster_events;

/** A deck of `size` quotes, "<name> 1" to "<name> <size>". */
std::vector<std::string> deck_of(std::size_t size, std::string const& name = "The pack says") {
    std::vector<std::string> quotes;
    for (std::size_t i = 1; i <= size; ++i)
        quotes.push_back(name + " " + std::to_string(i));
    return quotes;
}

/** One cluster node and what it delivered. */
struct node {
    node(net::any_io_executor executor, std::string const& url, std::string id,
         std::string cluster_prefix = "wolf", std::vector<std::string> quotes = deck_of(5))
        : prefix(cluster_prefix) {
        auto parsed = parse_redis_url(url);
        BOOST_REQUIRE(std::holds_alternative<redis_endpoint>(parsed));
        cluster_options options;
        options.redis = std::get<redis_endpoint>(std::move(parsed));
        options.interval = interval;
        options.node_id = std::move(id);
        options.prefix = std::move(cluster_prefix);
        options.quotes = std::move(quotes);
        member = std::make_unique<cluster>(executor, std::move(options), [this](cluster_message m) {
            // Broadcasts only: what a node learns of the cluster's position when it connects is none.
            if (m.purpose != cluster_message::use::deliver) return;
            got.push_back({std::move(m), std::chrono::steady_clock::now()});
            cluster_events.notify();
        });
        member->on_change([] { cluster_events.notify(); });
        net::co_spawn(executor, member->run(), [this](std::exception_ptr e) {
            finished = true;
            cluster_events.notify();
            if (e) std::rethrow_exception(e);
        });
    }

    std::vector<std::uint64_t> ticks() const {
        std::vector<std::uint64_t> numbers;
        for (auto const& d : got)
            if (d.message.tick) numbers.push_back(*d.message.tick);
        return numbers;
    }
    std::size_t tick_count() const { return ticks().size(); }

    std::string prefix;
    std::vector<delivery> got;
    std::unique_ptr<cluster> member;
    bool finished = false;
};

using nodes = std::vector<std::unique_ptr<node>>;

nodes start_nodes(net::any_io_executor executor, std::string const& url, int count = 3) {
    nodes started;
    for (int i = 0; i < count; ++i)
        started.push_back(std::make_unique<node>(executor, url, "node" + std::to_string(i)));
    return started;
}

/** Stops every node and waits for each run() to end. */
net::awaitable<void> stop_all(nodes& all) {
    for (auto& n : all)
        if (!n->finished) n->member->stop();
    BOOST_REQUIRE(co_await cluster_events.until(
        [&] { return std::all_of(all.begin(), all.end(), [](auto const& n) { return n->finished; }); }, 5s));
}

std::size_t leaders(nodes const& all) {
    return static_cast<std::size_t>(std::count_if(
        all.begin(), all.end(), [](auto const& n) { return !n->finished && n->member->leader(); }));
}

bool all_connected(nodes const& all, bool connected) {
    return std::all_of(all.begin(), all.end(),
                       [&](auto const& n) { return n->member->connected() == connected; });
}

/** Waits until every running node has delivered `more` ticks beyond what it had. */
net::awaitable<bool> ticks_grow(nodes const& all, std::size_t more, std::chrono::milliseconds limit) {
    std::vector<std::size_t> before;
    for (auto const& n : all)
        before.push_back(n->tick_count());
    co_return co_await cluster_events.until(
        [&] {
            for (std::size_t i = 0; i < all.size(); ++i)
                if (!all[i]->finished && all[i]->tick_count() < before[i] + more) return false;
            return true;
        },
        limit);
}

/** Every tick number delivered by more than one node came with the same quote and leader everywhere. */
void check_same_ticks(nodes const& all) {
    std::map<std::uint64_t, cluster_message> seen;
    for (auto const& n : all)
        for (auto const& d : n->got) {
            if (!d.message.tick) continue;
            auto const [it, first] = seen.emplace(*d.message.tick, d.message);
            if (first) continue;
            BOOST_TEST(it->second.text == d.message.text, "tick " << *d.message.tick);
            BOOST_TEST(it->second.from == d.message.from, "tick " << *d.message.tick);
        }
}

/** Each node's tick numbers only increase. */
void check_increasing(nodes const& all) {
    for (auto const& n : all) {
        auto const numbers = n->ticks();
        for (std::size_t i = 1; i < numbers.size(); ++i)
            BOOST_TEST(numbers[i] > numbers[i - 1]);
    }
}

net::awaitable<std::unique_ptr<redis_client>> raw_client(std::string const& url) {
    auto client = std::make_unique<redis_client>(co_await net::this_coro::executor, duration{1000});
    auto const failure = co_await client->connect(std::get<redis_endpoint>(parse_redis_url(url)));
    BOOST_REQUIRE_MESSAGE(failure.empty(), failure);
    co_return client;
}

net::awaitable<redis_result> raw_command(redis_client& client, std::vector<std::string> args) {
    return client.command(std::move(args));
}

} // namespace

BOOST_AUTO_TEST_CASE(one_leader_picks_and_every_node_delivers_the_same_consecutive_ticks) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto all = start_nodes(co_await net::this_coro::executor, redis.url());
        BOOST_REQUIRE(co_await ticks_grow(all, 8, 5s));
        BOOST_TEST(leaders(all) == 1u);
        check_same_ticks(all);
        for (auto const& n : all) {
            auto const numbers = n->ticks();
            for (std::size_t i = 1; i < numbers.size(); ++i)
                BOOST_TEST(numbers[i] == numbers[i - 1] + 1, "consecutive on " << n->member->node_id());
            BOOST_TEST(n->member->connected());
            BOOST_TEST(n->member->last_tick() == numbers.back());
        }
        // One node deals them all.
        auto const& leader =
            **std::find_if(all.begin(), all.end(), [](auto const& n) { return n->member->leader(); });
        for (auto const& d : all.front()->got)
            BOOST_TEST(d.message.from == leader.member->node_id());
        co_await stop_all(all);
    });
}

BOOST_AUTO_TEST_CASE(a_dead_leaders_lease_runs_out_and_the_count_continues) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        // A leader that died right after its tick 41: its lease is still there, nobody renews it.
        auto raw = co_await raw_client(redis.url());
        std::vector<std::string> count{"SET", "wolf:tick", "41"};
        BOOST_REQUIRE((co_await raw_command(*raw, std::move(count))).ok());
        std::vector<std::string> ghost{"SET", "wolf:leader", "ghost", "PX", std::to_string(lease.count())};
        auto const killed = std::chrono::steady_clock::now();
        BOOST_REQUIRE((co_await raw_command(*raw, std::move(ghost))).ok());

        auto all = start_nodes(co_await net::this_coro::executor, redis.url());
        BOOST_REQUIRE(co_await cluster_events.until(
            [&] { return all[0]->tick_count() + all[1]->tick_count() > 0; }, 3s));
        auto const first = std::min_element(all.begin(), all.end(), [](auto const& a, auto const& b) {
            auto const at = [](node const& n) {
                return n.tick_count() ? n.got.front().at : std::chrono::steady_clock::time_point::max();
            };
            return at(*a) < at(*b);
        });
        auto const took = (*first)->got.front().at - killed;
        BOOST_TEST_MESSAGE("first tick after the lease: "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
        BOOST_TEST((took >= lease - 20ms), "nobody takes a live lease");
        BOOST_TEST((took <= lease + 150ms), "the lease is taken as it runs out");
        BOOST_TEST(*(*first)->got.front().message.tick == 42u);
        BOOST_REQUIRE(co_await ticks_grow(all, 3, 3s));
        BOOST_TEST(leaders(all) == 1u);
        check_same_ticks(all);
        co_await stop_all(all);
    });
}

BOOST_AUTO_TEST_CASE(a_leader_that_stops_hands_over_within_an_interval) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto all = start_nodes(co_await net::this_coro::executor, redis.url());
        BOOST_REQUIRE(co_await ticks_grow(all, 3, 5s));
        auto const old =
            std::find_if(all.begin(), all.end(), [](auto const& n) { return n->member->leader(); });
        BOOST_REQUIRE(old != all.end());
        auto& survivor = **std::find_if(all.begin(), all.end(), [&](auto const& n) { return n != *old; });
        auto const last = survivor.ticks().back();
        (*old)->member->stop();
        auto const stopped = std::chrono::steady_clock::now();
        BOOST_REQUIRE(co_await cluster_events.until([&] { return (*old)->finished; }, 2s));
        BOOST_REQUIRE(co_await cluster_events.until([&] { return survivor.ticks().back() > last; }, 2s));
        auto const took = survivor.got.back().at - stopped;
        BOOST_TEST((took < interval * 2 + 50ms), "released, not left to expire");
        BOOST_TEST(survivor.ticks().back() <= last + 2);
        BOOST_REQUIRE(co_await ticks_grow(all, 3, 3s));
        BOOST_TEST(leaders(all) == 1u);
        check_same_ticks(all);
        check_increasing(all);
        co_await stop_all(all);
    });
}

BOOST_AUTO_TEST_CASE(an_operator_message_reaches_every_node_without_a_tick) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto all = start_nodes(co_await net::this_coro::executor, redis.url());
        BOOST_REQUIRE(co_await cluster_events.until([&] { return all_connected(all, true); }, 3s));
        auto& follower =
            **std::find_if(all.begin(), all.end(), [](auto const& n) { return !n->member->leader(); });
        BOOST_TEST(follower.member->try_publish("The pack gathers at moonrise."));
        BOOST_REQUIRE(co_await cluster_events.until(
            [&] {
                return std::all_of(all.begin(), all.end(), [](auto const& n) {
                    return std::any_of(n->got.begin(), n->got.end(),
                                       [](delivery const& d) { return !d.message.tick; });
                });
            },
            2s));
        for (auto const& n : all) {
            auto const published =
                std::find_if(n->got.begin(), n->got.end(), [](delivery const& d) { return !d.message.tick; });
            BOOST_TEST(published->message.text == "The pack gathers at moonrise.");
            BOOST_TEST(published->message.from == follower.member->node_id());
        }
        co_await stop_all(all);
    });
}

BOOST_AUTO_TEST_CASE(a_stopped_redis_is_survived_and_the_ticks_resume_above_the_last) {
    redis_server redis;
    run_coro(
        [&]() -> net::awaitable<void> {
            auto all = start_nodes(co_await net::this_coro::executor, redis.url());
            BOOST_REQUIRE(co_await ticks_grow(all, 3, 5s));
            redis.pause();
            auto const timeout = all.front()->member->timeout();
            BOOST_REQUIRE(co_await cluster_events.until(
                [&] { return all_connected(all, false); },
                std::chrono::duration_cast<std::chrono::milliseconds>(interval + timeout * 2 + 500ms)));
            BOOST_TEST(leaders(all) == 0u);
            BOOST_TEST(!all.front()->member->try_publish("lost"), "nothing is accepted while disconnected");
            std::uint64_t last = 0;
            for (auto const& n : all)
                last = std::max(last, n->ticks().back());
            redis.resume();
            BOOST_REQUIRE(co_await cluster_events.until([&] { return all_connected(all, true); }, 5s));
            BOOST_REQUIRE(co_await ticks_grow(all, 3, 3s));
            BOOST_TEST(leaders(all) == 1u);
            for (auto const& n : all)
                BOOST_TEST(n->ticks().back() > last);
            check_same_ticks(all);
            check_increasing(all);
            co_await stop_all(all);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_redis_restarted_without_its_data_keeps_the_tick_numbers_increasing) {
    redis_server redis;
    run_coro(
        [&]() -> net::awaitable<void> {
            auto all = start_nodes(co_await net::this_coro::executor, redis.url());
            BOOST_REQUIRE(co_await ticks_grow(all, 5, 5s));
            std::uint64_t last = 0;
            for (auto const& n : all)
                last = std::max(last, n->ticks().back());
            redis.kill();
            BOOST_REQUIRE(co_await cluster_events.until([&] { return all_connected(all, false); }, 2s));
            redis.restart(); // empty: wolf:tick starts from nothing
            auto const restarted = std::chrono::steady_clock::now();
            BOOST_REQUIRE(co_await cluster_events.until([&] { return all_connected(all, true); }, 5s));
            BOOST_REQUIRE(co_await ticks_grow(all, 3, 3s));
            auto first = std::chrono::steady_clock::time_point::max();
            for (auto const& n : all)
                for (auto const& d : n->got)
                    if (d.message.tick > last) first = std::min(first, d.at);
            auto const took = std::chrono::duration_cast<std::chrono::milliseconds>(first - restarted);
            BOOST_TEST_MESSAGE("the first tick came " << took.count() << " ms after Redis restarted");
            BOOST_TEST((took <= 2s + interval + 500ms), took.count() << " ms: the backoff is at most 2 s");
            for (auto const& n : all)
                BOOST_TEST(n->ticks().back() > last);
            check_increasing(all);
            co_await stop_all(all);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_node_started_before_redis_connects_when_it_comes) {
    redis_server redis;
    redis.kill();
    run_coro(
        [&]() -> net::awaitable<void> {
            auto all = start_nodes(co_await net::this_coro::executor, redis.url(), 1);
            co_await pause(300ms); // a few refused attempts
            BOOST_TEST(!all.front()->member->connected());
            BOOST_TEST(!all.front()->member->try_publish("too early"));
            redis.restart();
            BOOST_REQUIRE(co_await cluster_events.until([&] { return all_connected(all, true); }, 5s));
            BOOST_REQUIRE(co_await ticks_grow(all, 2, 3s));
            BOOST_TEST(all.front()->member->leader(), "the only node leads");
            co_await stop_all(all);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(clusters_with_different_prefixes_share_one_redis_without_hearing_each_other) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto const executor = co_await net::this_coro::executor;
        nodes all;
        all.push_back(std::make_unique<node>(executor, redis.url(), "red-0", "red"));
        all.push_back(std::make_unique<node>(executor, redis.url(), "red-1", "red"));
        all.push_back(std::make_unique<node>(executor, redis.url(), "blue-0", "blue"));
        BOOST_REQUIRE(co_await ticks_grow(all, 5, 5s));
        BOOST_TEST(leaders(all) == 2u, "one leader per cluster");
        for (auto const& n : all)
            for (auto const& d : n->got)
                BOOST_TEST(d.message.from.starts_with(n->prefix + "-"), n->member->node_id()
                                                                            << " heard " << d.message.from);
        auto client = co_await raw_client(redis.url());
        std::vector<std::string> exists{"EXISTS",      "red:tick", "blue:tick",        "red:leader",
                                        "blue:leader", "red:deck", "blue:deck:quotes", "red:deck:claim"};
        BOOST_TEST((co_await raw_command(*client, std::move(exists))).reply.integer == 7);
        std::vector<std::string> unprefixed{"EXISTS", "wolf:tick", "wolf:leader", "wolf:epoch", "wolf:deck"};
        BOOST_TEST((co_await raw_command(*client, std::move(unprefixed))).reply.integer == 0);
        co_await stop_all(all);
    });
}

BOOST_AUTO_TEST_CASE(the_round_goes_on_across_leader_changes_and_no_quote_repeats_before_all_were_dealt) {
    redis_server redis;
    run_coro(
        [&]() -> net::awaitable<void> {
            auto const executor = co_await net::this_coro::executor;
            auto const quotes = deck_of(20);
            nodes all;
            for (int i = 0; i < 3; ++i)
                all.push_back(std::make_unique<node>(executor, redis.url(), "node" + std::to_string(i),
                                                     "wolf", quotes));
            auto const highest = [&] {
                std::uint64_t top = 0;
                for (auto const& n : all)
                    for (auto const tick : n->ticks())
                        top = std::max(top, tick);
                return top;
            };
            // The lead changes hands twice in the middle of the first round.
            for (std::uint64_t at : {6u, 13u}) {
                BOOST_REQUIRE(co_await cluster_events.until([&] { return highest() >= at; }, 5s));
                auto const leader = std::find_if(all.begin(), all.end(), [](auto const& n) {
                    return !n->finished && n->member->leader();
                });
                BOOST_REQUIRE(leader != all.end());
                (*leader)->member->stop();
                BOOST_REQUIRE(co_await cluster_events.until([&] { return (*leader)->finished; }, 2s));
            }
            BOOST_REQUIRE(co_await cluster_events.until([&] { return highest() >= 41; }, 10s));

            // Every tick as any node delivered it: consecutive numbers from the first.
            std::map<std::uint64_t, cluster_message> dealt;
            for (auto const& n : all)
                for (auto const& d : n->got)
                    if (d.message.tick) dealt.emplace(*d.message.tick, d.message);
            for (std::uint64_t tick = 1; tick <= 40; ++tick)
                BOOST_REQUIRE_MESSAGE(dealt.count(tick), "tick " << tick << " was delivered somewhere");
            std::set<std::string> dealers;
            for (std::uint64_t tick = 1; tick <= 20; ++tick)
                dealers.insert(dealt[tick].from);
            BOOST_TEST(dealers.size() == 3u, "three leaders dealt the first round");
            // Each round of twenty deals every quote once, and the second does not begin with the first's
            // last.
            std::set<std::string> const every(quotes.begin(), quotes.end());
            for (std::uint64_t first : {1u, 21u}) {
                std::set<std::string> round;
                for (auto tick = first; tick < first + 20; ++tick)
                    round.insert(dealt[tick].text);
                BOOST_TEST((round == every), "the round from tick " << first);
            }
            BOOST_TEST(dealt[20].text != dealt[21].text);
            check_same_ticks(all);
            co_await stop_all(all);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_node_with_another_deck_never_leads_until_no_live_node_holds_the_cluster_deck) {
    redis_server redis;
    run_coro(
        [&]() -> net::awaitable<void> {
            auto const executor = co_await net::this_coro::executor;
            nodes all;
            all.push_back(std::make_unique<node>(executor, redis.url(), "a0", "wolf", deck_of(5, "A")));
            all.push_back(std::make_unique<node>(executor, redis.url(), "a1", "wolf", deck_of(5, "A")));
            BOOST_REQUIRE(co_await ticks_grow(all, 2, 5s));
            all.push_back(std::make_unique<node>(executor, redis.url(), "b", "wolf", deck_of(5, "B")));
            auto& odd = *all.back();
            BOOST_REQUIRE(co_await cluster_events.until([&] { return odd.tick_count() >= 6; }, 5s));
            BOOST_TEST(odd.member->status().deck == "mismatch");
            BOOST_TEST(odd.member->status().fingerprint == deck_fingerprint(deck_of(5, "B")));
            BOOST_TEST(all[0]->member->status().deck == "shared");
            BOOST_TEST(!odd.member->leader());
            for (auto const& d : odd.got) {
                BOOST_TEST(d.message.text.starts_with("A "), "the cluster's deck: " << d.message.text);
                BOOST_TEST(d.message.from != "b");
            }

            // The nodes holding deck A go: once their claim runs out (a lease), deck B is the cluster's.
            all[0]->member->stop();
            all[1]->member->stop();
            BOOST_REQUIRE(
                co_await cluster_events.until([&] { return all[0]->finished && all[1]->finished; }, 2s));
            auto const gone = std::chrono::steady_clock::now();
            BOOST_REQUIRE(co_await cluster_events.until(
                [&] { return !odd.got.empty() && odd.got.back().message.text.starts_with("B "); }, 3s));
            BOOST_TEST_MESSAGE(
                "deck B dealt "
                << std::chrono::duration_cast<std::chrono::milliseconds>(odd.got.back().at - gone).count()
                << " ms after the last node with deck A went");
            BOOST_TEST(odd.member->leader());
            BOOST_TEST(odd.member->status().deck == "shared");
            check_increasing(all);
            co_await stop_all(all);
        },
        30s);
}

BOOST_AUTO_TEST_CASE(a_deck_deleted_from_redis_is_stored_again_and_the_ticks_go_on) {
    redis_server redis;
    run_coro([&]() -> net::awaitable<void> {
        auto all = start_nodes(co_await net::this_coro::executor, redis.url());
        BOOST_REQUIRE(co_await ticks_grow(all, 3, 5s));
        auto client = co_await raw_client(redis.url());
        std::vector<std::string> gone{"DEL", "wolf:deck:quotes", "wolf:deck:round"};
        BOOST_REQUIRE((co_await raw_command(*client, std::move(gone))).reply.integer == 2);
        BOOST_REQUIRE(co_await ticks_grow(all, 5, 3s));
        BOOST_TEST(leaders(all) == 1u);
        std::vector<std::string> length{"LLEN", "wolf:deck:quotes"};
        BOOST_TEST((co_await raw_command(*client, std::move(length))).reply.integer == 5);
        check_increasing(all);
        co_await stop_all(all);
    });
}
