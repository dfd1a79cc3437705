#pragma once

#include "frame.hpp"
#include "protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace wolf {

/** A fresh epoch: 16 lowercase hex digits from the operating system's entropy. */
std::string new_epoch();

/**
 * One shard's record of the latest broadcasts, for lossless reconnect (protocol section 10): the frames the
 * broadcaster already built, shared, with their offsets; the last `capacity` of them, nothing per
 * connection.
 *
 * Each shard keeps its own, appended in the same handler that offers the frame to the shard's subscribers.
 * So a subscriber recovering on the shard's thread sees, at any moment, exactly the broadcasts offered so
 * far: those after its `since` come from here, the later ones live, each once and in order, whatever the
 * broadcaster does meanwhile. Touched from the shard's thread only.
 */
class history {
public:
    /** How a recovery went: every broadcast after `since` is here (or there is none); some are gone (older
     * than the record, or a gap in it); or `since` names another epoch. */
    enum class outcome { recovered, gap, epoch }; // in the order of metrics' recovery_result_names

    history(std::size_t capacity, std::string epoch);

    /** The latest broadcast's position (offset 0: none yet in this epoch). */
    protocol::position const& latest() const noexcept { return latest_; }
    /** Broadcasts held. */
    std::size_t size() const noexcept { return count_; }

    /** Records the broadcast at `at`: the next offset of this epoch, or a later one after broadcasts this
     * shard never saw (the record starts again there), or the first of a new epoch (it starts again). */
    void append(protocol::position const& at, shared_frame frame);

    /** The latest broadcast is at `at` (later than what is recorded, or of a new epoch), and none of those up
     * to it is here: a node that learned its cluster's position without the broadcasts. */
    void skip_to(protocol::position const& at);

    /** Whether a subscriber that stopped at `since` can have everything after it. */
    outcome check(protocol::position const& since) const noexcept;

    /** Calls `send(frame)` for each broadcast after `offset`, oldest first; check() said recovered. */
    template <class Send>
    void replay_after(std::uint64_t offset, Send&& send) const {
        for (std::size_t i = 0; i < count_; ++i) {
            auto const& kept = ring_[(first_ + i) % ring_.size()];
            if (kept.offset > offset) send(kept.frame);
        }
    }

private:
    struct entry {
        std::uint64_t offset = 0;
        shared_frame frame;
    };

    std::vector<entry> ring_; // `capacity` slots
    std::size_t first_ = 0;   // the oldest entry's slot
    std::size_t count_ = 0;
    std::uint64_t complete_after_ = 0; // every broadcast after this offset of the epoch is recorded, or was
    protocol::position latest_;
};

std::string_view to_string(history::outcome result) noexcept;

} // namespace wolf
