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
 * redis-server (Debian's package, found on PATH) on 127.0.0.1 and a free port, with no persistence and a
 * temporary directory of its own (a replica's sync file goes there), and a restart starts empty. Killed with
 * the object. Only the process it started is ever signalled, by its pid.
 */
class redis_server {
public:
    /** Starts it with these extra arguments (e.g. {"--requirepass", "..."}), its port speaking TLS if `tls`
     * is given; fails the test if it cannot. */
    explicit redis_server(std::vector<std::string> extra_args = {}, std::optional<redis_tls_port> tls = {});
    ~redis_server();
    redis_server(redis_server&&) = default;

    std::uint16_t port() const noexcept { return port_; }
    /** "redis://127.0.0.1:PORT/DB", or rediss:// for a TLS port. */
    std::string url(unsigned db = 0) const;
    pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }
    /** Its log, to await a line on (a replica's "sync: Finished with success"). */
    child_process& process() noexcept { return *process_; }

    /** SIGSTOP: connections stay open and nothing answers, like a frozen host. */
    void pause();
    /** SIGCONT. */
    void resume();
    /** SIGKILL, and waits for the process to end. */
    void kill();
    /** Starts a fresh, empty server on the same port (after kill()), with `extra_args` added this time (e.g.
     * {"--replicaof", host, port}). */
    void restart(std::vector<std::string> const& extra_args = {});

    /** The last lines it wrote, for failure messages. */
    std::string tail() const;

private:
    void start(std::vector<std::string> const& more_args = {});

    std::string binary_;
    std::vector<std::string> extra_args_;
    std::optional<redis_tls_port> tls_;
    std::filesystem::path dir_; // its working directory, gone with it
    std::uint16_t port_ = 0;
    std::unique_ptr<child_process> process_;
};

/**
 * A Redis Sentinel (redis-server --sentinel) on 127.0.0.1 and a free port, watching the master at
 * 127.0.0.1:`master_port` as `name` with quorum 2 and down-after-milliseconds 1000; its configuration
 * (which Sentinel rewrites) lives in a temporary directory of its own, gone with the object.
 */
class redis_sentinel {
public:
    explicit redis_sentinel(std::uint16_t master_port, std::string name = "mymaster");
    ~redis_sentinel();
    redis_sentinel(redis_sentinel const&) = delete;
    redis_sentinel& operator=(redis_sentinel const&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    /** Its log: "+sdown", "+switch-master", "+convert-to-slave" and the like are awaited on it. */
    child_process& process() noexcept { return *process_; }
    /** SIGKILL, and waits for the process to end. */
    void kill();

private:
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::unique_ptr<child_process> process_;
};

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
std::uint16_t free_port();

} // namespace wolf::test
