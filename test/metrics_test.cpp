#define BOOST_TEST_MODULE metrics
// The server's own metrics and health: /metrics in the Prometheus text format and the /healthz body, read
// from the pool totals, the counters and the broker's status.
#include "common/fake_peer.hpp"
#include "metrics.hpp"
#include "registry.hpp"

#include <boost/test/unit_test.hpp>
#include <string>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;

namespace {

/** The value of the sample line that starts with `series` followed by a space, or -1. */
double sample(std::string const& text, std::string const& series) {
    auto const at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

} // namespace

BOOST_AUTO_TEST_CASE(the_server_exports_both_histograms) {
    metrics m;
    pool_counts r;
    m.broadcast_duration.observe(0.00003);
    m.session_duration.observe(90);
    m.session_duration.observe(100000);
    auto const text = render_prometheus(m, r);
    BOOST_TEST(text.find("# TYPE wolf_broadcast_duration_seconds histogram\n") != std::string::npos);
    BOOST_TEST(sample(text, "wolf_broadcast_duration_seconds_bucket{le=\"2.5e-05\"}") == 0);
    BOOST_TEST(sample(text, "wolf_broadcast_duration_seconds_bucket{le=\"5e-05\"}") == 1);
    BOOST_TEST(sample(text, "wolf_broadcast_duration_seconds_count") == 1);
    BOOST_TEST(text.find("# TYPE wolf_session_duration_seconds histogram\n") != std::string::npos);
    BOOST_TEST(sample(text, "wolf_session_duration_seconds_bucket{le=\"60\"}") == 0);
    BOOST_TEST(sample(text, "wolf_session_duration_seconds_bucket{le=\"300\"}") == 1);
    BOOST_TEST(sample(text, "wolf_session_duration_seconds_bucket{le=\"86400\"}") == 1);
    BOOST_TEST(sample(text, "wolf_session_duration_seconds_bucket{le=\"+Inf\"}") == 2);
    BOOST_TEST(sample(text, "wolf_session_duration_seconds_sum") == 100090);
    BOOST_TEST(sample(text, "wolf_session_duration_seconds_count") == 2);
}

BOOST_AUTO_TEST_CASE(the_server_exports_the_standard_process_metrics) {
    auto const text = render_prometheus(metrics{}, pool_counts{});
    for (auto [name, type] : {std::pair{"process_cpu_seconds_total", "counter"},
                              {"process_open_fds", "gauge"},
                              {"process_max_fds", "gauge"},
                              {"process_virtual_memory_bytes", "gauge"},
                              {"process_resident_memory_bytes", "gauge"},
                              {"process_start_time_seconds", "gauge"}}) {
        BOOST_TEST(text.find(std::string("# TYPE ") + name + " " + type + "\n") != std::string::npos, name);
        BOOST_TEST(sample(text, name) >= 0, name);
    }
    BOOST_TEST(sample(text, "process_resident_memory_bytes") > 0);
    BOOST_TEST(sample(text, "process_open_fds") >= 3);
}

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
    broker_status follower;
    follower.redis = true;
    follower.leader = false;
    follower.master = "10.0.0.5:6379";
    follower.role = "master";
    follower.deck = "shared";
    follower.fingerprint = "07006b710d745946";
    BOOST_TEST(
        render_health(pools, follower) ==
        R"({"status":"ok","connections":0,"subscribers":0,"broker":"redis","broker_connected":true,)"
        R"("leader":false,"redis":{"master":"10.0.0.5:6379","role":"master","tls":false,"failovers":0,)"
        R"("deck":"shared","deck_fingerprint":"07006b710d745946"}})");
    broker_status cut_off = follower;
    cut_off.connected = false;
    cut_off.sentinel = "10.0.0.9:26379";
    cut_off.tls = true;
    cut_off.failovers = 2;
    cut_off.deck = "mismatch";
    auto const health = render_health(pools, cut_off);
    BOOST_TEST(health.find(R"("sentinel":"10.0.0.9:26379")") != std::string::npos, health);
    BOOST_TEST(health.find(R"("deck":"mismatch")") != std::string::npos, health);
    auto const text = render_prometheus(stats, pools, cut_off);
    BOOST_TEST(text.find("\nwolf_broker_info{broker=\"redis\"} 1\n") != std::string::npos);
    BOOST_TEST(text.find("\nwolf_broker_connected 0\n") != std::string::npos);
    BOOST_TEST(text.find("\nwolf_leader 0\n") != std::string::npos);
    BOOST_TEST(
        text.find("\nwolf_redis_info{master=\"10.0.0.5:6379\",role=\"master\",sentinel=\"10.0.0.9:26379\","
                  "tls=\"true\"} 1\n") != std::string::npos,
        text);
    BOOST_TEST(text.find("\nwolf_redis_failovers_total 2\n") != std::string::npos);
    BOOST_TEST(text.find("\nwolf_deck_info{fingerprint=\"07006b710d745946\"} 1\n") != std::string::npos,
               text);
    BOOST_TEST(text.find("\nwolf_deck_mismatch 1\n") != std::string::npos);
    BOOST_TEST(render_prometheus(stats, pools, follower).find("\nwolf_deck_mismatch 0\n") !=
               std::string::npos);
    BOOST_TEST(render_prometheus(stats, pools).find("wolf_redis_") == std::string::npos, "only with --redis");
    BOOST_TEST(render_prometheus(stats, pools).find("wolf_deck_") == std::string::npos, "only with --redis");
}

BOOST_AUTO_TEST_CASE(the_limits_and_the_last_broadcast_are_exported_for_alerts) {
    pool_counts pools;
    metrics stats;
    stats.max_connections = 10000;
    stats.interval_seconds = 2.5;
    auto text = render_prometheus(stats, pools);
    BOOST_TEST(text.find("\nwolf_max_connections 10000\n") != std::string::npos, text);
    BOOST_TEST(text.find("\nwolf_tick_interval_seconds 2.5\n") != std::string::npos, text);
    BOOST_TEST(text.find("\nwolf_last_broadcast_timestamp_seconds 0\n") != std::string::npos, text);
    stats.last_broadcast_seconds = 1765012345.25;
    text = render_prometheus(stats, pools);
    BOOST_TEST(text.find("\nwolf_last_broadcast_timestamp_seconds 1765012345.25\n") != std::string::npos,
               text);
}
