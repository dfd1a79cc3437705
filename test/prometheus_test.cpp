#define BOOST_TEST_MODULE prometheus
// Prometheus primitives: a histogram's cumulative buckets in the text format.
#include "metrics.hpp" // the server's bucket bounds
#include "support/prometheus.hpp"

#include <array>
#include <boost/test/unit_test.hpp>
#include <string>

using namespace wolf;

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
