#include "server.hpp"

#include "broadcast_source.hpp"
#include "broadcaster.hpp"
#include "listener.hpp"
#include "protocol.hpp"
#include "shard.hpp"
#include "support/async.hpp"
#include "support/cpu_affinity.hpp"
#include "support/logger.hpp"
#include "watchdog.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace wolf {
namespace {

/** Runs `action` on `target`'s thread and resumes the caller on its own once it has run. */
template <class Action>
net::awaitable<void> run_on(shard& target, Action action) {
    co_await net::co_spawn(
        target.executor,
        [action]() mutable -> net::awaitable<void> {
            action();
            co_return;
        },
        net::use_awaitable);
}

} // namespace

struct server::impl {
    impl(loop_executor ex, config cfg, asset_store assets, quote_deck quotes, net::ssl::context* tls,
         std::shared_ptr<net::ssl::context> redis_tls)
        : executor(ex)
        , state(std::move(cfg), std::move(assets), tls, std::move(redis_tls))
        , deck(std::move(quotes))
        , drained(ex) {
        auto const count = thread_count(state.cfg);
        for (std::size_t i = 1; i < count; ++i)
            contexts.push_back(std::make_unique<net::io_context>(1));
        auto const epoch = starting_epoch(state.cfg);
        shards.push_back(std::make_unique<shard>(state, ex, epoch));
        for (auto& context : contexts)
            shards.push_back(std::make_unique<shard>(state, context->get_executor(), epoch));
        std::vector<fan_out_target> targets;
        for (auto& s : shards) {
            shard_pointers.push_back(s.get());
            dogs.push_back(std::make_unique<watchdog>(s->executor, s->connections, state.stats,
                                                      state.cfg.ping_timeout, state.cfg.write_timeout));
            targets.push_back({s->executor, &s->connections, &s->record});
        }
        broadcast = std::make_unique<broadcaster>(ex, std::move(targets), state.stats, state.pools, epoch,
                                                  broadcaster_capacity(state.cfg));
        source = make_broadcast_source(ex, state.cfg, state.redis_tls, deck, *broadcast);
        state.source = source.get();
    }

    ~impl() {
        // Normally the threads have run out of work after shutdown(); after a failure they are stopped.
        for (auto& context : contexts)
            context->stop();
        for (auto& thread : threads)
            thread.join();
    }

    net::any_io_executor executor;
    server_state state;
    quote_deck deck;
    // Destroyed in reverse: the watchdogs' timers before their contexts; the contexts (with whatever they
    // still hold, such as an HTTP session that unregisters itself from its shard) before the shards.
    std::vector<std::unique_ptr<shard>> shards;
    std::vector<std::unique_ptr<net::io_context>> contexts; // shards 1.. run on these
    std::vector<shard*> shard_pointers;
    std::vector<std::unique_ptr<watchdog>> dogs;          // one per shard
    std::vector<std::unique_ptr<tcp_acceptor>> acceptors; // one per shard, on its thread
    std::unique_ptr<broadcaster> broadcast;
    std::unique_ptr<broadcast_source> source; // the ticker, or this node's membership of a cluster
    net::steady_timer drained;                // shutdown waits on it; cancelled when the last connection ends
    // Keeps each shard's thread running while it has nothing to do, until shutdown has done its last step
    // there; then the threads end as soon as their connections have.
    std::vector<net::executor_work_guard<net::io_context::executor_type>> keep_running;
    std::vector<std::thread> threads;
    bool started = false;
};

server::server(loop_executor executor, config cfg, asset_store assets, quote_deck deck,
               net::ssl::context* tls, std::shared_ptr<net::ssl::context> redis_tls)
    : impl_(std::make_unique<impl>(std::move(executor), std::move(cfg), std::move(assets), std::move(deck),
                                   tls, std::move(redis_tls))) {
}

server::~server() = default;

void server::start() {
    auto& self = *impl_;
    auto const& cfg = self.state.cfg;

    net::ip::tcp::resolver resolver(self.executor);
    boost::system::error_code resolve_ec;
    auto const endpoints =
        resolver.resolve(cfg.host, std::to_string(cfg.port), net::ip::tcp::resolver::passive, resolve_ec);
    if (resolve_ec || endpoints.empty())
        throw std::invalid_argument("--host: cannot resolve '" + cfg.host + "': " + resolve_ec.message());
    self.acceptors = open_listeners(endpoints.begin()->endpoint(), self.shard_pointers);

    for (auto& s : self.shards)
        s->on_peer_removed = [&self] {
            // The last connection of the whole server wakes the shutdown, on its own thread.
            if (self.state.shutting_down && self.state.pools.live() == 0)
                net::post(self.executor, [&self] { self.drained.cancel(); });
        };

    for (std::size_t i = 0; i < self.shards.size(); ++i)
        net::co_spawn(self.shards[i]->executor, run_listener(*self.acceptors[i], *self.shards[i]),
                      log_and_rethrow{"listener"});
    net::co_spawn(self.executor, self.broadcast->run(), log_and_rethrow{"broadcaster"});
    net::co_spawn(self.executor, self.source->run(), log_and_rethrow{"broadcast_source"});
    for (std::size_t i = 0; i < self.shards.size(); ++i)
        net::co_spawn(self.shards[i]->executor, self.dogs[i]->run(), log_and_rethrow{"watchdog"});
    for (auto& context : self.contexts)
        self.keep_running.push_back(net::make_work_guard(*context));
    // With --cpu-affinity each thread keeps a CPU of its own: left to the scheduler, a woken thread is often
    // placed beside the one that woke it (the broadcaster's), and the two shares of a tick go out one after
    // the other instead of at once. The main thread (shard 0) is placed by main().
    auto const cpus = cfg.cpu_affinity ? allowed_cpus() : std::vector<int>{};
    for (std::size_t i = 0; i < self.contexts.size(); ++i) {
        self.threads.emplace_back([context = self.contexts[i].get(), number = i + 1] {
            try {
                context->run();
            } catch (std::exception const& e) {
                // An actor failed (log_and_rethrow has logged it): as loud as on the main thread.
                log_error("fatal", kv("thread", number), kv("error", e.what()));
                std::terminate();
            }
        });
        // Placed from here, before start() returns: nothing runs on the thread yet that minds where it is.
        if (auto const cpu = cpu_for_thread(i + 1, self.shards.size(), cpus);
            cpu && !pin_thread(*cpu, self.threads.back().native_handle()))
            log_warn("cpu_affinity_failed", kv("thread", i + 1), kv("cpu", *cpu));
    }
    self.started = true;
    self.state.listening = true;

    log_info("listening", kv("url", std::string(self.state.tls ? "https://" : "http://") + address()),
             kv("port", port()), kv("interval", format_duration(cfg.interval)),
             kv("ping_timeout", format_duration(cfg.ping_timeout)),
             kv("write_timeout", format_duration(cfg.write_timeout)),
             kv("handshake_timeout", format_duration(cfg.handshake_timeout)), kv("quotes", self.deck.size()),
             kv("assets", self.state.assets.source()), kv("max_connections", cfg.max_connections),
             kv("max_queue", cfg.max_queue), kv("max_message_size", cfg.max_message_size),
             kv("max_errors", cfg.max_errors), kv("threads", self.shards.size()),
             kv("cpu_affinity", cfg.cpu_affinity && self.shards.size() > 1),
             kv("admin_api", !cfg.admin_token.empty()),
             kv("broker", cfg.redis ? cfg.redis->display() : std::string("memory")));
}

std::uint16_t server::port() const {
    return impl_->acceptors.front()->local_endpoint().port();
}

std::string server::address() const {
    std::ostringstream out;
    out << impl_->acceptors.front()->local_endpoint();
    return std::move(out).str();
}

net::awaitable<void> server::shutdown() {
    auto& self = *impl_;
    auto& state = self.state;
    if (state.shutting_down || !self.started) co_return;
    state.shutting_down = true;

    // Every listener first, each on its own thread, so that no thread accepts once shutdown has begun.
    for (std::size_t i = 0; i < self.shards.size(); ++i)
        co_await run_on(*self.shards[i], [&acceptor = *self.acceptors[i]] {
            boost::system::error_code ignored;
            acceptor.close(ignored);
        });
    self.source->stop(); // a cluster's leader gives its lease up first, within the timeout
    self.broadcast->close();

    log_info("shutting_down", kv("connections", state.pools.connections()),
             kv("code", protocol::close_code::going_away));
    for (std::size_t i = 0; i < self.shards.size(); ++i) {
        auto& s = *self.shards[i];
        co_await run_on(s, [&s, &dog = *self.dogs[i]] {
            dog.stop();
            // Copies: closing changes the sets being walked.
            std::vector<peer*> const open(s.connections.open_peers().begin(),
                                          s.connections.open_peers().end());
            for (peer* p : open)
                p->close(protocol::close_code::going_away, protocol::close_reason::going_away);
            std::vector<closable*> idle;
            for (auto& c : s.http_connections)
                idle.push_back(&c);
            for (closable* c : idle)
                c->close();
        });
    }

    if (state.pools.live() > 0) {
        self.drained.expires_after(state.cfg.shutdown_grace);
        co_await self.drained.async_wait(use_nothrow);
    }
    if (auto const left = state.pools.live(); left > 0)
        log_warn("shutdown_dropping", kv("connections", left));
    for (auto& s : self.shards)
        co_await run_on(*s, [&s = *s] {
            std::vector<peer*> const left(s.connections.live_peers().begin(),
                                          s.connections.live_peers().end());
            for (peer* p : left)
                p->abort();
        });
    self.keep_running.clear();
    log_info("shutdown_complete");
}

registry const& server::connections() const noexcept {
    return impl_->shards.front()->connections;
}
pool_counts const& server::pools() const noexcept {
    return impl_->state.pools;
}
metrics const& server::stats() const noexcept {
    return impl_->state.stats;
}
broadcaster& server::broadcast() noexcept {
    return *impl_->broadcast;
}
std::size_t server::threads() const noexcept {
    return impl_->shards.size();
}
net::awaitable<std::vector<std::size_t>> server::connections_per_thread() {
    std::vector<std::size_t> counts;
    for (auto& s : impl_->shards)
        co_await run_on(*s, [&counts, &s = *s] { counts.push_back(s.connections.connections()); });
    co_return counts;
}

} // namespace wolf
