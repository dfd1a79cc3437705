#include "registry.hpp"

#include <cassert>

namespace wolf {

void registry::insert(std::vector<peer*>& set, peer& p, std::size_t peer::*slot) {
    if (p.*slot != peer::no_slot) return;
    p.*slot = set.size();
    set.push_back(&p);
}

void registry::erase(std::vector<peer*>& set, peer& p, std::size_t peer::*slot) {
    auto const index = p.*slot;
    if (index == peer::no_slot) return;
    assert(index < set.size() && set[index] == &p);
    // Swap with the last element so removal is O(1); order does not matter.
    set[index] = set.back();
    set[index]->*slot = index;
    set.pop_back();
    p.*slot = peer::no_slot;
}

void registry::count(std::atomic<std::size_t> pool_counts::*field, int delta) noexcept {
    if (!totals_) return;
    if (delta > 0)
        (totals_->*field).fetch_add(1, std::memory_order_relaxed);
    else
        (totals_->*field).fetch_sub(1, std::memory_order_relaxed);
}

void registry::add(peer& p) {
    if (!is_live(p)) count(&pool_counts::live_, +1);
    if (!is_open(p)) count(&pool_counts::open_, +1);
    insert(live_, p, &peer::live_slot_);
    insert(open_, p, &peer::open_slot_);
}

void registry::begin_close(peer& p) {
    if (is_subscribed(p)) count(&pool_counts::subscribers_, -1);
    erase(subscribers_, p, &peer::subscriber_slot_);
    if (is_open(p)) {
        count(&pool_counts::open_, -1);
        if (totals_) totals_->release(); // the place it took at the upgrade
    }
    erase(open_, p, &peer::open_slot_);
    if (p.ready_) {
        p.ready_ = false;
        --ready_count_;
        count(&pool_counts::ready_, -1);
    }
}

void registry::remove(peer& p) {
    begin_close(p);
    if (is_live(p)) count(&pool_counts::live_, -1);
    erase(live_, p, &peer::live_slot_);
}

bool registry::mark_ready(peer& p) {
    if (p.ready_ || !is_open(p)) return false;
    p.ready_ = true;
    ++ready_count_;
    count(&pool_counts::ready_, +1);
    return true;
}

bool registry::subscribe(peer& p) {
    if (is_subscribed(p) || !is_open(p)) return false;
    insert(subscribers_, p, &peer::subscriber_slot_);
    count(&pool_counts::subscribers_, +1);
    return true;
}

bool registry::unsubscribe(peer& p) {
    if (!is_subscribed(p)) return false;
    erase(subscribers_, p, &peer::subscriber_slot_);
    count(&pool_counts::subscribers_, -1);
    return true;
}

} // namespace wolf
