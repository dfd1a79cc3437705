#pragma once

#include "frame.hpp"
#include "support/net.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wolf {

/**
 * What the registry, the broadcaster and the watchdog know of a connection. websocket_session
 * implements it; tests implement it with fakes.
 */
class peer {
public:
    /** `id` is at most max_id_size characters (a UUID's 36); longer is cut. */
    explicit peer(std::string_view id) noexcept
        : id_size_(static_cast<std::uint8_t>(std::min(id.size(), max_id_size))) {
        id.copy(id_.data(), id_size_);
    }
    peer(peer const&) = delete;
    peer& operator=(peer const&) = delete;
    virtual ~peer() = default;

    std::string_view id() const noexcept { return {id_.data(), id_size_}; }
    steady_clock::time_point last_seen() const noexcept { return last_seen_; }
    void touch(steady_clock::time_point now) noexcept { last_seen_ = now; }

    /** Since when a write has waited on the socket without progress, or nullopt when none waits; the
     * watchdog's write timeout reads it. */
    virtual std::optional<steady_clock::time_point> write_pending_since() const noexcept = 0;

    /**
     * Queues a broadcast frame without waiting. Returns false if the queue was full and the frame was
     * dropped for this connection. Never changes the registry, so callers may iterate it.
     */
    virtual bool offer(shared_frame const& frame) = 0;

    /** Begins the closing handshake. The connection leaves the open set at once. */
    virtual void close(std::uint16_t code, std::string_view reason) = 0;

    /** Drops the connection at once, without a closing handshake. */
    virtual void abort() = 0;

    /** The broadcasts start a new sequence (a cluster's new epoch): offsets the peer knew mean nothing now.
     */
    virtual void epoch_changed() noexcept {}

    /** True when the transport began a close on its own (after a protocol violation) that the registry has
     * not seen yet; the watchdog then takes the connection out of the open set. */
    virtual bool transport_closing() const noexcept { return false; }

private:
    friend class registry;
    static constexpr std::size_t no_slot = std::numeric_limits<std::size_t>::max();

    static constexpr std::size_t max_id_size = 36;
    // Inline: a connection's only string, kept without a heap block of its own.
    std::array<char, max_id_size> id_{};
    std::uint8_t id_size_;
    steady_clock::time_point last_seen_{};
    // Positions in the registry's vectors, for O(1) removal.
    std::size_t live_slot_ = no_slot;
    std::size_t open_slot_ = no_slot;
    std::size_t subscriber_slot_ = no_slot;
    bool ready_ = false;
};

/**
 * The sizes of the pools across every event-loop thread, for /healthz, /metrics and --max-connections:
 * each thread's registry adds and takes away its own changes, so the sums are exact. `admitted` counts
 * upgrades accepted and not yet ended or closing (handshakes under way plus open connections): it is the
 * one number --max-connections is checked against, reserved atomically so two threads cannot both take
 * the last place.
 */
class pool_counts {
public:
    std::size_t connections() const noexcept { return open_.load(std::memory_order_relaxed); }
    std::size_t subscribers() const noexcept { return subscribers_.load(std::memory_order_relaxed); }
    std::size_t ready() const noexcept { return ready_.load(std::memory_order_relaxed); }
    std::size_t live() const noexcept { return live_.load(std::memory_order_relaxed); }
    std::size_t admitted() const noexcept { return admitted_.load(std::memory_order_relaxed); }

    /** Takes a place for a new WebSocket if fewer than `limit` are taken; false (nothing taken) otherwise. */
    bool try_admit(std::size_t limit) noexcept {
        auto taken = admitted_.load(std::memory_order_relaxed);
        do {
            if (taken >= limit) return false;
        } while (!admitted_.compare_exchange_weak(taken, taken + 1, std::memory_order_relaxed));
        return true;
    }
    /** Gives a place back: the handshake failed, or the connection began to close. */
    void release() noexcept { admitted_.fetch_sub(1, std::memory_order_relaxed); }

private:
    friend class registry;
    std::atomic<std::size_t> open_{0};
    std::atomic<std::size_t> subscribers_{0};
    std::atomic<std::size_t> ready_{0};
    std::atomic<std::size_t> live_{0};
    std::atomic<std::size_t> admitted_{0};
};

/**
 * Who is connected: the one source of truth for the broadcaster, the watchdog, /healthz and shutdown.
 *
 * A peer is *live* from the completed handshake until its session ends, and *open* from the handshake
 * until its close begins. Only open peers can be in the ready pool or the subscribers. The registry
 * holds non-owning pointers: a session removes itself before it is destroyed. One registry per event-loop
 * thread, and all calls to it come from that thread; with `totals` it also keeps the server-wide
 * pool_counts in step, and gives a peer's admission back when its close begins.
 */
class registry {
public:
    explicit registry(pool_counts* totals = nullptr) noexcept
        : totals_(totals) {}

    /** The handshake completed: the peer is live and open. */
    void add(peer& p);
    /** The close began: the peer leaves the open set, the ready pool and the subscribers. */
    void begin_close(peer& p);
    /** The session ended: the peer leaves everything. */
    void remove(peer& p);

    /** `connect`: joins the ready pool. Returns true if it was not in it. */
    bool mark_ready(peer& p);
    /** `subscribe`: joins the subscribers. Returns true if it was not subscribed. */
    bool subscribe(peer& p);
    /** `unsubscribe`: leaves the subscribers. Returns true if it was subscribed. */
    bool unsubscribe(peer& p);

    bool is_live(peer const& p) const noexcept { return p.live_slot_ != peer::no_slot; }
    bool is_open(peer const& p) const noexcept { return p.open_slot_ != peer::no_slot; }
    bool is_ready(peer const& p) const noexcept { return p.ready_; }
    bool is_subscribed(peer const& p) const noexcept { return p.subscriber_slot_ != peer::no_slot; }

    std::size_t connections() const noexcept { return open_.size(); }
    std::size_t subscribers() const noexcept { return subscribers_.size(); }
    std::size_t ready() const noexcept { return ready_count_; }
    std::size_t live() const noexcept { return live_.size(); }

    /** Views stay valid until the next call that changes the registry. */
    std::span<peer* const> open_peers() const noexcept { return open_; }
    std::span<peer* const> subscriber_peers() const noexcept { return subscribers_; }
    std::span<peer* const> live_peers() const noexcept { return live_; }

private:
    static void insert(std::vector<peer*>& set, peer& p, std::size_t peer::*slot);
    static void erase(std::vector<peer*>& set, peer& p, std::size_t peer::*slot);

    /** Adds `delta` (+1 or -1) to one of the totals, if there are totals. */
    void count(std::atomic<std::size_t> pool_counts::*field, int delta) noexcept;

    std::vector<peer*> live_;
    std::vector<peer*> open_;
    std::vector<peer*> subscribers_;
    std::size_t ready_count_ = 0;
    pool_counts* totals_;
};

} // namespace wolf
