#pragma once

#include "cluster/redis_url.hpp"
#include "support/duration.hpp"
#include "support/logger.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wolf {

/** Everything the server can be told at startup; defaults are the contract's. */
struct config {
    std::string host = "0.0.0.0";
    std::uint16_t port = 8000;
    duration interval{5000};
    duration ping_timeout{15000};
    std::string quotes_file{}; // empty: the embedded deck
    std::string assets_dir{};  // empty: the embedded UI
    std::size_t max_connections = 10000;
    std::size_t max_queue = 64;
    std::size_t max_message_size = 4096;
    std::size_t max_errors = 20;       // protocol errors a connection may make; the next one closes it
    std::size_t history = 100;         // broadcasts kept for lossless reconnect (section 10); 0: none
    duration handshake_timeout{10000}; // whole HTTP request / WebSocket upgrade, and the closing handshake
    duration write_timeout{30000};     // a write making no progress this long drops the connection
    std::size_t threads = 0;  // event-loop threads, each serving its share of connections; 0: one per core
    bool cpu_affinity = true; // with several threads, each runs on a CPU of its own
    log_level level = log_level::info;
    log_format format = log_format::text;
    std::string tls_cert{};    // PEM certificate chain; with tls_key, the port speaks HTTPS and wss:// only
    std::string tls_key{};     // PEM private key
    std::string admin_token{}; // empty: the admin API (/api/wisdom, /api/stats) is off
    std::optional<redis_endpoint> redis{}; // set: one node of a cluster sharing one broadcast through Redis
    redis_tls_files redis_tls{};           // for a rediss:// --redis: the CA, and a client certificate
    std::string redis_prefix = "wolf";     // of the cluster's keys and channel in Redis

    // A documented constant, not a flag: tests shorten it.
    duration shutdown_grace{5000}; // how long shutdown waits for closing handshakes
};

/** The number of event-loop threads `cfg.threads` asks for: itself, or one per core (at least 1) for 0. */
std::size_t thread_count(config const& cfg) noexcept;

/** The result of reading the command line: either a config to run with, or text to print and an exit code. */
struct cli_result {
    std::optional<config> cfg;
    int exit_code = 0;  // meaningful when cfg is empty: 0 for --help/--version, 2 for a bad command line
    std::string output; // --help/--version text (stdout) or a one-line error (stderr)
};

cli_result parse_command_line(int argc, char const* const argv[]);

} // namespace wolf
