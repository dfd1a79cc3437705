#define BOOST_TEST_MODULE metrics
// Histograms in the Prometheus text format, and the process collector's figures read from /proc.
#include "metrics.hpp"
#include "registry.hpp"
#include "support/process_stats.hpp"

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

using namespace wolf;

namespace {

/** The value of the sample line that starts with `series` followed by a space, or -1. */
double sample(std::string const& text, std::string const& series) {
    auto const at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

} // namespace

BOOST_AUTO_TEST_SUITE(histograms)

BOOST_AUTO_TEST_CASE(buckets_are_cumulative_and_inf_equals_the_count) {
    std::array<double, 3> const bounds{0.25, 1, 10};
    histogram h(bounds);
    for (double value : {0.125, 0.25, 0.5, 2.0, 20.0, 30.0})
        h.observe(value);
    BOOST_TEST(h.count() == 6u);
    BOOST_TEST(h.sum() == 52.875);

    auto const text = render_histogram("wolf_example_seconds", "An example.", h);
    BOOST_TEST(text == "# HELP wolf_example_seconds An example.\n"
                       "# TYPE wolf_example_seconds histogram\n"
                       "wolf_example_seconds_bucket{le=\"0.25\"} 2\n" // 0.25 itself is in le="0.25"
                       "wolf_example_seconds_bucket{le=\"1\"} 3\n"
                       "wolf_example_seconds_bucket{le=\"10\"} 4\n"
                       "wolf_example_seconds_bucket{le=\"+Inf\"} 6\n"
                       "wolf_example_seconds_sum 52.875\n"
                       "wolf_example_seconds_count 6\n");
}

BOOST_AUTO_TEST_CASE(an_empty_histogram_has_every_bucket_at_zero) {
    histogram const h(broadcast_duration_bounds);
    auto const text = render_histogram("h", "Empty.", h);
    BOOST_TEST(text.find("h_bucket{le=\"1e-05\"} 0\n") != std::string::npos, text);
    BOOST_TEST(text.find("h_bucket{le=\"0.0001\"} 0\n") != std::string::npos, text);
    BOOST_TEST(text.find("h_bucket{le=\"+Inf\"} 0\n") != std::string::npos, text);
    BOOST_TEST(text.find("h_sum 0\n") != std::string::npos, text);
    BOOST_TEST(text.find("h_count 0\n") != std::string::npos, text);
}

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

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(process)

BOOST_AUTO_TEST_CASE(this_process_figures_are_plausible) {
    auto const stats = read_process_stats();
    BOOST_REQUIRE(stats.has_value());
    BOOST_TEST(stats->resident_memory_bytes > 0u);
    BOOST_TEST(stats->virtual_memory_bytes >= stats->resident_memory_bytes);
    BOOST_TEST(stats->open_fds >= 3u); // stdin, stdout, stderr
    BOOST_TEST(stats->max_fds >= stats->open_fds);
    BOOST_TEST(stats->cpu_seconds >= 0);
    auto const now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    BOOST_TEST(stats->start_time_seconds <= now + 1);
    BOOST_TEST(stats->start_time_seconds > now - 3600, "started within the last hour");
}

BOOST_AUTO_TEST_CASE(a_new_descriptor_is_counted) {
    auto const before = read_process_stats();
    std::FILE* file = std::fopen("/proc/self/stat", "r");
    BOOST_REQUIRE(file);
    auto const during = read_process_stats();
    std::fclose(file);
    BOOST_REQUIRE(before && during);
    BOOST_TEST(during->open_fds == before->open_fds + 1);
}

BOOST_AUTO_TEST_CASE(another_process_is_read_by_pid_and_a_missing_one_is_nullopt) {
    auto const self = read_process_stats(::getpid());
    BOOST_REQUIRE(self.has_value());
    BOOST_TEST(self->open_fds >= 3u);
    BOOST_TEST(count_open_fds(::getpid()).value_or(0) >= 3u);
    BOOST_TEST(!read_process_stats(4'194'304 + 1).has_value()); // above the kernel's pid_max
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

BOOST_AUTO_TEST_SUITE_END()
