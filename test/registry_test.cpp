#define BOOST_TEST_MODULE registry
// Who is connected: the pools (open, ready, subscribed, live) and the admission against
// --max-connections, exact across threads.
#include "common/fake_peer.hpp"
#include "registry.hpp"

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <thread>
#include <vector>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;

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

BOOST_AUTO_TEST_SUITE(admission)

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
