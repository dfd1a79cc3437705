#include "cluster/cluster.hpp"

#include "cluster/redis_client.hpp"
#include "cluster/sentinel.hpp"
#include "support/async.hpp"
#include "support/entropy.hpp"
#include "support/logger.hpp"
#include "support/tick_schedule.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/json.hpp>
#include <cassert>
#include <cctype>
#include <cstdio>
#include <numeric>
#include <openssl/evp.h>
#include <random>
#include <stdexcept>
#include <unistd.h>
#include <vector>

namespace wolf {
namespace {

constexpr duration first_backoff{100};
constexpr duration max_backoff{2000};

// Takes the lease if it is free (the SET NX PX every node competes with) or renews it if this node already
// holds it (a SET that Redis ran after this node had given up waiting for it), once the deck is checked: a
// node leads only with the cluster's deck (see deck_script). {1} when this node holds the lease now, else
// {0, the holder's milliseconds left}; {3} the cluster deals another deck (a lease this node still held is
// given up); {4} the deck must be stored first.
// KEYS[1] the lease, KEYS[2] the deck's claim, KEYS[3] the deck; ARGV[1] this node, ARGV[2] the lease in ms,
// ARGV[3] this node's deck fingerprint.
constexpr char const* acquire_script = R"lua(
local claim = redis.call('GET', KEYS[2])
if claim and claim ~= ARGV[3] then
    if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
    return {3}
end
if redis.call('HGET', KEYS[3], 'fingerprint') ~= ARGV[3] then return {4} end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1}
end
return {0, redis.call('PTTL', KEYS[1])}
)lua";

// The cluster's deck lives in Redis: its quotes (a list), the fingerprint of those (the deck hash's
// `fingerprint`, beside `last`, the index dealt last), what is left of the round (a list of indexes) and the
// claim: the fingerprint of the nodes alive, refreshed with every lease attempt and tick of a node holding
// that deck and expiring with a lease, so a deck no live node holds gives way. This stores this node's
// deck unless another is claimed, or another is stored and either another node holds the lease or this node
// has not been connected long enough for the stored deck's holders to have come back after an outage
// (ARGV[4] "0"). {3} another deck is the cluster's; {1, 1} stored anew (the round starts again); {1, 0} it
// was there. KEYS[1] the claim, KEYS[2] the deck, KEYS[3] the quotes, KEYS[4] the round, KEYS[5] the lease;
// ARGV[1] the fingerprint, ARGV[2] the claim's time in ms, ARGV[3] this node, ARGV[4] "1" when it may
// replace another deck, ARGV[5...] the quotes.
constexpr char const* deck_script = R"lua(
local claim = redis.call('GET', KEYS[1])
if claim and claim ~= ARGV[1] then return {3} end
local stored = redis.call('HGET', KEYS[2], 'fingerprint')
if stored and stored ~= ARGV[1] then
    local holder = redis.call('GET', KEYS[5])
    if ARGV[4] ~= '1' or (holder and holder ~= ARGV[3]) then return {3} end
end
local changed = 0
if stored ~= ARGV[1] or redis.call('LLEN', KEYS[3]) ~= #ARGV - 4 then
    redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
    for i = 5, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
    redis.call('HSET', KEYS[2], 'fingerprint', ARGV[1])
    changed = 1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, changed}
)lua";

// A new round when the last is dealt: the order the node shuffled, unless another node's is there already.
// {1}; {4} the deck is not this node's (the tick checks again). KEYS[1] the deck, KEYS[2] the quotes,
// KEYS[3] the round; ARGV[1] the fingerprint, ARGV[2...] the quotes' indexes in the new order.
constexpr char const* round_script = R"lua(
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] or redis.call('LLEN', KEYS[2]) ~= #ARGV - 1 then
    return {4}
end
if redis.call('LLEN', KEYS[3]) == 0 then
    for i = 2, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
end
return {1}
)lua";

// What both publishing scripts do, in the same atomic step as the PUBLISH: position(...) takes the epoch
// (made from `candidate` when Redis has none: it came back empty, so the offsets and the stream start
// again) and the next offset, never at or below the last this node has seen of the epoch, nor at or below
// the stream's last entry (a write that replication had not carried over must not make numbers go back);
// append(...) adds the broadcast to the stream as entry 0-<offset>, about `history` of them kept.
constexpr std::string_view position_lua = R"lua(
local function position(epoch_key, offset_key, stream_key, candidate, seen_epoch, seen_offset)
    local epoch = redis.call('GET', epoch_key)
    if not epoch then
        epoch = candidate
        redis.call('SET', epoch_key, epoch)
        redis.call('DEL', offset_key, stream_key)
    end
    local offset = redis.call('INCR', offset_key)
    local least = 0
    if epoch == seen_epoch then least = tonumber(seen_offset) end
    local top = redis.call('XREVRANGE', stream_key, '+', '-', 'COUNT', 1)[1]
    if top then least = math.max(least, tonumber(string.match(top[1], '%-(%d+)$'))) end
    if offset <= least then
        offset = least + 1
        redis.call('SET', offset_key, offset)
    end
    return epoch, offset
end
local function append(stream_key, history, offset, payload)
    if tonumber(history) > 0 then
        redis.call('XADD', stream_key, 'MAXLEN', '~', history, '0-' .. offset, 'm', payload)
    end
end
)lua";

// One tick of the leader, atomically: check the lease is still this node's and renew it, with the deck's
// claim (a late tick too); deal the deck's next quote; take the next tick number (never below what this node
// has seen: Redis may have restarted without its data) and the next position; append; publish. A tick that
// reaches Redis much later than the leader's schedule allows (it sat in a socket while Redis was stopped)
// renews the lease but is not published: ticks missed in an outage are skipped, not replayed. {0} the lease
// is someone else's; {2} late, skipped; {1, tick} published; {3} another deck is the cluster's: the lease is
// given up; {4} the deck must be stored (deck_script); {5, last} the round is dealt, a new one is needed
// (round_script). KEYS[1] the lease, KEYS[2] the tick counter, KEYS[3] the epoch, KEYS[4] the offset, KEYS[5]
// the stream, KEYS[6] the deck's claim, KEYS[7] the deck, KEYS[8] the quotes, KEYS[9] the round; ARGV[1] this
// node, ARGV[2] the lease in ms, ARGV[3] the least lease left for a tick on time, ARGV[4] the last tick this
// node saw, ARGV[5] the deck's fingerprint, ARGV[6] the channel, ARGV[7] a new epoch if Redis has none,
// ARGV[8] and ARGV[9] the last position this node saw, ARGV[10] the stream's length.
constexpr std::string_view tick_lua = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local claim = redis.call('GET', KEYS[6])
if claim and claim ~= ARGV[5] then
    redis.call('DEL', KEYS[1])
    return {3}
end
local left = redis.call('PTTL', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[6], ARGV[5], 'PX', ARGV[2])
if left < tonumber(ARGV[3]) then return {2} end
if redis.call('HGET', KEYS[7], 'fingerprint') ~= ARGV[5] then return {4} end
local index = redis.call('LPOP', KEYS[9])
if not index then return {5, tonumber(redis.call('HGET', KEYS[7], 'last') or '-1')} end
local quote = redis.call('LINDEX', KEYS[8], index)
if not quote then return {4} end
redis.call('HSET', KEYS[7], 'last', index)
local tick = redis.call('INCR', KEYS[2])
local seen = tonumber(ARGV[4])
if tick <= seen then
    tick = seen + 1
    redis.call('SET', KEYS[2], tick)
end
local epoch, offset = position(KEYS[3], KEYS[4], KEYS[5], ARGV[7], ARGV[8], ARGV[9])
local payload = cjson.encode({tick = tick, message = quote, leader = ARGV[1], epoch = epoch, offset = offset})
append(KEYS[5], ARGV[10], offset, payload)
redis.call('PUBLISH', ARGV[6], payload)
return {1, tick}
)lua";

// An operator's message, from any node, atomically: the next position, append, publish. {1, offset}.
// KEYS[1] the epoch, KEYS[2] the offset, KEYS[3] the stream; ARGV[1] the message, ARGV[2] this node,
// ARGV[3] the channel, ARGV[4] a new epoch if Redis has none, ARGV[5] and ARGV[6] the last position this node
// saw, ARGV[7] the stream's length.
constexpr std::string_view publish_lua = R"lua(
local epoch, offset = position(KEYS[1], KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[6])
local payload = cjson.encode({message = ARGV[1], node = ARGV[2], epoch = epoch, offset = offset})
append(KEYS[3], ARGV[7], offset, payload)
redis.call('PUBLISH', ARGV[3], payload)
return {1, offset}
)lua";

// The cluster's position as a node (re)connects: the epoch (made now from ARGV[1] if Redis has none, the
// offsets and the stream starting again) and the latest offset. {epoch, offset}.
// KEYS[1] the epoch, KEYS[2] the offset, KEYS[3] the stream.
constexpr char const* where_script = R"lua(
local epoch = redis.call('GET', KEYS[1])
if not epoch then
    epoch = ARGV[1]
    redis.call('SET', KEYS[1], epoch)
    redis.call('DEL', KEYS[2], KEYS[3])
end
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '0')}
)lua";

std::string const tick_script = std::string(position_lua) + std::string(tick_lua);
std::string const publish_script = std::string(position_lua) + std::string(publish_lua);

// Gives the lease up if this node still holds it, so a node that shuts down hands over at once.
// KEYS[1] the lease; ARGV[1] this node.
constexpr char const* release_script = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

/** The script's {code, value} reply; nullopt if it is not one (a Redis error, a bug). */
std::optional<std::pair<long long, long long>> script_reply(redis_reply const& reply) {
    if (reply.type != redis_reply::kind::array || reply.elements.empty()) return std::nullopt;
    for (auto const& element : reply.elements)
        if (element.type != redis_reply::kind::integer) return std::nullopt;
    return std::pair{reply.elements[0].integer, reply.elements.size() > 1 ? reply.elements[1].integer : 0};
}

std::string describe(redis_reply const& reply) {
    return reply.type == redis_reply::kind::error ? reply.text : "unexpected reply";
}

/** A positive whole number as cjson writes one (an integer, or a double for Lua's numbers), or nullopt. */
std::optional<std::uint64_t> whole_number(boost::json::value const* value) {
    if (!value) return std::nullopt;
    if (value->is_int64() && value->get_int64() > 0) return static_cast<std::uint64_t>(value->get_int64());
    if (value->is_uint64() && value->get_uint64() > 0) return value->get_uint64();
    if (value->is_double() && value->get_double() >= 1)
        return static_cast<std::uint64_t>(value->get_double());
    return std::nullopt;
}

/** A broadcast as the scripts encode it, on the channel and in the stream; nullopt if it is not one. */
std::optional<cluster_message> parse_broadcast(std::string_view payload) {
    boost::json::error_code ec;
    auto const value = boost::json::parse(payload, ec);
    auto const* object = value.if_object();
    if (ec || !object) return std::nullopt;
    auto const* message = object->if_contains("message");
    auto const* epoch = object->if_contains("epoch");
    auto const offset = whole_number(object->if_contains("offset"));
    if (!message || !message->is_string() || !epoch || !epoch->is_string() || !offset) return std::nullopt;
    cluster_message parsed{std::string(message->get_string()),
                           whole_number(object->if_contains("tick")),
                           {},
                           std::string(epoch->get_string()),
                           *offset};
    for (auto const* key : {"leader", "node"})
        if (auto const* from = object->if_contains(key); from && from->is_string())
            parsed.from = std::string(from->get_string());
    return parsed;
}

/** The payloads of an XRANGE or XREVRANGE reply: [[id, [field, value, ...]], ...], the value of field m. */
std::vector<std::string_view> stream_payloads(redis_reply const& reply) {
    std::vector<std::string_view> payloads;
    if (reply.type != redis_reply::kind::array) return payloads;
    for (auto const& entry : reply.elements) {
        if (entry.elements.size() != 2) continue;
        auto const& fields = entry.elements[1].elements;
        for (std::size_t i = 0; i + 1 < fields.size(); i += 2)
            if (fields[i].text == "m") payloads.push_back(fields[i + 1].text);
    }
    return payloads;
}

duration jittered(duration d) {
    static std::minstd_rand rng{std::random_device{}()};
    // Half fixed, half random: nodes that lost Redis together do not all come back at the same moment.
    return d / 2 + duration{std::uniform_int_distribution<duration::rep>(0, d.count() / 2)(rng)};
}

} // namespace

std::string make_node_id() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        std::snprintf(host, sizeof host, "node");
    std::random_device random;
    char suffix[8];
    std::snprintf(suffix, sizeof suffix, "%04x", static_cast<unsigned>(random() & 0xffff));
    return std::string(host) + "-" + std::to_string(::getpid()) + "-" + suffix;
}

cluster::cluster(net::any_io_executor executor, cluster_options options, delivery deliver)
    : executor_(executor)
    , options_(std::move(options))
    , keys_(options_.prefix)
    , deliver_(std::move(deliver))
    , fingerprint_(deck_fingerprint(options_.quotes))
    , node_id_(options_.node_id.empty() ? make_node_id() : options_.node_id)
    , timeout_(options_.timeout.count() > 0 ? options_.timeout
                                            : std::clamp(options_.interval, duration{500}, duration{2000}))
    , wake_(executor)
    , watch_wake_(executor)
    , watch_done_(executor) {
    assert(!options_.quotes.empty());
    status_.fingerprint = fingerprint_;
}

cluster_keys::cluster_keys(std::string_view prefix)
    : leader(std::string(prefix) + ":leader")
    , tick(std::string(prefix) + ":tick")
    , channel(std::string(prefix) + ":wisdom")
    , epoch(std::string(prefix) + ":epoch")
    , offset(std::string(prefix) + ":offset")
    , stream(std::string(prefix) + ":stream")
    , deck(std::string(prefix) + ":deck")
    , quotes(std::string(prefix) + ":deck:quotes")
    , round(std::string(prefix) + ":deck:round")
    , claim(std::string(prefix) + ":deck:claim") {
}

std::string deck_fingerprint(std::vector<std::string> const& quotes) {
    // Each quote with its length before it, so no two decks run together into the same bytes.
    std::string bytes;
    for (auto const& quote : quotes)
        bytes.append(std::to_string(quote.size())).append(":").append(quote);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) != 1 || size < 8)
        throw std::runtime_error("SHA-256 failed");
    std::string hex;
    for (std::size_t i = 0; i < 8; ++i) {
        char two[3];
        std::snprintf(two, sizeof two, "%02x", digest[i]);
        hex += two;
    }
    return hex;
}

bool valid_cluster_prefix(std::string_view prefix) noexcept {
    if (prefix.empty() || prefix.size() > 64) return false;
    return std::all_of(prefix.begin(), prefix.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':';
    });
}

cluster::~cluster() {
    drop_connections();
}

net::awaitable<void> cluster::run() {
    if (!options_.redis.sentinels.empty()) {
        watching_ = true;
        net::co_spawn(executor_, watch_sentinels(), [this](std::exception_ptr error) {
            watching_ = false;
            watch_done_.cancel();
            if (error) log_failure("sentinel_watch", error);
        });
    }
    auto backoff = first_backoff;
    bool logged_down = false; // the last state change logged was a loss (or the first attempt failing)
    while (!stopped_) {
        auto failure = co_await open();
        if (failure.empty() && !stopped_) {
            connected_at_ = steady_clock::now();
            set_state(true, false);
            logged_down = false;
            backoff = first_backoff;
            auto const now = status();
            log_info("broker_connected", kv("redis", options_.redis.display()), kv("node", node_id_),
                     kv("master", now.master), kv("role", now.role), kv("tls", options_.redis.tls));
            failure = co_await serve();
            set_state(false, leader_);
            if (stopped_ && leader_) co_await release();
            set_state(false, false);
        }
        drop_connections();
        if (stopped_) break;

        auto const delay = jittered(backoff);
        auto const retry_ms = std::chrono::duration_cast<std::chrono::milliseconds>(delay).count();
        if (!logged_down)
            log_warn("broker_disconnected", kv("redis", options_.redis.display()), kv("error", failure),
                     kv("retry_ms", retry_ms));
        else
            log_debug("broker_retry", kv("error", failure), kv("retry_ms", retry_ms));
        logged_down = true;
        wake_.expires_after(delay);
        co_await wake_.async_wait(use_nothrow);
        // The sentinels named a new master meanwhile: try it at once, and soon again.
        backoff =
            std::exchange(failover_pending_, false) ? first_backoff : std::min(backoff * 2, max_backoff);
    }
    set_state(false, false);
    // The sentinel watch ends with the cluster.
    watch_wake_.cancel();
    if (watch_) watch_->close();
    while (watching_) {
        watch_done_.expires_at(steady_clock::time_point::max());
        co_await watch_done_.async_wait(use_nothrow);
    }
}

net::awaitable<void> cluster::watch_sentinels() {
    auto const count = options_.redis.sentinels.size();
    std::size_t index = 0;
    bool logged_down = false;
    while (!stopped_) {
        auto const sentinel = sentinel_endpoint(options_.redis, index);
        auto client = std::make_shared<redis_client>(executor_, timeout_, options_.tls.get());
        watch_ = client;
        watch_lost_.clear();
        client->on_lost([this](std::string why) {
            watch_lost_ = std::move(why);
            watch_wake_.cancel();
        });
        auto failure = co_await client->connect(sentinel);
        if (failure.empty() && !stopped_) {
            redis_client::message_handler on_switch = [this](std::string, std::string payload) {
                on_switch_master(payload);
            };
            std::string channel = "+switch-master";
            failure = co_await client->subscribe(std::move(channel), std::move(on_switch));
        }
        if (failure.empty() && !stopped_) {
            {
                std::lock_guard lock(status_mutex_);
                status_.sentinel = sentinel.address();
            }
            log_info("sentinel_watching", kv("sentinel", sentinel.address()),
                     kv("master_name", options_.redis.master_name));
            logged_down = false;
            if (watch_lost_.empty()) {
                watch_wake_.expires_at(steady_clock::time_point::max());
                co_await watch_wake_.async_wait(use_nothrow);
            }
            failure = watch_lost_;
        }
        client->close();
        watch_.reset();
        if (stopped_) break;
        // Another sentinel, after a pause: the master's connection does not depend on this one.
        if (!logged_down) log_warn("sentinel_lost", kv("sentinel", sentinel.address()), kv("error", failure));
        logged_down = true;
        index = (index + 1) % count;
        watch_wake_.expires_after(jittered(std::min(options_.interval, max_backoff)));
        co_await watch_wake_.async_wait(use_nothrow);
    }
}

void cluster::on_switch_master(std::string const& payload) {
    auto const to = parse_switch_master(payload, options_.redis.master_name);
    if (!to) return;
    ++failovers_;
    redis_endpoint master;
    master.host = to->host;
    master.port = to->port;
    auto const address = master.address();
    log_info("failover", kv("master_name", options_.redis.master_name), kv("master", address),
             kv("node", node_id_));
    std::string current;
    {
        std::lock_guard lock(status_mutex_);
        current = connected_ ? status_.master : std::string();
    }
    if (current == address) return; // already there
    if (connected_) {
        connection_lost("failover: the sentinels made " + address + " the master");
    } else {
        failover_pending_ = true; // waiting to retry: retry now
        wake_.cancel();
    }
}

cluster::redis_status cluster::status() const {
    std::lock_guard lock(status_mutex_);
    auto copy = status_;
    copy.tls = options_.redis.tls;
    copy.failovers = failovers_.load();
    return copy;
}

void cluster::on_change(std::function<void()> handler) {
    on_change_ = std::move(handler);
}

void cluster::set_state(bool connected, bool leader) {
    bool const changed = connected != connected_ || leader != leader_;
    connected_ = connected;
    leader_ = leader;
    if (changed && on_change_) on_change_();
}

void cluster::stop() {
    stopped_ = true;
    wake_.cancel();
    watch_wake_.cancel();
    if (watch_) watch_->close();
    if (subscriber_) subscriber_->close();
    // A leader keeps its command connection for one more command: giving the lease up (run() does).
    if (commands_ && !leader_) commands_->close();
}

net::awaitable<void> cluster::release() {
    if (!commands_ || !commands_->connected()) co_return;
    std::vector<std::string> args{"EVAL", release_script, "1", keys_.leader, node_id_};
    auto const result = co_await commands_->command(std::move(args));
    if (result.ok() && result.reply.type == redis_reply::kind::integer && result.reply.integer == 1)
        log_info("leader_released", kv("node", node_id_));
}

bool cluster::try_publish(std::string text) {
    if (!connected_) return false;
    if (publishing_.fetch_add(1) >= max_publishing) {
        --publishing_;
        return false;
    }
    net::co_spawn(executor_, publish(std::move(text)), log_and_contain{"cluster_publish"});
    return true;
}

net::awaitable<void> cluster::publish(std::string text) {
    auto const commands = commands_; // this message's connection, even if a reconnect replaces it
    if (commands && commands->connected()) {
        // Named, not braced temporaries inside co_await: GCC 12 destroys those twice (PR 99576).
        std::vector<std::string> args{"EVAL",       publish_script, "3",  keys_.epoch,
                                      keys_.offset, keys_.stream,   text, node_id_};
        add_position_args(args);
        auto const result = co_await commands->command(std::move(args));
        if (!result.ok() || !script_reply(result.reply))
            log_warn("publish_failed", kv("error", result.ok() ? describe(result.reply) : result.failure));
    } else {
        log_warn("publish_failed", kv("error", "not connected"));
    }
    --publishing_;
}

void cluster::add_position_args(std::vector<std::string>& args) const {
    for (auto&& arg : {keys_.channel, random_hex(8), epoch_, std::to_string(last_offset_),
                       std::to_string(options_.history)})
        args.push_back(arg);
}

net::awaitable<std::string> cluster::open() {
    lost_.clear();
    commands_ = std::make_shared<redis_client>(executor_, timeout_, options_.tls.get());
    subscriber_ = std::make_shared<redis_client>(executor_, timeout_, options_.tls.get());
    auto const commands = commands_;
    auto const subscriber = subscriber_;
    commands->on_lost([this](std::string why) { connection_lost(std::move(why)); });
    subscriber->on_lost([this](std::string why) { connection_lost("subscriber: " + std::move(why)); });

    // With Sentinel, the master the sentinels name now; else the URL's Redis.
    auto target = options_.redis;
    std::string sentinel;
    if (!target.sentinels.empty()) {
        auto asked = co_await ask_sentinels(executor_, options_.redis, timeout_, options_.tls.get());
        if (auto const* why = std::get_if<std::string>(&asked)) co_return *why;
        auto& answer = std::get<sentinel_answer>(asked);
        target = std::move(answer.master);
        sentinel = options_.redis.sentinels[answer.sentinel].host + ":" +
                   std::to_string(options_.redis.sentinels[answer.sentinel].port);
    }
    if (auto why = co_await commands->connect(target); !why.empty()) co_return why;
    // A replica never gets a write: the node checks that it talks to the master (with Sentinel, whose view
    // may be a moment old, this is required; a Redis that does not allow ROLE is taken at its word).
    std::vector<std::string> role_args{"ROLE"};
    auto const role_result = co_await commands->command(std::move(role_args));
    if (!role_result.ok()) co_return role_result.failure;
    std::string role;
    if (auto const& reply = role_result.reply;
        reply.type == redis_reply::kind::array && !reply.elements.empty())
        role = reply.elements[0].text;
    if (role != "master" && (!target.sentinels.empty() || !role.empty()))
        co_return target.address() + " is " + (role.empty() ? std::string("not known to be") : "a " + role) +
            ", not the master";
    if (auto why = co_await subscriber->connect(target); !why.empty()) co_return why;
    {
        std::lock_guard lock(status_mutex_);
        status_.master = target.address();
        status_.role = role.empty() ? "unknown" : role;
        if (!sentinel.empty()) status_.sentinel = sentinel;
    }
    std::string channel(keys_.channel);
    redis_client::message_handler on_message = [this](std::string, std::string payload) {
        on_channel_message(payload);
    };
    // Subscribed first, the channel's messages held, then the stream read back: nothing falls between.
    catching_up_ = true;
    held_.clear();
    if (auto why = co_await subscriber->subscribe(std::move(channel), std::move(on_message)); !why.empty())
        co_return why;
    co_return co_await catch_up();
}

net::awaitable<std::string> cluster::catch_up() {
    std::vector<std::string> where{"EVAL",       where_script, "3",          keys_.epoch,
                                   keys_.offset, keys_.stream, random_hex(8)};
    auto const position = co_await commands_->command(std::move(where));
    if (!position.ok()) co_return position.failure;
    auto const& reply = position.reply;
    if (reply.type != redis_reply::kind::array || reply.elements.size() != 2 ||
        reply.elements[0].type != redis_reply::kind::string ||
        reply.elements[1].type != redis_reply::kind::integer)
        co_return "position: " + describe(reply);
    auto const epoch = reply.elements[0].text;
    auto const latest = static_cast<std::uint64_t>(std::max(0LL, reply.elements[1].integer));
    bool const same_epoch = epoch == epoch_;
    // The latest `--history` entries (none with --history 0): back in the epoch it knew, those after the last
    // position it handed on; starting, or in another epoch, the latest of all. Never more, whatever the
    // others' --history: they must fit the broadcaster's inbox beside what the channel brings meanwhile.
    redis_result entries;
    if (options_.history > 0) {
        std::vector<std::string> range{
            "XREVRANGE", keys_.stream,
            "+",         same_epoch ? "0-" + std::to_string(last_offset_ + 1) : "-",
            "COUNT",     std::to_string(options_.history)};
        entries = co_await commands_->command(std::move(range));
        if (!entries.ok()) co_return entries.failure;
    }
    auto payloads = stream_payloads(entries.reply);
    std::reverse(payloads.begin(), payloads.end());
    // Where this node joins a sequence it did not know: the latest position when it asked, or just before
    // the first broadcast the channel has brought since it subscribed, if that is older. Before it, the
    // history only; after it, delivered: a broadcast made after the subscription is never only recorded.
    auto joined = latest;
    for (auto const& message : held_)
        if (message.epoch == epoch) {
            joined = std::min(joined, message.offset - 1);
            break;
        }
    std::size_t read_back = 0;
    for (auto const payload : payloads)
        if (auto message = parse_broadcast(payload)) {
            bool const deliver = same_epoch || message->offset > joined;
            message->purpose = deliver ? cluster_message::use::deliver : cluster_message::use::record;
            hand_on(std::move(*message));
            ++read_back;
        }
    // The position itself, when the stream did not reach it (it is empty, or trimmed): what `initial` says.
    // Not past a broadcast the channel holds, which is still to be delivered.
    hand_on({{}, {}, {}, epoch, joined, cluster_message::use::position});
    if (read_back > 0)
        log_info("broker_caught_up", kv("node", node_id_), kv("entries", read_back),
                 kv("delivered", same_epoch), kv("offset", last_offset_));
    catching_up_ = false;
    for (auto& message : std::exchange(held_, {}))
        hand_on(std::move(message));
    co_return std::string();
}

void cluster::hand_on(cluster_message message) {
    if (message.epoch == epoch_ && message.offset <= last_offset_) return; // handed on already
    epoch_ = message.epoch;
    last_offset_ = message.offset;
    if (message.tick) last_tick_ = std::max<std::uint64_t>(last_tick_, *message.tick);
    deliver_(std::move(message));
}

net::awaitable<std::string> cluster::serve() {
    // A follower's next lease attempt, or the leader's next tick: drift-free, like the single node's ticker.
    tick_schedule schedule(steady_clock::now(), options_.interval);
    for (;;) {
        wake_.expires_at(schedule.next());
        co_await wake_.async_wait(use_nothrow);
        if (stopped_) co_return std::string();
        if (!lost_.empty()) co_return lost_;
        std::string failure;
        if (leader_)
            failure = co_await tick(schedule);
        else
            failure = co_await try_acquire(schedule);
        if (stopped_) co_return std::string();
        if (!failure.empty()) co_return failure;
        if (!lost_.empty()) co_return lost_;
    }
}

net::awaitable<std::string> cluster::try_acquire(tick_schedule& schedule) {
    auto const lease = options_.interval * 3;
    std::optional<std::pair<long long, long long>> reply;
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::vector<std::string> args{"EVAL",      acquire_script, "3",      keys_.leader,
                                      keys_.claim, keys_.deck,     node_id_, std::to_string(lease.count()),
                                      fingerprint_};
        auto const result = co_await commands_->command(std::move(args));
        if (!result.ok()) co_return result.failure;
        reply = script_reply(result.reply);
        if (!reply) co_return "lease: " + describe(result.reply);
        if (reply->first != 4) break;
        // The deck is not in Redis (a new cluster, an emptied Redis, a deck no live node holds any more).
        if (auto failure = co_await store_deck(); !failure.empty()) co_return failure;
    }

    auto const now = steady_clock::now();
    if (reply->first == 1) {
        co_await deck_is(true);
        set_state(true, true);
        log_info("leader_acquired", kv("node", node_id_), kv("last_tick", last_tick_.load()));
        schedule.reschedule(now); // the first tick at once: the old leader's are already late
        co_return std::string();
    }
    if (reply->first == 3 || reply->first == 4) {
        co_await deck_is(false); // another deck is the cluster's: try again in an interval
        schedule.reschedule(now + options_.interval);
        co_return std::string();
    }
    co_await deck_is(true);
    // Try again the moment the holder's lease would expire, or in one interval if it renews it meanwhile.
    auto const left = reply->second >= 0 ? duration{reply->second + 1} : options_.interval;
    schedule.reschedule(now + std::min(left, options_.interval));
    co_return std::string();
}

net::awaitable<std::string> cluster::store_deck() {
    auto const lease = options_.interval * 3;
    // Another deck stored in Redis gives way only when its holders have had the time to come back after an
    // outage: their longest backoff and a lease after this node connected.
    bool const may_replace = steady_clock::now() - connected_at_ >= max_backoff + lease;
    std::vector<std::string> args{"EVAL",       deck_script,
                                  "5",          keys_.claim,
                                  keys_.deck,   keys_.quotes,
                                  keys_.round,  keys_.leader,
                                  fingerprint_, std::to_string(lease.count()),
                                  node_id_,     may_replace ? "1" : "0"};
    args.insert(args.end(), options_.quotes.begin(), options_.quotes.end());
    auto const result = co_await commands_->command(std::move(args));
    if (!result.ok()) co_return result.failure;
    auto const reply = script_reply(result.reply);
    if (!reply) co_return "deck: " + describe(result.reply);
    if (reply->first == 1 && reply->second == 1)
        log_info("deck_stored", kv("node", node_id_), kv("fingerprint", fingerprint_),
                 kv("quotes", options_.quotes.size()));
    co_return std::string();
}

net::awaitable<std::string> cluster::new_round(long long last) {
    std::vector<std::size_t> order(options_.quotes.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), shuffle_);
    // Never the last round's last quote first (as quote_deck does).
    if (order.size() > 1 && static_cast<long long>(order.front()) == last)
        std::swap(order.front(), order.back());
    std::vector<std::string> args{"EVAL",       round_script, "3",         keys_.deck,
                                  keys_.quotes, keys_.round,  fingerprint_};
    for (auto const index : order)
        args.push_back(std::to_string(index));
    auto const result = co_await commands_->command(std::move(args));
    if (!result.ok()) co_return result.failure;
    auto const reply = script_reply(result.reply);
    if (!reply) co_return "round: " + describe(result.reply);
    // The deck's quotes are gone or short (evicted, deleted): stored again, the tick deals from a new round.
    if (reply->first == 4) co_return co_await store_deck();
    co_return std::string();
}

net::awaitable<void> cluster::deck_is(bool shared) {
    std::string const state = shared ? "shared" : "mismatch";
    std::string before;
    {
        std::lock_guard lock(status_mutex_);
        before = std::exchange(status_.deck, state);
    }
    if (before == state) co_return;
    if (shared) {
        if (!before.empty()) log_info("deck_matched", kv("node", node_id_), kv("fingerprint", fingerprint_));
        co_return;
    }
    // Which deck the cluster deals, for the operator to compare.
    std::vector<std::string> args{"GET", keys_.claim};
    auto const claimed = co_await commands_->command(std::move(args));
    auto const theirs = claimed.ok() && claimed.reply.type == redis_reply::kind::string ? claimed.reply.text
                                                                                        : std::string("none");
    log_warn("deck_mismatch", kv("node", node_id_), kv("fingerprint", fingerprint_), kv("cluster", theirs),
             kv("quotes", options_.quotes.size()));
}

net::awaitable<std::string> cluster::tick(tick_schedule& schedule) {
    auto const lease = options_.interval * 3;
    auto const least_left =
        lease - options_.interval - options_.interval / 2; // half an interval late at most
    std::optional<std::pair<long long, long long>> reply;
    // At most once each: store the deck (Redis lost it), then start a new round.
    for (int attempt = 0; attempt < 3; ++attempt) {
        std::vector<std::string> args{"EVAL",
                                      tick_script,
                                      "9",
                                      keys_.leader,
                                      keys_.tick,
                                      keys_.epoch,
                                      keys_.offset,
                                      keys_.stream,
                                      keys_.claim,
                                      keys_.deck,
                                      keys_.quotes,
                                      keys_.round,
                                      node_id_,
                                      std::to_string(lease.count()),
                                      std::to_string(least_left.count()),
                                      std::to_string(last_tick_.load()),
                                      fingerprint_};
        add_position_args(args);
        auto const result = co_await commands_->command(std::move(args));
        if (!result.ok()) co_return result.failure;
        reply = script_reply(result.reply);
        if (!reply) co_return "tick: " + describe(result.reply);
        std::string failure;
        if (reply->first == 4)
            failure = co_await store_deck();
        else if (reply->first == 5)
            failure = co_await new_round(reply->second);
        else
            break;
        if (!failure.empty()) co_return failure;
    }

    auto const now = steady_clock::now();
    if (reply->first == 0 || reply->first == 3 || reply->first == 4) {
        if (reply->first == 4) co_await release(); // its deck is not the one stored: another takes over
        set_state(true, false);
        log_info("leader_lost", kv("node", node_id_));
        if (reply->first != 0) co_await deck_is(false);
        schedule.reschedule(reply->first == 0 ? now : now + options_.interval);
        co_return std::string();
    }
    if (reply->first == 5) co_return "tick: the deck's round could not be started";
    if (reply->first == 2)
        log_warn("tick_skipped", kv("reason", "late"), kv("node", node_id_));
    else if (reply->second > 0)
        last_tick_ = std::max<std::uint64_t>(last_tick_, static_cast<std::uint64_t>(reply->second));
    schedule.advance(now);
    co_return std::string();
}

void cluster::on_channel_message(std::string const& payload) {
    auto message = parse_broadcast(payload);
    if (!message) {
        log_warn("broker_bad_message", kv("channel", keys_.channel), kv("bytes", payload.size()));
        return;
    }
    if (catching_up_)
        held_.push_back(std::move(*message));
    else
        hand_on(std::move(*message));
}

void cluster::connection_lost(std::string why) {
    if (lost_.empty()) lost_ = std::move(why);
    wake_.cancel();
}

void cluster::drop_connections() {
    if (commands_) commands_->close();
    if (subscriber_) subscriber_->close();
    commands_.reset();
    subscriber_.reset();
}

} // namespace wolf
