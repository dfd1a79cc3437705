#include "history.hpp"

#include "metrics.hpp"
#include "support/entropy.hpp"

#include <algorithm>

namespace wolf {
namespace {

std::uint64_t before(std::uint64_t offset) noexcept {
    return offset == 0 ? 0 : offset - 1;
}

} // namespace

std::string new_epoch() {
    return random_hex(8);
}

history::history(std::size_t capacity, std::string epoch)
    : ring_(capacity)
    , latest_{std::move(epoch), 0} {
}

void history::append(protocol::position const& at, shared_frame frame) {
    if (at.epoch != latest_.epoch) {
        // A new epoch (a cluster whose Redis came back empty): what was recorded belongs to another sequence.
        latest_.epoch = at.epoch;
        first_ = count_ = 0;
        complete_after_ = before(at.offset);
    } else if (at.offset <= latest_.offset) {
        return; // recorded already: a position is never recorded (or offered) twice
    } else if (at.offset != latest_.offset + 1) {
        // Broadcasts this shard never saw: whoever stopped before them cannot have them from here.
        first_ = count_ = 0;
        complete_after_ = before(at.offset);
    }
    latest_.offset = at.offset;
    if (ring_.empty()) {
        complete_after_ = at.offset; // nothing kept: complete only for whoever has seen the latest
        return;
    }
    auto const slot = (first_ + count_) % ring_.size();
    ring_[slot] = {at.offset, std::move(frame)};
    if (count_ < ring_.size())
        ++count_;
    else
        first_ = (first_ + 1) % ring_.size();
    if (count_ == ring_.size()) complete_after_ = std::max(complete_after_, before(ring_[first_].offset));
}

void history::skip_to(protocol::position const& at) {
    if (at.epoch == latest_.epoch && at.offset <= latest_.offset) return;
    latest_ = at;
    first_ = count_ = 0;
    complete_after_ = at.offset;
}

history::outcome history::check(protocol::position const& since) const noexcept {
    if (since.epoch != latest_.epoch) return outcome::epoch;
    return since.offset >= complete_after_ ? outcome::recovered : outcome::gap;
}

std::string_view to_string(history::outcome result) noexcept {
    return recovery_result_names[static_cast<std::size_t>(result)];
}

} // namespace wolf
