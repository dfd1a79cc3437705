#define BOOST_TEST_MODULE history
// One shard's record of the latest broadcasts: what it holds, whether a `since` is covered, what it replays,
// and how a gap, a new epoch and a capacity of 0 change that.
#include "frame.hpp"
#include "history.hpp"

#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

using namespace wolf;
using outcome = history::outcome;

namespace {

/** Appends broadcasts `first` to `last` of `epoch`, each a frame carrying its offset. */
void append(history& record, std::string const& epoch, std::uint64_t first, std::uint64_t last) {
    for (auto offset = first; offset <= last; ++offset)
        record.append({epoch, offset}, make_text_frame("#" + std::to_string(offset), offset));
}

std::vector<std::uint64_t> replayed(history const& record, std::uint64_t after) {
    std::vector<std::uint64_t> offsets;
    record.replay_after(after, [&](shared_frame const& frame) { offsets.push_back(frame->offset()); });
    return offsets;
}

} // namespace

BOOST_AUTO_TEST_CASE(an_empty_record_covers_only_its_own_epoch_at_offset_0_or_later) {
    history const record(10, "e1");
    BOOST_TEST(record.latest().epoch == "e1");
    BOOST_TEST(record.latest().offset == 0u);
    BOOST_TEST((record.check({"e1", 0}) == outcome::recovered));
    BOOST_TEST((record.check({"e2", 0}) == outcome::epoch));
    BOOST_TEST(replayed(record, 0).empty());
}

BOOST_AUTO_TEST_CASE(everything_after_a_since_within_the_record_is_replayed_in_order) {
    history record(10, "e1");
    append(record, "e1", 1, 6);
    BOOST_TEST(record.latest().offset == 6u);
    BOOST_TEST(record.size() == 6u);
    BOOST_TEST((record.check({"e1", 2}) == outcome::recovered));
    BOOST_TEST(replayed(record, 2) == (std::vector<std::uint64_t>{3, 4, 5, 6}),
               boost::test_tools::per_element());
    BOOST_TEST(replayed(record, 6).empty());
    BOOST_TEST((record.check({"e1", 9}) == outcome::recovered), "ahead: nothing after it is missing");
}

BOOST_AUTO_TEST_CASE(a_full_record_drops_the_oldest_and_an_older_since_is_a_gap) {
    history record(3, "e1");
    append(record, "e1", 1, 5);
    BOOST_TEST(record.size() == 3u);
    BOOST_TEST((record.check({"e1", 1}) == outcome::gap), "2 is gone");
    BOOST_TEST((record.check({"e1", 2}) == outcome::recovered));
    BOOST_TEST(replayed(record, 2) == (std::vector<std::uint64_t>{3, 4, 5}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(broadcasts_the_shard_never_saw_start_the_record_again) {
    history record(10, "e1");
    append(record, "e1", 1, 3);
    append(record, "e1", 7, 8); // 4 to 6 never reached this shard
    BOOST_TEST(record.size() == 2u);
    BOOST_TEST((record.check({"e1", 3}) == outcome::gap));
    BOOST_TEST((record.check({"e1", 6}) == outcome::recovered));
    BOOST_TEST(replayed(record, 6) == (std::vector<std::uint64_t>{7, 8}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_position_recorded_already_is_not_recorded_again) {
    history record(10, "e1");
    append(record, "e1", 1, 4);
    append(record, "e1", 3, 4);
    BOOST_TEST(record.size() == 4u);
    BOOST_TEST(replayed(record, 0) == (std::vector<std::uint64_t>{1, 2, 3, 4}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_new_epoch_starts_the_record_again) {
    history record(10, "e1");
    append(record, "e1", 1, 5);
    append(record, "e2", 1, 2);
    BOOST_TEST(record.latest().epoch == "e2");
    BOOST_TEST(record.latest().offset == 2u);
    BOOST_TEST((record.check({"e1", 5}) == outcome::epoch));
    BOOST_TEST((record.check({"e2", 0}) == outcome::recovered));
    BOOST_TEST(replayed(record, 0) == (std::vector<std::uint64_t>{1, 2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(with_capacity_0_only_the_latest_is_covered) {
    history record(0, "e1");
    append(record, "e1", 1, 4);
    BOOST_TEST(record.size() == 0u);
    BOOST_TEST(record.latest().offset == 4u);
    BOOST_TEST((record.check({"e1", 4}) == outcome::recovered));
    BOOST_TEST((record.check({"e1", 3}) == outcome::gap));
}

BOOST_AUTO_TEST_CASE(epochs_are_16_hex_digits_and_differ) {
    auto const a = new_epoch();
    auto const b = new_epoch();
    BOOST_TEST(a.size() == 16u);
    BOOST_TEST(a.find_first_not_of("0123456789abcdef") == std::string::npos);
    BOOST_TEST(a != b);
}
