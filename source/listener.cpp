#include "listener.hpp"

#include "http_session.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <chrono>
#include <sys/socket.h>

namespace wolf {
namespace {

using namespace std::chrono_literals;
using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

void open_and_bind(tcp_acceptor& acceptor, net::ip::tcp::endpoint const& endpoint, bool shared) {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    if (shared) acceptor.set_option(reuse_port(true));
    // Every accepted socket inherits it from the listener (Linux copies the listener's TCP state into each
    // connection): one setsockopt here instead of one per connection.
    acceptor.set_option(net::ip::tcp::no_delay(true));
    acceptor.bind(endpoint);
}

/** Whether at least a second has passed since the server's last accept warning; if so, this one is it. */
bool take_warning_turn(server_state& state) {
    auto const now = steady_clock::now().time_since_epoch().count();
    auto last = state.last_accept_warning.load();
    auto const second = std::chrono::duration_cast<steady_clock::duration>(1s).count();
    return (last == 0 || now - last >= second) &&
           state.last_accept_warning.compare_exchange_strong(last, now);
}

} // namespace

std::vector<std::unique_ptr<tcp_acceptor>> open_listeners(net::ip::tcp::endpoint const& endpoint,
                                                          std::vector<shard*> const& shards) {
    bool const shared = shards.size() > 1;
    if (shared && endpoint.port() != 0) {
        tcp_acceptor probe(shards.front()->executor);
        open_and_bind(probe, endpoint, false); // throws if the port is taken, by anyone; never listens
    }
    std::vector<std::unique_ptr<tcp_acceptor>> acceptors;
    auto bound = endpoint;
    for (auto* s : shards) {
        acceptors.push_back(std::make_unique<tcp_acceptor>(s->executor));
        open_and_bind(*acceptors.back(), bound, shared);
        acceptors.back()->listen(net::socket_base::max_listen_connections);
        bound.port(acceptors.front()->local_endpoint().port()); // --port 0: the others join the first's
    }
    return acceptors;
}

loop_awaitable<> run_listener(tcp_acceptor& acceptor, shard& target) {
    loop_timer backoff_timer(acceptor.get_executor());
    auto backoff = duration{0};
    std::uint64_t failures = 0;

    while (acceptor.is_open()) {
        auto [ec, socket] = co_await acceptor.async_accept(loop_nothrow);
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        if (ec) {
            ++failures;
            backoff = std::clamp(backoff * 2, duration{10}, duration{1000});
            if (take_warning_turn(target.server))
                log_warn("accept_failed", kv("error", ec.message()), kv("failures", failures),
                         kv("retry_ms", backoff.count()));
            backoff_timer.expires_after(backoff);
            co_await backoff_timer.async_wait(loop_nothrow);
            continue;
        }
        backoff = duration{0};
        failures = 0;

        net::co_spawn(target.executor, run_connection(std::move(socket), target),
                      log_and_contain{"connection"});
    }
}

} // namespace wolf
