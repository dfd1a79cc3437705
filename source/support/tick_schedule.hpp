#pragma once

#include "support/net.hpp"

namespace wolf {

/**
 * When a periodic tick is due: times on a fixed grid from the first one, so a late wake-up does not push
 * every later tick back (no drift); when the process has fallen behind by a whole interval, the ticks it
 * missed are skipped, not made in a burst. The single node's ticker and a cluster's leader both keep one.
 */
class tick_schedule {
public:
    tick_schedule(steady_clock::time_point first, duration interval) noexcept
        : next_(first)
        , interval_(interval) {}

    /** When the next tick is due. */
    steady_clock::time_point next() const noexcept { return next_; }

    /** The tick due at next() was made at `now`: the next one is one interval later on the grid, or one
     * interval from `now` if the grid has fallen behind. */
    void advance(steady_clock::time_point now) noexcept {
        next_ += interval_;
        if (next_ <= now) next_ = now + interval_;
    }

    /** The next tick at `at` instead, and the grid from there (a leader's first tick, a lease retry). */
    void reschedule(steady_clock::time_point at) noexcept { next_ = at; }

private:
    steady_clock::time_point next_;
    duration interval_;
};

} // namespace wolf
