#include "server.hpp"

#include "async.hpp"
#include "broadcaster.hpp"
#include "listener.hpp"
#include "logger.hpp"
#include "protocol.hpp"
#include "shared_state.hpp"
#include "ticker.hpp"
#include "watchdog.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace wolf {

struct server::impl {
    impl(net::any_io_executor ex, config cfg, asset_store assets, quote_deck quotes, net::ssl::context* tls)
        : executor(ex)
        , state(std::move(cfg), std::move(assets), tls)
        , deck(std::move(quotes))
        , acceptor(ex)
        , broadcast(ex, state.connections, state.stats)
        , tick(ex, broadcast, deck, state.cfg.interval)
        , dog(ex, state.connections, state.stats, state.cfg.ping_timeout, state.cfg.write_timeout)
        , drained(ex) {}

    net::any_io_executor executor;
    shared_state state;
    quote_deck deck;
    net::ip::tcp::acceptor acceptor;
    broadcaster broadcast;
    ticker tick;
    watchdog dog;
    net::steady_timer drained; // shutdown waits on it; cancelled when the last connection ends
    bool started = false;
};

server::server(net::any_io_executor executor, config cfg, asset_store assets, quote_deck deck,
               net::ssl::context* tls)
    : impl_(std::make_unique<impl>(std::move(executor), std::move(cfg), std::move(assets), std::move(deck),
                                   tls)) {
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
    auto const endpoint = endpoints.begin()->endpoint();
    self.acceptor.open(endpoint.protocol());
    self.acceptor.set_option(net::socket_base::reuse_address(true));
    self.acceptor.bind(endpoint);
    self.acceptor.listen(net::socket_base::max_listen_connections);

    self.state.publish = [&self](std::string text) {
        return self.broadcast.try_publish({std::move(text), broadcast_message::origin::publish});
    };
    self.state.on_peer_removed = [&self] {
        if (self.state.shutting_down && self.state.connections.live() == 0) self.drained.cancel();
    };

    net::co_spawn(self.executor, run_listener(self.acceptor, self.state), log_and_rethrow{"listener"});
    net::co_spawn(self.executor, self.broadcast.run(), log_and_rethrow{"broadcaster"});
    net::co_spawn(self.executor, self.tick.run(), log_and_rethrow{"ticker"});
    net::co_spawn(self.executor, self.dog.run(), log_and_rethrow{"watchdog"});
    self.started = true;
    self.state.listening = true;

    log_info("listening", kv("url", std::string(self.state.tls ? "https://" : "http://") + address()),
             kv("port", port()), kv("interval", format_duration(cfg.interval)),
             kv("ping_timeout", format_duration(cfg.ping_timeout)),
             kv("write_timeout", format_duration(cfg.write_timeout)),
             kv("handshake_timeout", format_duration(cfg.handshake_timeout)), kv("quotes", self.deck.size()),
             kv("assets", self.state.assets.source()), kv("max_connections", cfg.max_connections),
             kv("max_queue", cfg.max_queue), kv("max_message_size", cfg.max_message_size),
             kv("max_errors", cfg.max_errors), kv("admin_api", !cfg.admin_token.empty()));
}

std::uint16_t server::port() const {
    return impl_->acceptor.local_endpoint().port();
}

std::string server::address() const {
    std::ostringstream out;
    out << impl_->acceptor.local_endpoint();
    return std::move(out).str();
}

net::awaitable<void> server::shutdown() {
    auto& self = *impl_;
    auto& state = self.state;
    if (state.shutting_down || !self.started) co_return;
    state.shutting_down = true;

    boost::system::error_code ignored;
    self.acceptor.close(ignored);
    self.tick.stop();
    self.broadcast.close();
    self.dog.stop();

    // Copies: closing changes the sets being walked.
    std::vector<peer*> const open(state.connections.open_peers().begin(),
                                  state.connections.open_peers().end());
    log_info("shutting_down", kv("connections", open.size()), kv("code", protocol::close_code::going_away));
    for (peer* p : open)
        p->close(protocol::close_code::going_away, protocol::close_reason::going_away);
    std::vector<closable*> const idle(state.http_connections.begin(), state.http_connections.end());
    for (closable* c : idle)
        c->close();

    if (state.connections.live() > 0) {
        self.drained.expires_after(state.cfg.shutdown_grace);
        co_await self.drained.async_wait(use_nothrow);
    }
    std::vector<peer*> const left(state.connections.live_peers().begin(),
                                  state.connections.live_peers().end());
    if (!left.empty()) log_warn("shutdown_dropping", kv("connections", left.size()));
    for (peer* p : left)
        p->abort();
    log_info("shutdown_complete");
}

registry const& server::connections() const noexcept {
    return impl_->state.connections;
}
metrics const& server::stats() const noexcept {
    return impl_->state.stats;
}
broadcaster& server::broadcast() noexcept {
    return impl_->broadcast;
}

} // namespace wolf
