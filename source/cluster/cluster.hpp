#pragma once

#include "cluster/redis_url.hpp"
#include "support/net.hpp"

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace wolf {

class redis_client;
class tick_schedule;

/** The names the nodes of a cluster share in Redis, all under one prefix (--redis-prefix, default "wolf"):
 * clusters with different prefixes share a Redis without hearing each other (Pub/Sub ignores databases). */
struct cluster_keys {
    explicit cluster_keys(std::string_view prefix);

    std::string leader;  // the lease: the holder's node id, with a TTL
    std::string tick;    // the last tick number
    std::string channel; // every tick and published message, as JSON
    std::string epoch;   // the name of the broadcasts' sequence
    std::string offset;  // the last broadcast's offset in the epoch
    std::string stream;  // the latest broadcasts, by offset (0-<offset>)
    std::string deck;    // the cluster's deck: a hash of its fingerprint and the index dealt last
    std::string quotes;  // its quotes, a list
    std::string round;   // the indexes left to deal in this round, a list
    std::string claim;   // the fingerprint of the deck the live nodes hold, expiring with a lease
};

/** A deck's fingerprint: 16 hex digits of the SHA-256 of its quotes, in order. */
std::string deck_fingerprint(std::vector<std::string> const& quotes);

/** Whether `prefix` may name a cluster's keys: 1 to 64 letters, digits and "_-.:". */
bool valid_cluster_prefix(std::string_view prefix) noexcept;

/** What arrives on the channel: a tick of the leader, or a message an operator published on some node. */
struct cluster_message {
    std::string text;
    std::optional<std::uint64_t> tick; // absent for an operator's message
    std::string from;                  // the node id of the leader or of the publishing node
    std::string epoch;                 // its position in the cluster's sequence of broadcasts
    std::uint64_t offset = 0;
    // deliver: to this node's subscribers; record: into its history only (the stream read back when it
    // starts or meets a new epoch); position: no broadcast, only the cluster's epoch and latest offset.
    enum class use { deliver, record, position } purpose = use::deliver;
};

struct cluster_options {
    redis_endpoint redis;
    duration interval{5000};
    std::string node_id;       // empty: "<hostname>-<pid>-<random>"
    duration timeout{0};       // for every Redis operation; 0: the interval, at least 500 ms and at most 2 s
    std::size_t history = 100; // broadcasts the stream keeps (about), and a starting node reads back
    std::shared_ptr<net::ssl::context> tls; // for a rediss:// endpoint (make_redis_tls_context)
    std::string prefix = "wolf";            // of every key and the channel (cluster_keys)
    std::vector<std::string> quotes;        // this node's deck (at least one quote); the cluster's must match
};

/**
 * One node of a cluster sharing one broadcast through Redis.
 *
 * Nodes compete for a lease (`SET wolf:leader <node> NX PX <3 intervals>`). The holder is the only one to
 * deal quotes: every interval a Lua script checks it still holds the lease, renews it, deals the next quote
 * of the cluster's deck, takes the next tick number from `wolf:tick` and publishes the tick on
 * `wolf:wisdom`, all in one step, so a node that lost the lease can never publish.
 *
 * The deck lives in Redis (`wolf:deck`, its quotes and what is left of the round), so a new leader goes on
 * with the round: no quote repeats before every quote was dealt, whoever leads. Every node must hold the
 * same quotes; a node whose deck's fingerprint differs from the one the live nodes claim says so (the
 * `deck_mismatch` log, status().deck) and never leads, until no live node holds the claimed deck any more.
 * The others retry the lease when it would expire, so a dead leader is replaced within the lease time, and
 * the counter lives in Redis, so tick numbers keep increasing. Every node, the leader included, subscribes to
 * the channel and hands each message to `deliver`.
 *
 * Every broadcast, a tick or an operator's message (published by a script on any node), takes its position
 * in the same atomic step: the cluster's epoch (`wolf:epoch`, made anew when Redis has none: it came back
 * empty) and the next offset (`wolf:offset`), never at or below what the publishing node has seen; and it is
 * appended to a stream (`wolf:stream`, about `history` entries) as it is published. `deliver` gets each
 * position once, in order: a node that connects reads the stream back, after subscribing and before
 * handing on what the channel brought meanwhile. Back in the epoch it knew, it delivers what it missed;
 * starting, or in a new epoch, it hands the latest entries on for its history only, and then the cluster's
 * position itself (the epoch is made at once if Redis has none), so its clients learn the epoch before the
 * first broadcast.
 *
 * Two connections, one for commands and one in subscribe mode; the command connection is the pair's
 * heartbeat (a subscriber hears nothing while Redis is stopped). When either fails the node drops both,
 * logs once, and reconnects with backoff; its clients never notice but for the ticks the leader skipped while
 * Redis was unreachable, which are skipped, not queued.
 *
 * Runs on one executor (`deliver` is called there); connected(), leader() and try_publish() may be called
 * from any thread. The cluster must outlive its executor's run.
 */
class cluster {
public:
    using delivery = std::function<void(cluster_message)>;

    cluster(net::any_io_executor executor, cluster_options options, delivery deliver);
    ~cluster();
    cluster(cluster const&) = delete;
    cluster& operator=(cluster const&) = delete;

    /** Connects, leads or follows, and reconnects, until stop(). */
    net::awaitable<void> run();
    /** Ends run() soon (a leader first gives its lease up, within the timeout); on the cluster's executor. */
    void stop();

    /** An operator's message for every node's subscribers, published without waiting. False when Redis
     * is not connected or too many are still on their way. From any thread. */
    bool try_publish(std::string text);

    /** Called on the cluster's executor whenever connected() or leader() changes. */
    void on_change(std::function<void()> handler);

    /** The Redis a node talks to, for /healthz, /metrics and logs; from any thread. */
    struct redis_status {
        std::string master;   // host:port of the Redis in use (the last one, while disconnected)
        std::string role;     // what ROLE said of it: "master", or "unknown" when ROLE is not allowed
        std::string sentinel; // host:port of the sentinel that named it, or whose +switch-master is followed
        bool tls = false;     // rediss://
        std::uint64_t failovers = 0; // +switch-master messages about this cluster's master
        std::string deck;        // "shared": this node's deck is the cluster's; "mismatch"; "" not known yet
        std::string fingerprint; // of this node's deck
    };
    redis_status status() const;

    bool connected() const noexcept { return connected_; }
    bool leader() const noexcept { return leader_; }
    std::uint64_t last_tick() const noexcept { return last_tick_; }
    std::string const& node_id() const noexcept { return node_id_; }
    duration timeout() const noexcept { return timeout_; }

    /** At most this many operator messages on their way to Redis at once. */
    static constexpr std::size_t max_publishing = 16;

private:
    net::awaitable<std::string> open();
    net::awaitable<std::string> serve();
    net::awaitable<std::string> try_acquire(tick_schedule& schedule);
    net::awaitable<std::string> tick(tick_schedule& schedule);
    /** Stores this node's deck as the cluster's, unless another is claimed, or stored while another node
     * leads or too soon after connecting (deck_script); the next lease attempt or tick tells which. */
    net::awaitable<std::string> store_deck();
    /** Starts a new round of the deck, never with `last`, the quote dealt last. */
    net::awaitable<std::string> new_round(long long last);
    /** Records whether this node's deck is the cluster's, and logs a change. */
    net::awaitable<void> deck_is(bool shared);
    net::awaitable<void> release();
    net::awaitable<void> publish(std::string text);
    /** What both publishing scripts' arguments end with: the channel, a new epoch if Redis has none, the last
     * position this node saw and the stream's length. */
    void add_position_args(std::vector<std::string>& args) const;
    void on_channel_message(std::string const& payload);
    void connection_lost(std::string why);
    void set_state(bool connected, bool leader);
    /** Reads back the stream (see the class comment), then hands on what the channel held meanwhile. */
    net::awaitable<std::string> catch_up();
    /** With Sentinel: keeps a subscription to +switch-master on one sentinel or the next, until stop(). */
    net::awaitable<void> watch_sentinels();
    void on_switch_master(std::string const& payload);
    /** Hands `message` on unless its position was delivered already; remembers the position. */
    void hand_on(cluster_message message);
    void drop_connections();

    net::any_io_executor executor_;
    cluster_options options_;
    cluster_keys keys_;
    delivery deliver_;
    std::string fingerprint_; // of options_.quotes
    std::string node_id_;
    duration timeout_;
    net::steady_timer wake_; // the session's next step, or the next reconnect; cancelled by stop and loss
    std::shared_ptr<redis_client> commands_;
    std::shared_ptr<redis_client> subscriber_;
    std::string lost_;                        // why a connection of the current session ended
    steady_clock::time_point connected_at_{}; // of the current session
    bool stopped_ = false;
    std::atomic<bool> connected_{false};
    std::atomic<bool> leader_{false};
    std::function<void()> on_change_;
    std::atomic<std::uint64_t> last_tick_{0};
    std::atomic<std::size_t> publishing_{0};
    std::string epoch_;             // of the last position handed on
    std::uint64_t last_offset_ = 0; // the last position handed on
    bool catching_up_ = false;      // the channel's messages wait in held_ while the stream is read
    std::vector<cluster_message> held_;

    mutable std::mutex status_mutex_;
    redis_status status_;                             // master, role, sentinel and deck
    std::mt19937_64 shuffle_{std::random_device{}()}; // the deck's rounds
    std::atomic<std::uint64_t> failovers_{0};
    std::shared_ptr<redis_client> watch_; // the sentinel subscription, with Sentinel
    std::string watch_lost_;              // why it ended
    net::steady_timer watch_wake_;        // the watch's wait: for its loss, or before the next sentinel
    net::steady_timer watch_done_;        // run() waits on it for the watch to end
    bool watching_ = false;
    bool failover_pending_ = false; // a +switch-master came while waiting to reconnect
};

/** A node id for logs and the channel: "<hostname>-<pid>-<4 random hex digits>". */
std::string make_node_id();

} // namespace wolf
