#include "common/redis_server.hpp"

#include "common/process.hpp"

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wolf::test {

std::uint16_t free_port() {
    int const fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    bool const ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
    ::close(fd);
    BOOST_REQUIRE(ok);
    return ntohs(address.sin_port);
}

redis_server::redis_server(std::vector<std::string> extra_args, std::optional<redis_tls_port> tls)
    : binary_(find_program("redis-server"))
    , extra_args_(std::move(extra_args))
    , tls_(std::move(tls)) {
    // Its own directory: a replica's sync writes an RDB file, and nothing is written anywhere else.
    std::string pattern = (std::filesystem::temp_directory_path() / "wolf-redis-XXXXXX").string();
    BOOST_REQUIRE_MESSAGE(::mkdtemp(pattern.data()) != nullptr, "mkdtemp " << pattern);
    dir_ = pattern;
    BOOST_REQUIRE_MESSAGE(!binary_.empty(),
                          "redis-server is not on PATH: `scripts/install-deps --test` installs it (Debian "
                          "package redis-server)");
    // Another process may take the free port between the check and redis-server's bind: try a few.
    for (int attempt = 0; attempt < 5 && !process_; ++attempt) {
        port_ = free_port();
        start();
    }
    BOOST_REQUIRE_MESSAGE(process_, "redis-server did not start");
}

void redis_server::start(std::vector<std::string> const& more_args) {
    // "-::1": IPv6 loopback too where the host has it, so "localhost" works whichever address it gives.
    std::vector<std::string> argv{
        binary_,      "--port", std::to_string(port_), "--bind", "127.0.0.1",   "-::1",
        "--save",     "",       "--appendonly",        "no",     "--daemonize", "no",
        "--loglevel", "notice", "--protected-mode",    "no",     "--dir",       dir_.string()};
    if (tls_)
        argv.insert(argv.end(),
                    {"--port", "0", "--tls-port", std::to_string(port_), "--tls-cert-file",
                     tls_->cert.string(), "--tls-key-file", tls_->key.string(), "--tls-ca-cert-file",
                     tls_->ca.string(), "--tls-auth-clients", tls_->auth_clients ? "yes" : "no"});
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    argv.insert(argv.end(), more_args.begin(), more_args.end());
    auto candidate = std::make_unique<child_process>(argv);
    if (candidate->wait_for_line("Ready to accept connections", 10s)) {
        process_ = std::move(candidate);
        return;
    }
    BOOST_TEST_MESSAGE("redis-server on port " << port_ << " did not start:\n" << candidate->tail());
}

std::string redis_server::url(unsigned db) const {
    return (tls_ ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") + std::to_string(port_) + "/" +
           std::to_string(db);
}

redis_server::~redis_server() {
    process_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

void redis_server::pause() {
    process_->send_signal(SIGSTOP);
}

void redis_server::resume() {
    process_->send_signal(SIGCONT);
}

void redis_server::kill() {
    process_->send_signal(SIGKILL);
    BOOST_REQUIRE_MESSAGE(process_->wait(5s), "redis-server did not die");
}

void redis_server::restart(std::vector<std::string> const& extra_args) {
    auto const old = std::move(process_);
    start(extra_args);
    BOOST_REQUIRE_MESSAGE(process_, "redis-server did not restart on port " << port_);
}

std::string redis_server::tail() const {
    return process_ ? process_->tail() : std::string();
}

redis_sentinel::redis_sentinel(std::uint16_t master_port, std::string name) {
    auto const binary = find_program("redis-server");
    BOOST_REQUIRE_MESSAGE(!binary.empty(), "redis-server is not on PATH");
    std::string pattern = (std::filesystem::temp_directory_path() / "wolf-sentinel-XXXXXX").string();
    BOOST_REQUIRE_MESSAGE(::mkdtemp(pattern.data()) != nullptr, "mkdtemp " << pattern);
    dir_ = pattern;
    for (int attempt = 0; attempt < 5 && !process_; ++attempt) {
        port_ = free_port();
        auto const file = dir_ / "sentinel.conf";
        {
            std::ofstream out(file);
            out << "port " << port_ << "\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir "
                << dir_.string() << "\nsentinel monitor " << name << " 127.0.0.1 " << master_port << " 2\n"
                << "sentinel down-after-milliseconds " << name << " 1000\n"
                << "sentinel failover-timeout " << name << " 2000\n"
                << "sentinel parallel-syncs " << name << " 1\n";
        }
        auto candidate =
            std::make_unique<child_process>(std::vector<std::string>{binary, file.string(), "--sentinel"});
        if (candidate->wait_for_line("+monitor master", 10s)) {
            process_ = std::move(candidate);
            break;
        }
        BOOST_TEST_MESSAGE("redis sentinel on port " << port_ << " did not start:\n" << candidate->tail());
    }
    BOOST_REQUIRE_MESSAGE(process_, "redis sentinel did not start");
}

redis_sentinel::~redis_sentinel() {
    process_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

void redis_sentinel::kill() {
    process_->send_signal(SIGKILL);
    BOOST_REQUIRE_MESSAGE(process_->wait(5s), "redis sentinel did not die");
}

} // namespace wolf::test
