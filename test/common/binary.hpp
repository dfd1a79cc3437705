#pragma once

// What the reliability suites share: the real binary (or a stub client) as a child process whose output a
// thread drains, a coroutine runner for tests that own their io_context, /metrics scraping and readings
// of another process in /proc.

#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace wolf::test {

using namespace std::chrono_literals;
using steady_time = std::chrono::steady_clock::time_point;

/** One line a child wrote, and when the test read it. */
struct output_line {
    std::string text;
    steady_time arrived;
};

/**
 * A child process with stdout and stderr on one pipe that a thread drains into lines. A chatty child
 * (the server logs every tick) never blocks on a full pipe while the test is busy, and a coroutine can
 * wait for a line without blocking its io_context. Waits consume lines through a cursor; lines() sees
 * everything.
 */
class process {
public:
    struct options {
        std::optional<unsigned long> max_open_files{}; // RLIMIT_NOFILE (soft and hard), like `ulimit -n`
        std::vector<std::string> environment{};        // NAME=VALUE entries added to the test's own
    };

    process(std::vector<std::string> const& argv, options const& opts);
    explicit process(std::vector<std::string> const& argv)
        : process(argv, options{}) {}
    process(process const&) = delete;
    process& operator=(process const&) = delete;
    /** Kills (SIGKILL) and reaps the child if it is still running. */
    ~process();

    pid_t pid() const noexcept { return pid_; }
    void send_signal(int signal);
    /** False once the child has exited (it is reaped then). */
    bool running();
    /** The exit status (or 128 + signal), or nullopt if the child is still running after `timeout`. */
    std::optional<int> wait(std::chrono::milliseconds timeout);

    /** The first line after the cursor that contains `needle`; the cursor moves past it. Blocks. */
    std::optional<output_line> wait_for_line(std::string_view needle, std::chrono::milliseconds timeout);
    /** The same, polling every 10 ms so the caller's io_context keeps running. */
    net::awaitable<std::optional<output_line>> async_wait_for_line(std::string_view needle,
                                                                   std::chrono::milliseconds timeout);

    /** Every line so far. */
    std::vector<output_line> lines() const;
    /** The last `max_bytes` of output, for failure messages. */
    std::string tail(std::size_t max_bytes = 4000) const;

private:
    std::optional<output_line> take_line(std::string_view needle);
    void drain(int fd);

    pid_t pid_ = -1;
    std::optional<int> status_;
    mutable std::mutex mutex_;
    std::vector<output_line> lines_;
    std::size_t cursor_ = 0;
    std::thread reader_;
};

/** A file in the temporary directory, named after `name` and this process, removed at the end. */
struct temp_file {
    temp_file(std::string_view name, std::string_view contents);
    temp_file(temp_file const&) = delete;
    temp_file& operator=(temp_file const&) = delete;
    ~temp_file();
    std::string path;
};

/** {binary, --host 127.0.0.1, --port 0, args...}. */
std::vector<std::string> server_command(std::string binary, std::vector<std::string> args);

/** Waits for the server's "listening url=http://ADDR:PORT port=PORT ..." line and returns the port. */
std::uint16_t wait_until_listening(process& server);

/** Extra environment for a child built with AddressSanitizer: no quarantine, so freed memory is reused
 * at once and the child's RSS means what it means in a release build. Empty otherwise. */
std::vector<std::string> sanitizer_environment();

/** Samples of the Prometheus text: "name" or "name{labels}" -> value. */
using metric_samples = std::map<std::string, double, std::less<>>;
metric_samples parse_metrics(std::string_view text);
/** GET /metrics on 127.0.0.1:port, parsed. */
net::awaitable<metric_samples> scrape_metrics(std::uint16_t port);
/** The sample's value; fails the test if it is missing. */
double metric(metric_samples const& samples, std::string_view name);

/** VmRSS of a process in KiB (0 if unreadable). */
std::size_t rss_kib(pid_t pid);
/** Open descriptors of a process, from /proc/PID/fd. */
std::size_t open_descriptors(pid_t pid);

/** Raises this process's RLIMIT_NOFILE soft limit to its hard limit; returns the new soft limit. */
unsigned long raise_open_file_limit();

/** The number after `key` in `text` (e.g. key " recipients=" in a tick line), or nullopt. */
std::optional<std::uint64_t> number_after(std::string_view text, std::string_view key);

/** The event of a text-format log line, "<ts> <level> <event> key=value ...", or empty. */
std::string_view logged_event(std::string_view line);
/** The value of field `key` in a text-format log line as written (a quoted one with its quotes), or nullopt.
 */
std::optional<std::string_view> logged_field(std::string_view line, std::string_view key);

/** Milliseconds from one log line's "2026-11-26T03:42:03.198Z" stamp to a later line's, or nullopt. */
std::optional<std::int64_t> log_ms_between(std::string_view earlier, std::string_view later);

/**
 * Runs `body` on a fresh io_context until it and everything it spawned have finished. Fails if
 * `deadline` passes first, or if work is still pending 5 s after the body returned; rethrows what the
 * body threw, so BOOST_REQUIRE inside coroutines works.
 */
void run_coro(std::function<net::awaitable<void>()> body, std::chrono::milliseconds deadline = 20s);

} // namespace wolf::test
