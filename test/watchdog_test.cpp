#define BOOST_TEST_MODULE watchdog
// One sweep over the open connections: silent ones closed with 4000, stalled writers dropped, closes the
// transport began taken out of the open set.
#include "common/fake_peer.hpp"
#include "metrics.hpp"
#include "protocol.hpp"
#include "registry.hpp"
#include "watchdog.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;

namespace {

/** A shard's watchdog with a ping timeout of 15 s and a write timeout of `write_seconds`, over a registry of
 * fake peers; `start` is when the test's clock begins. */
template <int write_seconds>
struct watched {
    net::io_context ioc;
    registry reg;
    metrics stats;
    watchdog dog{ioc.get_executor(), reg, stats, 15s, std::chrono::seconds(write_seconds)};
    steady_clock::time_point const start = steady_clock::now();
};

} // namespace

BOOST_AUTO_TEST_SUITE(sweeps)

BOOST_FIXTURE_TEST_CASE(only_connections_silent_past_the_timeout_are_closed_with_4000, watched<30>) {
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

BOOST_FIXTURE_TEST_CASE(a_close_the_transport_began_leaves_the_open_set_at_the_next_sweep, watched<30>) {
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

BOOST_FIXTURE_TEST_CASE(a_write_stuck_past_the_write_timeout_drops_the_connection, watched<2>) {
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
