#pragma once

// Durations as people write them: every setting's and log line's "250ms", "5s", "1m".

#include "support/net.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace wolf {

/** "250ms", "5s", "1.5m", "2h" or a bare number of seconds; nullopt unless well-formed and > 0 ms. */
std::optional<duration> parse_duration(std::string_view text) noexcept;

/** Renders a duration the way parse_duration reads it ("250ms", "5s", "1m"). */
std::string format_duration(duration d);

} // namespace wolf
