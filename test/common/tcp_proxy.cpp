#include "common/tcp_proxy.hpp"

#include "support/async.hpp"

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <future>

namespace wolf::test {
namespace {

using tcp = net::ip::tcp;

/** Copies bytes from one end to the other until either fails; then closes both. */
net::awaitable<void> pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to) {
    std::array<char, 16384> chunk;
    for (;;) {
        auto const [read_ec, n] = co_await from->async_read_some(net::buffer(chunk), use_nothrow);
        if (read_ec) break;
        auto const [write_ec, written] =
            co_await net::async_write(*to, net::buffer(chunk.data(), n), use_nothrow);
        if (write_ec) break;
    }
    boost::system::error_code ignored;
    from->close(ignored);
    to->close(ignored);
}

} // namespace

tcp_proxy::tcp_proxy(std::uint16_t target_port)
    : acceptor_(ioc_, {net::ip::address_v4::loopback(), 0})
    , port_(acceptor_.local_endpoint().port())
    , target_(target_port) {
    // The accept loop: a detached coroutine (test code) that ends when the destructor stops the context.
    net::co_spawn(
        ioc_,
        [this]() -> net::awaitable<void> {
            for (;;) {
                auto [ec, accepted] = co_await acceptor_.async_accept(use_nothrow);
                if (ec) co_return;
                auto client = std::make_shared<tcp::socket>(std::move(accepted));
                if (cut_) continue; // closed at once: the client sees the connection end
                auto server = std::make_shared<tcp::socket>(ioc_);
                sockets_.push_back(client);
                sockets_.push_back(server);
                auto [connect_ec] =
                    co_await server->async_connect({net::ip::address_v4::loopback(), target_}, use_nothrow);
                if (connect_ec || cut_ || !client->is_open()) continue;
                net::co_spawn(ioc_, pump(client, server), net::detached);
                net::co_spawn(ioc_, pump(server, client), net::detached);
            }
        },
        net::detached);
    thread_ = std::thread([this] {
        auto const work = net::make_work_guard(ioc_);
        ioc_.run();
    });
}

tcp_proxy::~tcp_proxy() {
    cut();
    run_on_thread([this] {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    });
    ioc_.stop();
    thread_.join();
}

void tcp_proxy::run_on_thread(std::function<void()> action) {
    std::promise<void> done;
    net::post(ioc_, [&] {
        action();
        done.set_value();
    });
    done.get_future().wait();
}

void tcp_proxy::cut() {
    run_on_thread([this] {
        cut_ = true;
        boost::system::error_code ignored;
        for (auto const& weak : sockets_)
            if (auto socket = weak.lock()) socket->close(ignored);
        sockets_.clear();
    });
}

void tcp_proxy::restore() {
    run_on_thread([this] { cut_ = false; });
}

} // namespace wolf::test
