#define BOOST_TEST_MODULE message_rate
// The contract's flood limit (50 client messages a second), against a naive model.
#include "common/loopback.hpp"
#include "message_rate.hpp"
#include "protocol.hpp"

#include <boost/test/unit_test.hpp>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;
using tcp = net::ip::tcp;

BOOST_AUTO_TEST_SUITE(rate)

namespace {

steady_clock::time_point at(std::uint64_t ms) {
    return steady_clock::time_point(std::chrono::milliseconds(ms));
}

/** The contract, naively: over if rate_limit_messages earlier arrivals lie within the last second. */
class naive_rate {
public:
    bool over_limit(std::uint64_t now_ms) {
        auto const n = protocol::rate_limit_messages;
        bool const over = arrivals_.size() >= n && now_ms - arrivals_[arrivals_.size() - n] < 1000;
        arrivals_.push_back(now_ms);
        if (arrivals_.size() > n) arrivals_.pop_front();
        return over;
    }

private:
    std::deque<std::uint64_t> arrivals_;
};

} // namespace

BOOST_AUTO_TEST_CASE(fifty_messages_within_a_second_are_allowed_and_the_fifty_first_is_over) {
    static_assert(protocol::rate_limit_messages == 50);
    message_rate rate;
    std::uint64_t now = 5'000'000;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(now + i * 20)), "message " << i + 1);
    BOOST_TEST(rate.over_limit(at(now + 999)));
}

BOOST_AUTO_TEST_CASE(the_fifty_first_message_a_full_second_after_the_first_is_allowed) {
    message_rate rate;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(i)));
    BOOST_TEST(!rate.over_limit(at(1000)));
    // One more in the same millisecond: the 50 before it go back to the one at 1 ms, 999 ms earlier.
    BOOST_TEST(rate.over_limit(at(1000)));
}

BOOST_AUTO_TEST_CASE(a_silence_longer_than_65536_ms_ends_a_burst) {
    message_rate rate;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(10 * i)));
    BOOST_TEST(!rate.over_limit(at(10 * 49 + 65'537)));
}

BOOST_AUTO_TEST_CASE(a_silence_longer_than_2_to_the_32_ms_ends_a_burst) {
    message_rate rate;
    for (std::size_t i = 0; i < protocol::rate_limit_messages; ++i)
        BOOST_TEST(!rate.over_limit(at(10 * i)));
    // 49.7 days and 1 ms later: the 50 earlier messages are long gone.
    BOOST_TEST(!rate.over_limit(at(10 * 49 + (std::uint64_t{1} << 32) + 1)));
}

BOOST_AUTO_TEST_CASE(over_limit_agrees_with_a_naive_model_on_random_arrivals) {
    for_each_seed(40, [&](std::mt19937& random) {
        message_rate rate;
        naive_rate model;
        // Start anywhere, near the 32-bit millisecond wrap included.
        std::uint64_t now =
            random() % 2 == 0 ? (std::uint64_t{1} << 32) - random() % 5000 : std::uint64_t{random()} << 4;
        // Phases of 10 to 80 arrivals: bursts, a steady 50 a second, gaps on the edge of the window,
        // long silences; now and then one very long silence, after a burst as likely as anywhere.
        enum phase_kind { burst, steady, edge, sparse } phase = burst;
        int phase_left = 0;
        std::deque<std::uint64_t> recent_gaps;
        for (int i = 0; i < 3000; ++i) {
            if (phase_left-- == 0) {
                phase = static_cast<phase_kind>(random() % 4);
                phase_left = 10 + static_cast<int>(random() % 71);
            }
            std::uint64_t gap = 0;
            if (random() % 100 == 0) {
                gap = (std::uint64_t{1} << 32) + random() % 1500; // past the 32-bit millisecond range
            } else {
                switch (phase) {
                case burst:
                    gap = random() % 25;
                    break;
                case steady:
                    gap = 19 + random() % 3;
                    break;
                case edge: {
                    static constexpr std::uint64_t edges[] = {0, 0, 0, 999, 1000, 1001, 20};
                    gap = edges[random() % std::size(edges)];
                    break;
                }
                case sparse:
                    gap = random() % 2 == 0 ? 65'536 + random() % 100'000 : 500 + random() % 1000;
                    break;
                }
            }
            now += gap;
            recent_gaps.push_back(gap);
            if (recent_gaps.size() > protocol::rate_limit_messages) recent_gaps.pop_front();
            bool const expected = model.over_limit(now);
            bool const got = rate.over_limit(at(now));
            bool const wide_gap = std::any_of(recent_gaps.begin(), recent_gaps.end(),
                                              [](std::uint64_t g) { return g >> 32 != 0; });
            BOOST_TEST(got == expected, "arrival " << i << " at " << now << " ms, " << gap
                                                   << " ms after the last; a gap of 2^32 ms or more among "
                                                   << "the last 50: " << (wide_gap ? "yes" : "no"));
            if (got != expected) break;
        }
    });
}

BOOST_AUTO_TEST_SUITE_END()
