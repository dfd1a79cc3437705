#define BOOST_TEST_MODULE registry
#include "broadcaster.hpp"
#include "metrics.hpp"
#include "protocol.hpp"
#include "registry.hpp"
#include "watchdog.hpp"

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

using namespace wolf;
using namespace std::chrono_literals;

namespace {

/** A peer that records what the server would have sent, with a queue bound like a session's. */
class fake_peer final : public peer {
public:
    explicit fake_peer(std::string id, registry* reg = nullptr, std::size_t capacity = 64)
        : peer(std::move(id))
        , registry_(reg)
        , capacity_(capacity) {}

    bool offer(shared_frame const& frame) override {
        if (frames.size() >= capacity_) return false;
        frames.push_back(frame);
        return true;
    }
    void close(std::uint16_t code, std::string_view reason) override {
        closes.push_back({code, std::string(reason)});
        if (registry_) registry_->begin_close(*this);
    }
    void abort() override { ++aborts; }
    bool transport_closing() const noexcept override { return failing; }
    std::optional<steady_clock::time_point> write_pending_since() const noexcept override {
        return write_started;
    }
    void write_began(steady_clock::time_point now) noexcept { write_started = now; }
    void write_ended() noexcept { write_started.reset(); }

    bool failing = false;
    std::optional<steady_clock::time_point> write_started; // a write waits on the socket since then
    std::vector<shared_frame> frames;
    std::vector<std::pair<std::uint16_t, std::string>> closes;
    int aborts = 0;

private:
    registry* registry_;
    std::size_t capacity_;
};

} // namespace

BOOST_AUTO_TEST_SUITE(pools)

BOOST_AUTO_TEST_CASE(a_new_connection_is_open_but_neither_ready_nor_subscribed) {
    registry reg;
    fake_peer a("a");
    reg.add(a);
    BOOST_TEST(reg.connections() == 1u);
    BOOST_TEST(reg.live() == 1u);
    BOOST_TEST(reg.is_open(a));
    BOOST_TEST(!reg.is_ready(a));
    BOOST_TEST(!reg.is_subscribed(a));
    reg.remove(a);
}

BOOST_AUTO_TEST_CASE(connect_subscribe_unsubscribe_change_the_pools_idempotently) {
    registry reg;
    fake_peer a("a");
    reg.add(a);
    BOOST_TEST(reg.mark_ready(a));
    BOOST_TEST(!reg.mark_ready(a));
    BOOST_TEST(reg.ready() == 1u);
    BOOST_TEST(reg.subscribe(a));
    BOOST_TEST(!reg.subscribe(a));
    BOOST_TEST(reg.subscribers() == 1u);
    BOOST_TEST(reg.unsubscribe(a));
    BOOST_TEST(!reg.unsubscribe(a));
    BOOST_TEST(reg.subscribers() == 0u);
    BOOST_TEST(reg.ready() == 1u);
    reg.remove(a);
}

BOOST_AUTO_TEST_CASE(a_closing_connection_leaves_every_pool_but_stays_live) {
    registry reg;
    fake_peer a("a"), b("b");
    reg.add(a);
    reg.add(b);
    reg.mark_ready(a);
    reg.subscribe(a);
    reg.subscribe(b);
    reg.begin_close(a);
    BOOST_TEST(reg.connections() == 1u);
    BOOST_TEST(reg.subscribers() == 1u);
    BOOST_TEST(reg.ready() == 0u);
    BOOST_TEST(reg.live() == 2u);
    BOOST_TEST(!reg.subscribe(a), "a closing connection cannot subscribe");
    BOOST_TEST(!reg.mark_ready(a));
    reg.remove(a);
    BOOST_TEST(reg.live() == 1u);
    BOOST_TEST(reg.subscriber_peers()[0] == &b);
    reg.remove(b);
    BOOST_TEST(reg.live() == 0u);
}

BOOST_AUTO_TEST_CASE(removal_from_the_middle_keeps_the_others) {
    registry reg;
    std::vector<std::unique_ptr<fake_peer>> peers;
    for (int i = 0; i < 100; ++i) {
        peers.push_back(std::make_unique<fake_peer>(std::to_string(i)));
        reg.add(*peers.back());
        reg.subscribe(*peers.back());
    }
    for (int i = 0; i < 100; i += 3)
        reg.remove(*peers[i]);
    BOOST_TEST(reg.subscribers() == 66u);
    for (int i = 0; i < 100; ++i) {
        BOOST_TEST(reg.is_subscribed(*peers[i]) == (i % 3 != 0));
        if (i % 3 != 0) BOOST_TEST(reg.subscriber_peers()[0] != nullptr);
    }
    for (auto* p : reg.subscriber_peers())
        BOOST_TEST(std::stoi(std::string(p->id())) % 3 != 0);
    for (int i = 0; i < 100; ++i)
        if (i % 3 != 0) reg.remove(*peers[i]);
    BOOST_TEST(reg.live() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(fan_out)

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

BOOST_AUTO_TEST_CASE(every_subscriber_gets_the_same_framed_bytes) {
    net::io_context ioc;
    registry reg;
    metrics stats;
    broadcaster bcast(ioc.get_executor(), reg, stats);
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

BOOST_AUTO_TEST_CASE(a_full_queue_drops_for_that_subscriber_only_and_counts) {
    net::io_context ioc;
    registry reg;
    metrics stats;
    broadcaster bcast(ioc.get_executor(), reg, stats);
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

BOOST_AUTO_TEST_CASE(ticks_run_with_nobody_subscribed) {
    net::io_context ioc;
    registry reg;
    metrics stats;
    broadcaster bcast(ioc.get_executor(), reg, stats);
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
    broadcaster bcast(main_context.get_executor(), targets, stats, pools);
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

BOOST_AUTO_TEST_SUITE(sweeps)

BOOST_AUTO_TEST_CASE(only_connections_silent_past_the_timeout_are_closed_with_4000) {
    net::io_context ioc;
    registry reg;
    metrics stats;
    watchdog dog(ioc.get_executor(), reg, stats, 15s, 30s);
    auto const start = steady_clock::now();
    fake_peer silent("silent", &reg), chatty("chatty", &reg), fresh("fresh", &reg);
    for (auto* p : {&silent, &chatty, &fresh}) {
        reg.add(*p);
        p->touch(start);
    }
    reg.subscribe(silent);
    chatty.touch(start + 10s);
    fresh.touch(start + 14s);

    BOOST_TEST(dog.sweep(start + 15s) == 0u, "exactly at the timeout is not yet past it");
    BOOST_TEST(dog.sweep(start + 16s) == 1u);
    BOOST_REQUIRE(silent.closes.size() == 1u);
    BOOST_TEST(silent.closes[0].first == protocol::close_code::ping_timeout);
    BOOST_TEST(silent.closes[0].second == protocol::close_reason::ping_timeout);
    BOOST_TEST(!reg.is_subscribed(silent));
    BOOST_TEST(chatty.closes.empty());
    BOOST_TEST(stats.evictions_for(eviction_reason::ping_timeout) == 1u);

    BOOST_TEST(dog.sweep(start + 16s) == 0u, "a closing connection is not evicted twice");
    BOOST_TEST(dog.sweep(start + 30s) == 2u);
    for (auto* p : {&silent, &chatty, &fresh})
        reg.remove(*p);
}

BOOST_AUTO_TEST_CASE(a_close_the_transport_began_leaves_the_open_set_at_the_next_sweep) {
    net::io_context ioc;
    registry reg;
    metrics stats;
    watchdog dog(ioc.get_executor(), reg, stats, 15s, 30s);
    auto const start = steady_clock::now();
    fake_peer broken("broken", &reg), fine("fine", &reg);
    for (auto* p : {&broken, &fine}) {
        reg.add(*p);
        reg.subscribe(*p);
        p->touch(start);
    }
    broken.failing = true; // e.g. Beast answered invalid UTF-8 with 1007 and waits for the peer
    BOOST_TEST(dog.sweep(start + 1s) == 0u, "not a ping timeout");
    BOOST_TEST(broken.closes.size() == 1u);
    BOOST_TEST(!reg.is_open(broken));
    BOOST_TEST(reg.connections() == 1u);
    BOOST_TEST(reg.subscribers() == 1u);
    BOOST_TEST(fine.closes.empty());
    BOOST_TEST(stats.evictions_for(eviction_reason::ping_timeout) == 0u);
    for (auto* p : {&broken, &fine})
        reg.remove(*p);
}

BOOST_AUTO_TEST_CASE(a_write_stuck_past_the_write_timeout_drops_the_connection) {
    net::io_context ioc;
    registry reg;
    metrics stats;
    watchdog dog(ioc.get_executor(), reg, stats, 15s, 2s);
    auto const start = steady_clock::now();
    fake_peer stuck("stuck", &reg), slow("slow", &reg), idle("idle", &reg);
    for (auto* p : {&stuck, &slow, &idle}) {
        reg.add(*p);
        reg.subscribe(*p);
        p->touch(start + 2s);
    }
    stuck.write_began(start);
    slow.write_began(start + 1s);

    BOOST_TEST(dog.sweep(start + 2s) == 0u, "exactly at the timeout is not yet past it");
    BOOST_TEST(dog.sweep(start + 2s + 1ms) == 1u);
    BOOST_TEST(stuck.aborts == 1, "dropped, no closing handshake behind the stuck write");
    BOOST_TEST(stuck.closes.empty());
    BOOST_TEST(!reg.is_open(stuck));
    BOOST_TEST(!reg.is_subscribed(stuck));
    BOOST_TEST(stats.evictions_for(eviction_reason::write_timeout) == 1u);

    slow.write_ended(); // the write completed: progress
    BOOST_TEST(dog.sweep(start + 10s) == 0u);
    BOOST_TEST(slow.aborts == 0);
    BOOST_TEST(idle.aborts == 0, "no write in flight is never a write timeout");
    BOOST_TEST(reg.connections() == 2u);
    for (auto* p : {&stuck, &slow, &idle})
        reg.remove(*p);
}

BOOST_AUTO_TEST_CASE(the_sweep_period_follows_the_timeout) {
    BOOST_TEST(watchdog::period_for(15s).count() == 1000);
    BOOST_TEST(watchdog::period_for(400ms).count() == 100);
    BOOST_TEST(watchdog::period_for(1ms).count() == 5);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(exposition)

BOOST_AUTO_TEST_CASE(health_and_metrics_read_the_pool_totals) {
    pool_counts pools;
    registry reg(&pools), other(&pools); // two threads' registries
    metrics stats;
    fake_peer a("a"), b("b"), c("c");
    reg.add(a);
    reg.add(b);
    reg.subscribe(b);
    other.add(c);
    other.subscribe(c);
    BOOST_TEST(
        render_health(pools) ==
        R"({"status":"ok","connections":3,"subscribers":2,"broker":"memory","broker_connected":true,"leader":true})");
    stats.count(eviction_reason::rate_limit);
    stats.count(protocol::error_code::id_mismatch);
    auto const text = render_prometheus(stats, pools);
    BOOST_TEST(text.find("\nwolf_connections 3\n") != std::string::npos);
    BOOST_TEST(text.find("\nwolf_subscribers 2\n") != std::string::npos);
    BOOST_TEST(text.find("wolf_evictions_total{reason=\"rate_limit\"} 1\n") != std::string::npos);
    BOOST_TEST(text.find("wolf_evictions_total{reason=\"ping_timeout\"} 0\n") != std::string::npos);
    BOOST_TEST(text.find("wolf_protocol_errors_total{code=\"id_mismatch\"} 1\n") != std::string::npos);
    reg.remove(a);
    reg.remove(b);
    other.remove(c);
    BOOST_TEST(
        render_health(pools) ==
        R"({"status":"ok","connections":0,"subscribers":0,"broker":"memory","broker_connected":true,"leader":true})");
}

BOOST_AUTO_TEST_CASE(health_and_metrics_name_the_broker) {
    pool_counts pools;
    metrics stats;
    BOOST_TEST(render_prometheus(stats, pools).find("\nwolf_broker_info{broker=\"memory\"} 1\n") !=
               std::string::npos);
    broker_status const follower{true, true, false};
    BOOST_TEST(
        render_health(pools, follower) ==
        R"({"status":"ok","connections":0,"subscribers":0,"broker":"redis","broker_connected":true,"leader":false})");
    broker_status const cut_off{true, false, false};
    auto const text = render_prometheus(stats, pools, cut_off);
    BOOST_TEST(text.find("\nwolf_broker_info{broker=\"redis\"} 1\n") != std::string::npos);
    BOOST_TEST(text.find("\nwolf_broker_connected 0\n") != std::string::npos);
    BOOST_TEST(text.find("\nwolf_leader 0\n") != std::string::npos);
}

// Two threads may race for the last place under --max-connections; exactly one gets it.
BOOST_AUTO_TEST_CASE(admission_is_exact_and_a_close_gives_the_place_back) {
    pool_counts pools;
    BOOST_TEST(pools.try_admit(2));
    BOOST_TEST(pools.try_admit(2));
    BOOST_TEST(!pools.try_admit(2), "the limit is full");
    registry reg(&pools);
    fake_peer a("a");
    reg.add(a); // an admitted upgrade completed its handshake
    BOOST_TEST(pools.admitted() == 2u);
    reg.begin_close(a);
    BOOST_TEST(pools.admitted() == 1u, "a closing connection no longer counts");
    BOOST_TEST(pools.try_admit(2));
    reg.remove(a);
    pools.release();
    pools.release();
    BOOST_TEST(pools.admitted() == 0u);

    std::atomic<int> admitted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i)
                if (pools.try_admit(100)) ++admitted;
        });
    for (auto& thread : threads)
        thread.join();
    BOOST_TEST(admitted.load() == 100);
    BOOST_TEST(pools.admitted() == 100u);
}

BOOST_AUTO_TEST_SUITE_END()
