#define BOOST_TEST_MODULE cpu_affinity
// Where --cpu-affinity places each event-loop thread: the CPUs the process may use, in turn.
#include "support/cpu_affinity.hpp"

#include <boost/test/unit_test.hpp>
#include <vector>

using namespace wolf;

BOOST_AUTO_TEST_CASE(threads_take_the_allowed_cpus_in_turn_and_one_thread_or_cpu_pins_nothing) {
    std::vector<int> const two{0, 1};
    BOOST_TEST(!cpu_for_thread(0, 1, two).has_value(), "one thread: nothing to keep apart");
    BOOST_TEST(!cpu_for_thread(1, 2, {5}).has_value(), "one allowed CPU: nowhere else to go");
    BOOST_TEST(cpu_for_thread(0, 2, two).value_or(-1) == 0);
    BOOST_TEST(cpu_for_thread(1, 2, two).value_or(-1) == 1);
    BOOST_TEST(cpu_for_thread(2, 3, two).value_or(-1) == 0, "more threads than CPUs: round again");
    BOOST_TEST(cpu_for_thread(3, 4, {2, 4, 6}).value_or(-1) == 2, "the allowed set, not CPU numbers from 0");
    auto const allowed = allowed_cpus();
    BOOST_TEST(!allowed.empty(), "this process may run somewhere");
}
