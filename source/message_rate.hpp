#pragma once

#include "protocol.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>

namespace wolf {

/**
 * The contract's flood limit: true for a message that is the (rate_limit_messages + 1)th within one second.
 * It keeps the gaps between the last rate_limit_messages + 1 arrivals, each capped at a second: their sum
 * is under a second exactly when the true span is, so 16 bits a gap suffice.
 */
class message_rate {
public:
    bool over_limit(std::chrono::steady_clock::time_point now) noexcept {
        auto const ms = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
        if (seen_ > 0) {
            auto const gap = static_cast<std::uint16_t>(std::min<std::uint64_t>(ms - last_, cap));
            window_ = window_ - gaps_[next_] + gap;
            gaps_[next_] = gap;
            next_ = static_cast<std::uint8_t>((next_ + 1) % gaps_.size());
        }
        last_ = ms;
        if (seen_ <= gaps_.size()) ++seen_;
        return seen_ > gaps_.size() && window_ < cap;
    }

private:
    static constexpr std::uint32_t cap = 1000; // ms: the limit's window
    std::array<std::uint16_t, protocol::rate_limit_messages> gaps_{};
    std::uint32_t window_ = 0; // the sum of gaps_: how long the last rate_limit_messages gaps took
    std::uint64_t last_ = 0;   // the latest arrival, in ms of the steady clock
    std::uint8_t next_ = 0;
    std::uint8_t seen_ = 0; // messages so far, up to rate_limit_messages + 1
};
static_assert(protocol::rate_limit_messages < 255);

} // namespace wolf
