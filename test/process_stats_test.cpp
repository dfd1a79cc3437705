#define BOOST_TEST_MODULE process_stats
// What /proc says about a process: this one, another one by pid, and one that is gone.
#include "support/process_stats.hpp"

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <unistd.h>

using namespace wolf;
using namespace std::chrono_literals;

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
