#include "quote_deck.hpp"

#include <algorithm>
#include <cassert>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

namespace wolf {

quote_deck::quote_deck(std::vector<std::string> quotes, std::uint64_t seed)
    : quotes_(std::move(quotes))
    , order_(quotes_.size())
    , rng_(seed) {
    assert(!quotes_.empty());
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    std::shuffle(order_.begin(), order_.end(), rng_);
}

void quote_deck::shuffle() {
    auto const last = order_.back();
    std::shuffle(order_.begin(), order_.end(), rng_);
    if (order_.size() > 1 && order_.front() == last) std::swap(order_.front(), order_.back());
    position_ = 0;
}

std::string const& quote_deck::next() {
    if (position_ == order_.size()) shuffle();
    return quotes_[order_[position_++]];
}

bool is_valid_utf8(std::string_view text) noexcept {
    auto const* p = reinterpret_cast<unsigned char const*>(text.data());
    auto const* const end = p + text.size();
    while (p < end) {
        unsigned const lead = *p++;
        if (lead < 0x80) continue;
        std::size_t extra = 0;
        unsigned code = 0;
        if (lead >= 0xC2 && lead <= 0xDF)
            extra = 1, code = lead & 0x1F;
        else if (lead >= 0xE0 && lead <= 0xEF)
            extra = 2, code = lead & 0x0F;
        else if (lead >= 0xF0 && lead <= 0xF4)
            extra = 3, code = lead & 0x07;
        else
            return false;
        if (static_cast<std::size_t>(end - p) < extra) return false;
        for (std::size_t i = 0; i < extra; ++i) {
            if ((p[i] & 0xC0) != 0x80) return false;
            code = (code << 6) | (p[i] & 0x3F);
        }
        p += extra;
        if ((extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000)) return false; // overlong
        if ((code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return false;
    }
    return true;
}

std::variant<std::vector<std::string>, std::string> parse_quotes(std::string_view text,
                                                                 std::string_view source) {
    constexpr std::string_view bom = "\xEF\xBB\xBF";
    if (text.starts_with(bom)) text.remove_prefix(bom.size());

    std::vector<std::string> quotes;
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        auto const eol = text.find('\n');
        auto line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);

        constexpr std::string_view blanks = " \t\r\v\f";
        auto const first = line.find_first_not_of(blanks);
        if (first == std::string_view::npos) continue;
        line = line.substr(first, line.find_last_not_of(blanks) - first + 1);
        if (line.front() == '#') continue;
        if (!is_valid_utf8(line))
            return std::string(source) + ":" + std::to_string(line_number) + ": not valid UTF-8";
        quotes.emplace_back(line);
    }
    if (quotes.empty()) return std::string(source) + ": no quotes (every line is empty or a # comment)";
    return quotes;
}

std::variant<std::vector<std::string>, std::string> load_quotes_file(std::string const& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return path + ": no such quotes file";
    std::ifstream file(path, std::ios::binary);
    if (!file) return path + ": cannot open the quotes file";
    std::ostringstream contents;
    contents << file.rdbuf();
    if (file.bad()) return path + ": cannot read the quotes file";
    return parse_quotes(contents.view(), path);
}

} // namespace wolf
