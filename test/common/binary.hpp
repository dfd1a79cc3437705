#pragma once

// Driving the real binary: its command line, its start, and reading its log lines.

#include "common/process.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wolf::test {

/** {binary, --host 127.0.0.1, --port 0, args...}. */
std::vector<std::string> server_command(std::string binary, std::vector<std::string> args);

/** Waits for the server's "listening url=<scheme>://127.0.0.1:PORT port=PORT ..." line and returns the
 * port. */
std::uint16_t wait_until_listening(child_process& server, std::string_view scheme = "http");

/** The real binary as one node of a cluster: --redis `redis_url` and `args`, listening on a free port. */
struct cluster_node {
    cluster_node(std::string binary, std::string const& redis_url, std::vector<std::string> args);

    child_process server;
    std::uint16_t port;
};

/** What a node's /healthz says. */
struct health {
    std::string broker;
    bool connected = false;
    bool leader = false;
    std::int64_t connections = -1;
    // With --redis: the Redis the node talks to.
    std::string master;
    std::string role;
    std::string sentinel;
    std::uint64_t failovers = 0;
    std::string deck; // "shared", "mismatch" or "unknown"
    std::string deck_fingerprint;
};

/** GET /healthz on 127.0.0.1:port, parsed; fails the test unless it is 200 with the contract's fields. */
net::awaitable<health> healthz(std::uint16_t port);

/** Extra environment for a child built with AddressSanitizer: no quarantine, so freed memory is reused
 * at once and the child's RSS means what it means in a release build. Empty otherwise. */
std::vector<std::string> sanitizer_environment();

/** The number after `key` in `text` (e.g. key " recipients=" in a tick line), or nullopt. */
std::optional<std::uint64_t> number_after(std::string_view text, std::string_view key);

/** The event of a text-format log line, "<ts> <level> <event> key=value ...", or empty. */
std::string_view logged_event(std::string_view line);
/** The value of field `key` in a text-format log line as written (a quoted one with its quotes), or nullopt.
 */
std::optional<std::string_view> logged_field(std::string_view line, std::string_view key);

/** Milliseconds from one log line's "2026-11-26T03:42:03.198Z" stamp to a later line's, or nullopt. */
std::optional<std::int64_t> log_ms_between(std::string_view earlier, std::string_view later);

} // namespace wolf::test
