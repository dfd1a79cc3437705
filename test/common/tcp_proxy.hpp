#pragma once

// A TCP proxy the test controls, for cutting one client off from a server while everyone else goes on.

#include "support/net.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace wolf::test {

/**
 * Listens on 127.0.0.1 (a free port) and forwards each connection to 127.0.0.1:`target_port`, until cut():
 * every forwarded connection is closed, and each new one is closed as soon as it is accepted, until
 * restore(). (The port stays bound throughout: listening again on it could find it taken.) Runs on a thread
 * of its own; cut() and restore() return once done.
 */
class tcp_proxy {
public:
    explicit tcp_proxy(std::uint16_t target_port);
    ~tcp_proxy();
    tcp_proxy(tcp_proxy const&) = delete;
    tcp_proxy& operator=(tcp_proxy const&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    void cut();
    void restore();

private:
    void run_on_thread(std::function<void()> action);

    net::io_context ioc_;
    net::ip::tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::uint16_t target_;
    std::vector<std::weak_ptr<net::ip::tcp::socket>> sockets_; // every forwarded connection's two ends
    bool cut_ = false;
    std::thread thread_;
};

} // namespace wolf::test
