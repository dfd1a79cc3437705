#include "listener.hpp"

#include "http_session.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

namespace wolf {

using namespace std::chrono_literals;

net::awaitable<void> run_listener(net::ip::tcp::acceptor& acceptor, std::span<shard* const> shards) {
    net::steady_timer backoff_timer(acceptor.get_executor());
    auto backoff = duration{0};
    auto last_warning = steady_clock::time_point{};
    std::uint64_t failures = 0;
    std::size_t next = 0;

    while (acceptor.is_open()) {
        auto& target = *shards[next];
        auto [ec, socket] = co_await acceptor.async_accept(target.executor, use_nothrow);
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        if (ec) {
            ++failures;
            backoff = std::clamp(backoff * 2, duration{10}, duration{1000});
            if (auto const now = steady_clock::now(); now - last_warning >= 1s) {
                log_warn("accept_failed", kv("error", ec.message()), kv("failures", failures),
                         kv("retry_ms", backoff.count()));
                last_warning = now;
            }
            backoff_timer.expires_after(backoff);
            co_await backoff_timer.async_wait(use_nothrow);
            continue;
        }
        backoff = duration{0};
        failures = 0;
        next = (next + 1) % shards.size();

        boost::system::error_code option_ec;
        socket.set_option(net::ip::tcp::no_delay(true), option_ec);
        net::co_spawn(target.executor, run_connection(std::move(socket), target),
                      log_and_contain{"connection"});
    }
}

} // namespace wolf
