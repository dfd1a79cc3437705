#pragma once

// A redis-server of the test's own, for the suites labelled `redis`.

#include "common/binary.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wolf::test {

/** A redis-server whose port speaks TLS only. */
struct redis_tls_port {
    std::filesystem::path cert; // the server's certificate and key
    std::filesystem::path key;
    std::filesystem::path ca;  // whom it trusts for client certificates
    bool auth_clients = false; // true: a client must show a certificate that chains to `ca`
};

/**
 * redis-server (Debian's package, found on PATH) on 127.0.0.1 and a free port, with no persistence: nothing
 * is written to disk, and a restart starts empty. Killed with the object. Only the process it started is
 * ever signalled, by its pid.
 */
class redis_server {
public:
    /** Starts it with these extra arguments (e.g. {"--requirepass", "..."}), its port speaking TLS if `tls`
     * is given; fails the test if it cannot. */
    explicit redis_server(std::vector<std::string> extra_args = {}, std::optional<redis_tls_port> tls = {});

    std::uint16_t port() const noexcept { return port_; }
    /** "redis://127.0.0.1:PORT/DB", or rediss:// for a TLS port. */
    std::string url(unsigned db = 0) const;
    pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }

    /** SIGSTOP: connections stay open and nothing answers, like a frozen host. */
    void pause();
    /** SIGCONT. */
    void resume();
    /** SIGKILL, and waits for the process to end. */
    void kill();
    /** Starts a fresh, empty server on the same port (after kill()). */
    void restart();

    /** The last lines it wrote, for failure messages. */
    std::string tail() const;

private:
    void start();

    std::string binary_;
    std::vector<std::string> extra_args_;
    std::optional<redis_tls_port> tls_;
    std::uint16_t port_ = 0;
    std::unique_ptr<child_process> process_;
};

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
std::uint16_t free_port();

} // namespace wolf::test
