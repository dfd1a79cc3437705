#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace wolf {

/**
 * The quotes in shuffled-deck order: every quote is dealt once before any is dealt again, and a
 * reshuffle never deals the last quote of one round as the first of the next.
 */
class quote_deck {
public:
    /** Requires at least one quote. */
    explicit quote_deck(std::vector<std::string> quotes, std::uint64_t seed = std::random_device{}());

    std::string const& next();
    std::size_t size() const noexcept { return quotes_.size(); }
    std::vector<std::string> const& quotes() const noexcept { return quotes_; }

private:
    void shuffle();

    std::vector<std::string> quotes_;
    std::vector<std::size_t> order_;
    std::size_t position_ = 0;
    std::mt19937_64 rng_;
};

/**
 * Reads a quotes file's text: one quote per line, trimmed of surrounding white space and '\r';
 * empty lines and lines whose first non-blank character is '#' are skipped; a UTF-8 byte order mark
 * is ignored. Returns the quotes, or a one-line error (invalid UTF-8, no quotes at all) that names
 * `source` and, where it applies, the line.
 */
std::variant<std::vector<std::string>, std::string> parse_quotes(std::string_view text,
                                                                 std::string_view source);

/** parse_quotes over a file's contents; a file that cannot be read is an error too. */
std::variant<std::vector<std::string>, std::string> load_quotes_file(std::string const& path);

/** True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool is_valid_utf8(std::string_view text) noexcept;

} // namespace wolf
