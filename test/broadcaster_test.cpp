#define BOOST_TEST_MODULE broadcaster
// One frame per broadcast, offered to every subscriber of every thread without waiting on any.
#include "broadcaster.hpp"
#include "common/fake_peer.hpp"
#include "metrics.hpp"
#include "protocol.hpp"
#include "registry.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <optional>
#include <thread>
#include <vector>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(fan_out)

namespace {

/** Runs one fan-out of `text` through `bcast` on `ioc` and returns what it did. */
offer_result fan_out(net::io_context& ioc, broadcaster& bcast, std::string text) {
    std::optional<offer_result> result;
    net::co_spawn(ioc, bcast.fan_out({std::move(text)}), [&](std::exception_ptr e, offer_result r) {
        if (e) std::rethrow_exception(e);
        result = r;
    });
    ioc.restart();
    ioc.run();
    BOOST_REQUIRE(result.has_value());
    return *result;
}

/** A single-threaded server's broadcaster: one registry on the broadcaster's own executor. */
struct one_shard {
    net::io_context ioc;
    registry reg;
    metrics stats;
    broadcaster bcast{ioc.get_executor(), reg, stats};
};

} // namespace

BOOST_FIXTURE_TEST_CASE(every_subscriber_gets_the_same_framed_bytes, one_shard) {
    fake_peer a("a"), b("b"), c("c");
    for (auto* p : {&a, &b, &c})
        reg.add(*p);
    reg.subscribe(a);
    reg.subscribe(c);

    BOOST_TEST(fan_out(ioc, bcast, "Волк не выступает в цирке").queued == 2u);
    BOOST_REQUIRE(a.frames.size() == 1u);
    BOOST_REQUIRE(c.frames.size() == 1u);
    BOOST_TEST(b.frames.empty());
    BOOST_TEST(a.frames[0] == c.frames[0], "one shared frame, not a copy each");
    auto const event = boost::json::parse(a.frames[0]->payload()).as_object();
    BOOST_TEST(event.at("type").as_string() == protocol::event::wisdom_distribution);
    BOOST_TEST(event.at("payload").at("message").as_string() == "Волк не выступает в цирке");
    BOOST_TEST(stats.broadcast_ticks_total == 1u);
    BOOST_TEST(stats.wisdom_sent_total == 2u);
    for (auto* p : {&a, &b, &c})
        reg.remove(*p);
}

BOOST_FIXTURE_TEST_CASE(a_full_queue_drops_for_that_subscriber_only_and_counts, one_shard) {
    fake_peer slow("slow", nullptr, 2), fast("fast");
    reg.add(slow);
    reg.add(fast);
    reg.subscribe(slow);
    reg.subscribe(fast);
    for (int i = 0; i < 5; ++i)
        fan_out(ioc, bcast, "tick " + std::to_string(i));
    BOOST_TEST(slow.frames.size() == 2u);
    BOOST_TEST(fast.frames.size() == 5u);
    BOOST_TEST(stats.wisdom_dropped_total == 3u);
    BOOST_TEST(stats.wisdom_sent_total == 7u);
    BOOST_TEST(slow.closes.empty(), "dropping never closes");
    reg.remove(slow);
    reg.remove(fast);
}

BOOST_FIXTURE_TEST_CASE(ticks_run_with_nobody_subscribed, one_shard) {
    BOOST_TEST(fan_out(ioc, bcast, "into the void").queued == 0u);
    BOOST_TEST(stats.broadcast_ticks_total == 1u);
}

// Each thread's registry is offered the frame on that thread, all at once, and the figures add up.
BOOST_AUTO_TEST_CASE(every_thread_offers_the_one_frame_to_its_own_subscribers) {
    net::io_context main_context;
    std::vector<std::unique_ptr<net::io_context>> contexts;
    pool_counts pools;
    std::vector<std::unique_ptr<registry>> registries;
    std::vector<std::unique_ptr<fake_peer>> peers;
    std::vector<fan_out_target> targets;
    for (int t = 0; t < 3; ++t) {
        contexts.push_back(std::make_unique<net::io_context>(1));
        registries.push_back(std::make_unique<registry>(&pools));
        targets.push_back({contexts.back()->get_executor(), registries.back().get()});
        for (int i = 0; i <= t; ++i) { // 1, 2 and 3 subscribers
            peers.push_back(std::make_unique<fake_peer>(std::to_string(t) + "-" + std::to_string(i)));
            registries.back()->add(*peers.back());
            registries.back()->subscribe(*peers.back());
        }
    }
    metrics stats;
    broadcaster bcast(main_context.get_executor(), targets, stats, pools, new_epoch());
    std::vector<std::thread> threads;
    std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
    for (auto& context : contexts) {
        work.push_back(net::make_work_guard(*context));
        threads.emplace_back([&context = *context] { context.run(); });
    }

    BOOST_TEST(fan_out(main_context, bcast, "one for all").queued == 6u);
    work.clear();
    for (auto& thread : threads)
        thread.join();
    BOOST_TEST(stats.wisdom_sent_total == 6u);
    BOOST_TEST(pools.subscribers() == 6u);
    for (auto const& p : peers) {
        BOOST_REQUIRE(p->frames.size() == 1u);
        BOOST_TEST(p->frames[0] == peers.front()->frames[0], "the same frame on every thread");
    }
    for (std::size_t t = 0; t < registries.size(); ++t)
        for (auto* p :
             std::vector<peer*>(registries[t]->live_peers().begin(), registries[t]->live_peers().end()))
            registries[t]->remove(*p);
    BOOST_TEST(pools.live() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
