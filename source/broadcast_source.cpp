#include "broadcast_source.hpp"

#include "broadcaster.hpp"
#include "cluster/cluster.hpp"
#include "config.hpp"
#include "history.hpp"
#include "quote_deck.hpp"
#include "support/logger.hpp"
#include "ticker.hpp"

namespace wolf {
namespace {

cluster_options cluster_options_for(config const& cfg, std::shared_ptr<net::ssl::context> tls,
                                    quote_deck const& deck) {
    cluster_options options;
    options.redis = *cfg.redis;
    options.interval = cfg.interval;
    options.history = cfg.history;
    options.tls = std::move(tls);
    options.prefix = cfg.redis_prefix;
    options.quotes = deck.quotes();
    return options;
}

/**
 * This node's membership of a cluster as a broadcast source: every message on the cluster's channel (the
 * leader's ticks, with their cluster-wide numbers, and operators' messages from any node) goes to the
 * broadcaster as it arrives; an operator's message here is published through Redis, so it reaches every
 * node, this one included, the same way.
 */
class cluster_source final : public broadcast_source {
public:
    cluster_source(net::any_io_executor executor, config const& cfg, std::shared_ptr<net::ssl::context> tls,
                   quote_deck const& deck, broadcaster& target)
        : member_(std::move(executor), cluster_options_for(cfg, std::move(tls), deck),
                  [this, &target](cluster_message m) { deliver(target, std::move(m)); }) {}

    net::awaitable<void> run() override { return member_.run(); }
    void stop() override {
        stopped_ = true;
        member_.stop();
    }
    bool try_publish(std::string text) override { return member_.try_publish(std::move(text)); }
    broker_status status() const override {
        auto const redis = member_.status();
        return {true,           member_.connected(), member_.leader(), redis.master, redis.role,
                redis.sentinel, redis.tls,           redis.failovers,  redis.deck,   redis.fingerprint};
    }

private:
    void deliver(broadcaster& target, cluster_message m) {
        auto const from = m.tick ? broadcast_message::origin::tick : broadcast_message::origin::publish;
        auto const purpose = m.purpose == cluster_message::use::deliver  ? broadcast_message::use::deliver
                             : m.purpose == cluster_message::use::record ? broadcast_message::use::record
                                                                         : broadcast_message::use::position;
        broadcast_message message{std::move(m.text), from, m.tick,
                                  protocol::position{std::move(m.epoch), m.offset}, purpose};
        // The broadcaster never waits on a subscriber and its inbox holds what a node reads back from the
        // stream at once (broadcaster_capacity), so a full inbox means it fell far behind: this one is
        // skipped.
        if (!target.try_publish(std::move(message)) && !stopped_)
            log_warn("broadcast_busy", kv("cluster_tick", m.tick.value_or(0)), kv("offset", m.offset));
    }

    cluster member_;
    bool stopped_ = false; // a message arriving while the server shuts down is no warning
};

} // namespace

std::string starting_epoch(config const& cfg) {
    return cfg.redis ? std::string() : new_epoch();
}

std::size_t broadcaster_capacity(config const& cfg) noexcept {
    return cfg.redis ? 2 * cfg.history + 256 : 16;
}

std::unique_ptr<broadcast_source> make_broadcast_source(net::any_io_executor executor, config const& cfg,
                                                        std::shared_ptr<net::ssl::context> redis_tls,
                                                        quote_deck& deck, broadcaster& target) {
    if (cfg.redis)
        return std::make_unique<cluster_source>(std::move(executor), cfg, std::move(redis_tls), deck, target);
    return std::make_unique<ticker>(std::move(executor), target, deck, cfg.interval);
}

} // namespace wolf
