#include "support/duration.hpp"

#include <charconv>
#include <cmath>

namespace wolf {

std::optional<duration> parse_duration(std::string_view text) noexcept {
    // A number (digits with an optional fraction) followed by an optional unit; nothing else.
    std::size_t i = 0;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.'))
        ++i;
    auto const number = text.substr(0, i);
    auto const unit = text.substr(i);
    if (number.empty() || number.front() == '.' || number.back() == '.' ||
        number.find('.') != number.rfind('.'))
        return std::nullopt;

    double value = 0;
    auto const [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc{} || end != number.data() + number.size()) return std::nullopt;

    double millis_per_unit = 0;
    if (unit.empty() || unit == "s")
        millis_per_unit = 1000;
    else if (unit == "ms")
        millis_per_unit = 1;
    else if (unit == "m")
        millis_per_unit = 60'000;
    else if (unit == "h")
        millis_per_unit = 3'600'000;
    else
        return std::nullopt;

    double const millis = std::round(value * millis_per_unit);
    // A week is far beyond any sensible interval and keeps every later time_point addition safe.
    if (!(millis >= 1) || millis > 7 * 24 * 3'600'000.0) return std::nullopt;
    return duration{static_cast<duration::rep>(millis)};
}

std::string format_duration(duration d) {
    auto const ms = d.count();
    if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

} // namespace wolf
