#include "common/test_server.hpp"

#include "assets.hpp"
#include "broadcaster.hpp"
#include "quote_deck.hpp"
#include "support/async.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/test/unit_test.hpp>

namespace wolf::test {

config fast_config() {
    config cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.interval = 1h;
    cfg.ping_timeout = 10s;
    cfg.handshake_timeout = 2s;
    cfg.shutdown_grace = 1s;
    cfg.level = log_level::warn;
    cfg.threads = 1; // the registry of connections() is then every connection; tests of threads set more
    return cfg;
}

std::vector<std::string> test_quotes() {
    return {"The wolf is not the one who howls the loudest.",
            "Волк слабее льва и тигра, но в цирке не выступает.",
            "A pack is only as quiet as its quietest moon.",
            "Лучше быть последним в стае, чем первым в цирке.", "Never trust a sheep that owns a calendar."};
}

namespace {

void run_server(config cfg, std::vector<std::string> quotes, net::ssl::context* tls,
                std::function<net::awaitable<void>(server&)> body, std::chrono::milliseconds deadline) {
    set_log_level(cfg.level);
    set_log_format(cfg.format);
    net::io_context ioc;
    server srv(ioc.get_executor(), std::move(cfg), asset_store::embedded(), quote_deck(std::move(quotes), 42),
               tls);
    srv.start();

    auto const test = [&]() -> net::awaitable<void> {
        std::exception_ptr body_failure;
        try {
            co_await body(srv);
        } catch (...) {
            body_failure = std::current_exception();
        }
        co_await srv.shutdown();
        if (body_failure) std::rethrow_exception(body_failure);
    };
    // Whatever is left after the shutdown (sessions finishing their close) must end by itself.
    run_to_completion(ioc, test(), deadline);
}

} // namespace

void run_with_server(config cfg, std::function<net::awaitable<void>(server&)> body,
                     std::chrono::milliseconds deadline) {
    run_server(std::move(cfg), test_quotes(), nullptr, std::move(body), deadline);
}

void run_with_server(config cfg, std::vector<std::string> quotes,
                     std::function<net::awaitable<void>(server&)> body, std::chrono::milliseconds deadline) {
    run_server(std::move(cfg), std::move(quotes), nullptr, std::move(body), deadline);
}

void run_with_server(config cfg, net::ssl::context& tls, std::function<net::awaitable<void>(server&)> body,
                     std::chrono::milliseconds deadline) {
    run_server(std::move(cfg), test_quotes(), &tls, std::move(body), deadline);
}

void run_to_completion(net::io_context& ioc, net::awaitable<void> task, std::chrono::milliseconds deadline) {
    bool finished = false;
    std::exception_ptr failure;
    net::co_spawn(ioc, std::move(task), [&](std::exception_ptr e) {
        finished = true;
        failure = e;
    });
    auto const until = std::chrono::steady_clock::now() + deadline;
    while (!finished && !ioc.stopped() && std::chrono::steady_clock::now() < until)
        ioc.run_one_until(until);
    if (failure) std::rethrow_exception(failure);
    BOOST_REQUIRE_MESSAGE(finished, "the test did not finish within its deadline");
    ioc.run_for(5s);
    BOOST_TEST(ioc.stopped(), "operations were still pending 5 s after the test finished");
}

void run_coro(std::function<net::awaitable<void>()> body, std::chrono::milliseconds deadline) {
    net::io_context ioc;
    run_to_completion(ioc, body(), deadline);
}

net::awaitable<void> publish(server& srv, std::string text) {
    broadcast_message message{std::move(text), broadcast_message::origin::publish};
    BOOST_REQUIRE(co_await srv.broadcast().publish(std::move(message)));
}

net::awaitable<void> pause(std::chrono::milliseconds how_long) {
    net::steady_timer timer(co_await net::this_coro::executor, how_long);
    co_await timer.async_wait(use_nothrow);
}

net::awaitable<bool> notifier::until(std::function<bool()> condition, std::chrono::milliseconds limit) {
    net::steady_timer wake(co_await net::this_coro::executor, limit);
    waiting_.push_back(&wake);
    while (!condition() && std::chrono::steady_clock::now() < wake.expiry())
        co_await wake.async_wait(use_nothrow); // notify() cancels it; the expiry stays
    std::erase(waiting_, &wake);
    co_return condition();
}

net::awaitable<bool> eventually(std::function<bool()> condition, std::chrono::milliseconds limit) {
    auto const deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) co_return false;
        co_await pause(10ms);
    }
    co_return true;
}

} // namespace wolf::test
