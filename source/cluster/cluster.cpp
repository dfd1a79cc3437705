#include "cluster/cluster.hpp"

#include "cluster/redis_client.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"
#include "support/tick_schedule.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <random>
#include <unistd.h>
#include <vector>

namespace wolf {
namespace {

constexpr duration first_backoff{100};
constexpr duration max_backoff{2000};

// Takes the lease if it is free (the SET NX PX every node competes with) or renews it if this node already
// holds it (a SET that Redis ran after this node had given up waiting for it). {1} when this node holds
// the lease now, else {0, the holder's milliseconds left}.
// KEYS[1] the lease; ARGV[1] this node, ARGV[2] the lease in ms.
constexpr char const* acquire_script = R"lua(
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1}
end
return {0, redis.call('PTTL', KEYS[1])}
)lua";

// One tick of the leader, atomically: check the lease is still this node's and renew it; take the next
// tick number (never below what this node has seen: Redis may have restarted without its data); publish.
// A tick that reaches Redis much later than the leader's schedule allows (it sat in a socket while Redis
// was stopped) renews the lease but is not published: ticks missed in an outage are skipped, not replayed.
// {0} the lease is someone else's; {2} late, skipped; {1, tick} published.
// KEYS[1] the lease, KEYS[2] the counter; ARGV[1] this node, ARGV[2] the lease in ms, ARGV[3] the least
// lease left for a tick on time, ARGV[4] the last tick this node saw, ARGV[5] the quote, ARGV[6] the channel.
constexpr char const* tick_script = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local left = redis.call('PTTL', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if left < tonumber(ARGV[3]) then return {2} end
local tick = redis.call('INCR', KEYS[2])
local seen = tonumber(ARGV[4])
if tick <= seen then
    tick = seen + 1
    redis.call('SET', KEYS[2], tick)
end
redis.call('PUBLISH', ARGV[6], cjson.encode({tick = tick, message = ARGV[5], leader = ARGV[1]}))
return {1, tick}
)lua";

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

cluster::cluster(net::any_io_executor executor, cluster_options options, quote_source next_quote,
                 delivery deliver)
    : executor_(executor)
    , options_(std::move(options))
    , next_quote_(std::move(next_quote))
    , deliver_(std::move(deliver))
    , node_id_(options_.node_id.empty() ? make_node_id() : options_.node_id)
    , timeout_(options_.timeout.count() > 0 ? options_.timeout
                                            : std::clamp(options_.interval, duration{500}, duration{2000}))
    , wake_(executor) {
}

cluster::~cluster() {
    drop_connections();
}

net::awaitable<void> cluster::run() {
    auto backoff = first_backoff;
    bool logged_down = false; // the last state change logged was a loss (or the first attempt failing)
    while (!stopped_) {
        auto failure = co_await open();
        if (failure.empty() && !stopped_) {
            set_state(true, false);
            logged_down = false;
            backoff = first_backoff;
            log_info("broker_connected", kv("redis", options_.redis.display()), kv("node", node_id_));
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
        backoff = std::min(backoff * 2, max_backoff);
    }
    set_state(false, false);
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
    if (subscriber_) subscriber_->close();
    // A leader keeps its command connection for one more command: giving the lease up (run() does).
    if (commands_ && !leader_) commands_->close();
}

net::awaitable<void> cluster::release() {
    if (!commands_ || !commands_->connected()) co_return;
    std::vector<std::string> args{"EVAL", release_script, "1", std::string(cluster_names::leader_key),
                                  node_id_};
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
        std::vector<std::string> args{
            "PUBLISH", std::string(cluster_names::channel),
            boost::json::serialize(boost::json::object{{"message", text}, {"node", node_id_}})};
        auto const result = co_await commands->command(std::move(args));
        if (!result.ok() || result.reply.type == redis_reply::kind::error)
            log_warn("publish_failed", kv("error", result.ok() ? result.reply.text : result.failure));
    } else {
        log_warn("publish_failed", kv("error", "not connected"));
    }
    --publishing_;
}

net::awaitable<std::string> cluster::open() {
    lost_.clear();
    commands_ = std::make_shared<redis_client>(executor_, timeout_);
    subscriber_ = std::make_shared<redis_client>(executor_, timeout_);
    auto const commands = commands_;
    auto const subscriber = subscriber_;
    commands->on_lost([this](std::string why) { connection_lost(std::move(why)); });
    subscriber->on_lost([this](std::string why) { connection_lost("subscriber: " + std::move(why)); });

    if (auto why = co_await commands->connect(options_.redis); !why.empty()) co_return why;
    if (auto why = co_await subscriber->connect(options_.redis); !why.empty()) co_return why;
    std::string channel(cluster_names::channel);
    redis_client::message_handler on_message = [this](std::string, std::string payload) {
        on_channel_message(payload);
    };
    co_return co_await subscriber->subscribe(std::move(channel), std::move(on_message));
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
    std::vector<std::string> args{"EVAL",   acquire_script,
                                  "1",      std::string(cluster_names::leader_key),
                                  node_id_, std::to_string(lease.count())};
    auto const result = co_await commands_->command(std::move(args));
    if (!result.ok()) co_return result.failure;
    auto const reply = script_reply(result.reply);
    if (!reply) co_return "lease: " + describe(result.reply);

    auto const now = steady_clock::now();
    if (reply->first == 1) {
        set_state(true, true);
        log_info("leader_acquired", kv("node", node_id_), kv("last_tick", last_tick_.load()));
        schedule.reschedule(now); // the first tick at once: the old leader's are already late
        co_return std::string();
    }
    // Try again the moment the holder's lease would expire, or in one interval if it renews it meanwhile.
    auto const left = reply->second >= 0 ? duration{reply->second + 1} : options_.interval;
    schedule.reschedule(now + std::min(left, options_.interval));
    co_return std::string();
}

net::awaitable<std::string> cluster::tick(tick_schedule& schedule) {
    auto const lease = options_.interval * 3;
    auto const least_left =
        lease - options_.interval - options_.interval / 2; // half an interval late at most
    std::vector<std::string> args{"EVAL",
                                  tick_script,
                                  "2",
                                  std::string(cluster_names::leader_key),
                                  std::string(cluster_names::tick_key),
                                  node_id_,
                                  std::to_string(lease.count()),
                                  std::to_string(least_left.count()),
                                  std::to_string(last_tick_.load()),
                                  next_quote_(),
                                  std::string(cluster_names::channel)};
    auto const result = co_await commands_->command(std::move(args));
    if (!result.ok()) co_return result.failure;
    auto const reply = script_reply(result.reply);
    if (!reply) co_return "tick: " + describe(result.reply);

    auto const now = steady_clock::now();
    if (reply->first == 0) {
        set_state(true, false);
        log_info("leader_lost", kv("node", node_id_));
        schedule.reschedule(now);
        co_return std::string();
    }
    if (reply->first == 2)
        log_warn("tick_skipped", kv("reason", "late"), kv("node", node_id_));
    else if (reply->second > 0)
        last_tick_ = std::max<std::uint64_t>(last_tick_, static_cast<std::uint64_t>(reply->second));
    schedule.advance(now);
    co_return std::string();
}

void cluster::on_channel_message(std::string const& payload) {
    boost::json::error_code ec;
    auto const value = boost::json::parse(payload, ec);
    auto const* object = value.if_object();
    auto const* message = object ? object->if_contains("message") : nullptr;
    if (ec || !message || !message->is_string()) {
        log_warn("broker_bad_message", kv("channel", cluster_names::channel), kv("bytes", payload.size()));
        return;
    }
    cluster_message received{std::string(message->get_string()), std::nullopt, {}};
    if (auto const* tick = object->if_contains("tick")) {
        if (tick->is_int64() && tick->get_int64() > 0)
            received.tick = static_cast<std::uint64_t>(tick->get_int64());
        else if (tick->is_uint64())
            received.tick = tick->get_uint64();
        else if (tick->is_double() && tick->get_double() >= 1) // Lua numbers are doubles
            received.tick = static_cast<std::uint64_t>(tick->get_double());
    }
    for (auto const* key : {"leader", "node"})
        if (auto const* from = object->if_contains(key); from && from->is_string())
            received.from = std::string(from->get_string());
    if (received.tick) last_tick_ = std::max<std::uint64_t>(last_tick_, *received.tick);
    deliver_(std::move(received));
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
