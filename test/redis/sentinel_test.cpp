#define BOOST_TEST_MODULE sentinel
// Redis Sentinel with real processes on 127.0.0.1: a master, a replica and three sentinels (Debian's
// redis-server --sentinel, down-after-milliseconds 1000), and three wolf-wisdom nodes given a
// redis+sentinel:// URL with a subscriber on each. The nodes talk to the master the sentinels name; when
// the master is SIGKILLed, every node follows the promoted replica by itself and delivers again within 5 s
// of the kill, no client is disconnected, exactly one node leads and the tick numbers and offsets keep
// increasing; when the old master comes back it rejoins as a replica (or the sentinels fail over once more,
// back to it, and the nodes follow that too) and nothing changes for clients. A
// dead sentinel changes nothing either: the nodes watch the next one. A node pointed at a replica never
// writes to it.
#include "common/cluster_run.hpp"
#include "common/redis_server.hpp"

#include <boost/test/unit_test.hpp>
#include <string_view>

using namespace wolf;
using namespace wolf::test;

namespace {

/** A master, its replica and three sentinels that know both and each other. */
struct sentinel_setup {
    redis_server master;
    redis_server replica{{"--replicaof", "127.0.0.1", std::to_string(master.port())}};
    std::vector<std::unique_ptr<redis_sentinel>> sentinels;

    sentinel_setup() {
        BOOST_REQUIRE_MESSAGE(replica.process().wait_for_line("sync: Finished with success", 10s),
                              replica.tail());
        for (int i = 0; i < 3; ++i)
            sentinels.push_back(std::make_unique<redis_sentinel>(master.port()));
        // Before anything fails, every sentinel knows the replica (from the master's INFO) and the two others
        // (from their hellos), so a failover can be agreed on at once.
        auto const replica_line = "+slave slave 127.0.0.1:" + std::to_string(replica.port());
        for (auto& sentinel : sentinels) {
            BOOST_REQUIRE_MESSAGE(sentinel->process().wait_for_line(replica_line, 15s),
                                  sentinel->process().tail());
            for (int other = 0; other < 2; ++other)
                BOOST_REQUIRE_MESSAGE(sentinel->process().wait_for_line("+sentinel sentinel ", 15s),
                                      sentinel->process().tail());
        }
    }

    std::string url() const {
        std::string text = "redis+sentinel://";
        for (std::size_t i = 0; i < sentinels.size(); ++i)
            text += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(sentinels[i]->port());
        return text + "/mymaster";
    }
};

std::vector<std::string> node_args() {
    return {"--interval", "200ms", "--ping-timeout", "1m"};
}

std::string local(std::uint16_t port) {
    return "127.0.0.1:" + std::to_string(port);
}

/**
 * Each feed's tick numbers and offsets only go up; offsets may start again `new_epochs` times (a master
 * promoted before it had synced holds no epoch, so the cluster begins a new one, as after an empty restart).
 */
void check_increasing(cluster_run const& cluster, std::size_t new_epochs = 0) {
    for (std::size_t i = 0; i < cluster.size(); ++i) {
        auto const& got = cluster.feed_of(i).got;
        std::size_t restarts = 0;
        for (std::size_t k = 1; k < got.size(); ++k) {
            if (got[k].offset <= got[k - 1].offset && restarts < new_epochs) {
                ++restarts;
                BOOST_TEST_MESSAGE("node " << i << ": a new epoch after offset " << got[k - 1].offset);
            } else {
                BOOST_TEST(got[k].offset > got[k - 1].offset,
                           "node " << i << " after offset " << got[k - 1].offset);
            }
            if (got[k].tick && got[k - 1].tick)
                BOOST_TEST(got[k].tick > got[k - 1].tick, "node " << i << " after tick " << got[k - 1].tick);
        }
    }
}

bool none_closed(cluster_run const& cluster) {
    for (std::size_t i = 0; i < cluster.size(); ++i)
        if (cluster.feed_of(i).closed) return false;
    return true;
}

} // namespace

BOOST_AUTO_TEST_CASE(
    the_nodes_follow_a_failover_to_the_promoted_replica_and_ignore_the_old_master_coming_back) {
    sentinel_setup redis;
    cluster_run cluster(redis.url(), node_args());
    cluster.with_subscribers(
        3,
        [&]() -> net::awaitable<void> {
            for (auto const& h : co_await cluster.all_health()) {
                BOOST_TEST(h.master == local(redis.master.port()));
                BOOST_TEST(h.role == "master");
                BOOST_TEST(!h.sentinel.empty());
            }
            co_await cluster.leader_index();

            auto const killed_at = std::chrono::steady_clock::now();
            redis.master.kill();
            // Every subscriber gets a broadcast again, from the promoted replica.
            auto const delivered_since_kill = [&](std::size_t i) {
                auto const& got = cluster.feed_of(i).got;
                return std::find_if(got.begin(), got.end(),
                                    [&](wisdom const& w) { return w.at > killed_at; });
            };
            BOOST_REQUIRE_MESSAGE(co_await cluster.until(
                                      [&] {
                                          for (std::size_t i = 0; i < cluster.size(); ++i)
                                              if (delivered_since_kill(i) == cluster.feed_of(i).got.end())
                                                  return false;
                                          return true;
                                      },
                                      15s),
                                  cluster.tails());
            auto first = std::chrono::milliseconds::max();
            auto every = std::chrono::milliseconds::zero();
            for (std::size_t i = 0; i < cluster.size(); ++i) {
                auto const after = std::chrono::duration_cast<std::chrono::milliseconds>(
                    delivered_since_kill(i)->at - killed_at);
                first = std::min(first, after);
                every = std::max(every, after);
            }
            BOOST_TEST_MESSAGE("failover: first delivery "
                               << first.count() << " ms after the kill, on every node " << every.count()
                               << " ms");
            BOOST_TEST(every.count() <= 5000, "deliveries resume within 5 s of the kill");
            BOOST_TEST(none_closed(cluster), "no client was disconnected");

            for (std::size_t i = 0; i < cluster.size(); ++i)
                BOOST_REQUIRE(co_await cluster.at(i).server.async_wait_for_line(" failover ", 5s));
            co_await cluster.leader_index();
            for (auto const& h : co_await cluster.all_health()) {
                BOOST_TEST(h.master == local(redis.replica.port()));
                BOOST_TEST(h.role == "master");
                BOOST_TEST(h.failovers >= 1u);
            }

            // Every sentinel has taken the new configuration (the leader's followers learn it from its hello
            // messages, within seconds): a sentinel still on the old one would make the promoted replica a
            // replica again of the old master coming back.
            for (auto const& sentinel : redis.sentinels)
                BOOST_REQUIRE_MESSAGE(
                    co_await sentinel->process().async_wait_for_line(" +switch-master ", 20s),
                    sentinel->process().tail());
            // The old master comes back, as an operator brings a failed master back: empty, a replica of the
            // master the sentinels promoted. (Brought back as an empty master instead, twice in about fifteen
            // runs under load a sentinel made the promoted replica a replica of it, 12 s later: Sentinel's
            // race, which the nodes cannot help; docs/cluster.md says how to bring a master back.)
            // With down-after-milliseconds 1000, a sentinel on a loaded machine may also miss the promoted
            // master's pings within a second of its switch and fail over once more, back to the returning one
            // (seen once on the 2-core CI root): a failover like any other, which the nodes must follow the
            // same way. Either way one of the two syncs from the other.
            redis.master.restart({"--replicaof", "127.0.0.1", std::to_string(redis.replica.port())});
            // Waits on the old master in slices, looking at the new one between them (a wait that is
            // abandoned half way would leave its waiter registered with the process).
            constexpr std::string_view synced_line = "sync: Finished with success";
            bool synced = false;
            bool failed_back = false;
            for (auto const until = std::chrono::steady_clock::now() + 40s;
                 !synced && std::chrono::steady_clock::now() < until;) {
                auto const line = co_await redis.master.process().async_wait_for_line(synced_line, 250ms);
                synced = line.has_value();
                if (!synced && redis.replica.process().wait_for_line(synced_line, 0ms))
                    synced = failed_back = true;
            }
            if (!synced) {
                std::string sentinels;
                for (auto const& sentinel : redis.sentinels)
                    sentinels += "\n--- sentinel " + std::to_string(sentinel->port()) + ":\n" +
                                 sentinel->process().tail(3000);
                BOOST_FAIL("neither master synced from the other\n--- old master:\n"
                           << redis.master.tail() << "\n--- new master:\n"
                           << redis.replica.tail() << sentinels);
            }
            auto const current = failed_back ? redis.master.port() : redis.replica.port();
            if (failed_back) {
                BOOST_TEST_MESSAGE("the sentinels failed over once more, back to the returning master");
                for (std::size_t i = 0; i < cluster.size(); ++i)
                    BOOST_REQUIRE(co_await cluster.at(i).server.async_wait_for_line(
                        " failover master_name=mymaster master=" + local(current), 20s));
            }
            BOOST_REQUIRE(co_await cluster.ticks_grow(3, 5s));
            BOOST_TEST(none_closed(cluster));
            co_await cluster.leader_index();
            for (auto const& h : co_await cluster.all_health())
                BOOST_TEST(h.master == local(current));
            // Sent back to the returning master, the sentinels may have promoted it before it had synced.
            check_increasing(cluster, failed_back ? 1 : 0);
        },
        90s);
}

BOOST_AUTO_TEST_CASE(a_dead_sentinel_changes_nothing_for_clients) {
    sentinel_setup redis;
    cluster_run cluster(redis.url(), node_args());
    cluster.with_subscribers(3, [&]() -> net::awaitable<void> {
        // The nodes watch the first sentinel that answers: the first of the list.
        for (auto const& h : co_await cluster.all_health())
            BOOST_TEST(h.sentinel == local(redis.sentinels.front()->port()));
        redis.sentinels.front()->kill();
        for (std::size_t i = 0; i < cluster.size(); ++i) {
            BOOST_REQUIRE(co_await cluster.at(i).server.async_wait_for_line(" sentinel_lost ", 5s));
            BOOST_REQUIRE(co_await cluster.at(i).server.async_wait_for_line(" sentinel_watching ", 10s));
        }
        BOOST_REQUIRE(co_await cluster.ticks_grow(5, 5s));
        BOOST_TEST(none_closed(cluster));
        cluster.check_same_consecutive_ticks();
        for (auto const& h : co_await cluster.all_health()) {
            BOOST_TEST(h.connected);
            BOOST_TEST(h.sentinel != local(redis.sentinels.front()->port()));
            BOOST_TEST(h.master == local(redis.master.port()));
        }
    });
}

BOOST_AUTO_TEST_CASE(a_replica_is_never_taken_for_the_master) {
    redis_server master;
    redis_server replica{{"--replicaof", "127.0.0.1", std::to_string(master.port())}};
    BOOST_REQUIRE(replica.process().wait_for_line("sync: Finished with success", 10s));
    cluster_node node(WOLF_BINARY, replica.url(), node_args());
    run_coro([&]() -> net::awaitable<void> {
        auto const line = co_await node.server.async_wait_for_line(" broker_disconnected ", 5s);
        BOOST_REQUIRE(line);
        BOOST_TEST(line->text.find("is a slave, not the master") != std::string::npos, line->text);
        BOOST_TEST(!(co_await healthz(node.port)).connected);
    });
}
