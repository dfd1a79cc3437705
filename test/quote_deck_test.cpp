#define BOOST_TEST_MODULE quote_deck
#include "assets.hpp"
#include "quote_deck.hpp"

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <set>

using namespace wolf;

namespace {

std::vector<std::string> quotes_of(std::string_view text) {
    auto result = parse_quotes(text, "test");
    if (auto const* error = std::get_if<std::string>(&result)) BOOST_FAIL("unexpected error: " << *error);
    return std::get<std::vector<std::string>>(std::move(result));
}

std::string error_of(std::string_view text) {
    auto const result = parse_quotes(text, "quotes.txt");
    auto const* error = std::get_if<std::string>(&result);
    BOOST_REQUIRE(error);
    return *error;
}

} // namespace

BOOST_AUTO_TEST_SUITE(file_format)

BOOST_AUTO_TEST_CASE(lines_are_trimmed_and_blank_and_comment_lines_skipped) {
    auto const quotes = quotes_of("\xEF\xBB\xBF# header\n  first  \r\n\n\t\r\n   # indented "
                                  "comment\nsecond\r\nthird # not a comment\nlast");
    BOOST_TEST(quotes == (std::vector<std::string>{"first", "second", "third # not a comment", "last"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_file_with_no_quotes_is_an_error) {
    BOOST_TEST(error_of("").find("no quotes") != std::string::npos);
    BOOST_TEST(error_of("# only\n\n   \n#comments\r\n").find("no quotes") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_an_error_naming_the_line) {
    auto const error = error_of("fine\nbad \xC3\x28 byte\n");
    BOOST_TEST(error.find("quotes.txt:2") != std::string::npos, error);
    BOOST_TEST(error.find("UTF-8") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(utf8_validation) {
    BOOST_TEST(is_valid_utf8("plain ascii"));
    BOOST_TEST(is_valid_utf8("Волк \xF0\x9F\x90\xBA"));
    BOOST_TEST(!is_valid_utf8("\xC0\xAF"));         // overlong '/'
    BOOST_TEST(!is_valid_utf8("\xED\xA0\x80"));     // surrogate
    BOOST_TEST(!is_valid_utf8("\xF4\x90\x80\x80")); // past U+10FFFF
    BOOST_TEST(!is_valid_utf8("\xE2\x82"));         // truncated
    BOOST_TEST(!is_valid_utf8("\xFF"));
}

BOOST_AUTO_TEST_CASE(missing_file_and_directory_are_errors) {
    auto const missing = load_quotes_file("/nonexistent/quotes.txt");
    BOOST_TEST(std::holds_alternative<std::string>(missing));
    auto const directory = load_quotes_file(std::filesystem::temp_directory_path().string());
    BOOST_TEST(std::holds_alternative<std::string>(directory));
}

BOOST_AUTO_TEST_CASE(a_file_is_read) {
    auto const path = std::filesystem::temp_directory_path() / "wolf-quote-deck-test.txt";
    std::ofstream(path) << "# two quotes\none\r\ntwo\n";
    auto const loaded = load_quotes_file(path.string());
    std::filesystem::remove(path);
    BOOST_REQUIRE(std::holds_alternative<std::vector<std::string>>(loaded));
    BOOST_TEST(std::get<std::vector<std::string>>(loaded).size() == 2u);
}

BOOST_AUTO_TEST_CASE(the_built_in_deck_has_at_least_60_quotes_in_russian_and_english) {
    auto const text = embedded_file_data(default_quotes_name);
    BOOST_REQUIRE(text.has_value());
    auto const quotes = quotes_of(*text);
    BOOST_TEST(quotes.size() >= 60u);
    auto const cyrillic = std::count_if(quotes.begin(), quotes.end(), [](auto const& q) {
        return q.find("\xD0") != std::string::npos || q.find("\xD1") != std::string::npos;
    });
    BOOST_TEST(cyrillic >= 20);
    BOOST_TEST(static_cast<std::size_t>(cyrillic) <= quotes.size() - 20);
    BOOST_TEST(std::set<std::string>(quotes.begin(), quotes.end()).size() == quotes.size(), "no duplicates");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(deck)

BOOST_AUTO_TEST_CASE(no_quote_repeats_before_all_others_were_dealt) {
    std::vector<std::string> quotes;
    for (int i = 0; i < 17; ++i)
        quotes.push_back("quote " + std::to_string(i));
    quote_deck deck(quotes, 7);
    for (int round = 0; round < 20; ++round) {
        std::set<std::string> seen;
        for (std::size_t i = 0; i < quotes.size(); ++i)
            BOOST_TEST(seen.insert(deck.next()).second);
        BOOST_TEST(seen.size() == quotes.size());
    }
}

BOOST_AUTO_TEST_CASE(a_reshuffle_never_repeats_the_last_quote_first) {
    quote_deck deck({"a", "b", "c"}, 1);
    std::string previous;
    for (int i = 0; i < 3000; ++i) {
        auto const& current = deck.next();
        BOOST_TEST(current != previous);
        previous = current;
    }
}

BOOST_AUTO_TEST_CASE(the_order_is_shuffled) {
    std::vector<std::string> quotes;
    for (int i = 0; i < 50; ++i)
        quotes.push_back(std::to_string(i));
    quote_deck deck(quotes, 3);
    std::vector<std::string> dealt;
    for (std::size_t i = 0; i < quotes.size(); ++i)
        dealt.push_back(deck.next());
    BOOST_TEST(dealt != quotes);
}

BOOST_AUTO_TEST_CASE(a_single_quote_deck_repeats_it) {
    quote_deck deck({"only"}, 1);
    BOOST_TEST(deck.next() == "only");
    BOOST_TEST(deck.next() == "only");
}

BOOST_AUTO_TEST_SUITE_END()
