#pragma once

// The one way tests run another program: the real binary, the stub client, redis-server, openssl, promtool.

#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace wolf::test {

using namespace std::chrono_literals;

/** One line a child wrote, and when the test read it. */
struct output_line {
    std::string text;
    std::chrono::steady_clock::time_point arrived;
};

/**
 * A child process with stdout and stderr on one pipe that a thread drains into lines, so a chatty child (the
 * server logs every tick) never blocks on a full pipe while the test is busy. A test waits for a line, for
 * the exit, or (from a coroutine, without blocking its io_context) for a line again: each wait wakes when the
 * child writes or exits, not on a poll. Waits for lines consume them through a cursor; lines() and output()
 * see everything. Only the process it started is ever signalled, by its pid.
 */
class child_process {
public:
    struct options {
        std::string stdin_path{};                           // a file for stdin; empty: the test's own stdin
        std::optional<unsigned long> max_open_files{};      // RLIMIT_NOFILE (soft and hard), like `ulimit -n`
        std::optional<unsigned long> max_open_files_hard{}; // the hard limit alone, like `ulimit -Hn`
        std::vector<std::string> environment{};             // NAME=VALUE entries added to the test's own
    };

    child_process(std::vector<std::string> const& argv, options const& opts);
    explicit child_process(std::vector<std::string> const& argv)
        : child_process(argv, options{}) {}
    child_process(child_process const&) = delete;
    child_process& operator=(child_process const&) = delete;
    /** Kills (SIGKILL) and reaps the child if it is still running. */
    ~child_process();

    pid_t pid() const noexcept { return pid_; }
    void send_signal(int signal);
    /** False once the child has exited (it is reaped then). */
    bool running();
    /** The exit status (or 128 + signal), or nullopt if the child is still running after `timeout`. Once it
     * returns a status, every line the child wrote has been read. */
    std::optional<int> wait(std::chrono::milliseconds timeout);

    /** The first line after the cursor that contains `needle`; the cursor moves past it. Blocks. */
    std::optional<output_line> wait_for_line(std::string_view needle, std::chrono::milliseconds timeout);
    /** The same from a coroutine: the caller's io_context keeps running meanwhile. */
    net::awaitable<std::optional<output_line>> async_wait_for_line(std::string_view needle,
                                                                   std::chrono::milliseconds timeout);

    /** Every line so far. */
    std::vector<output_line> lines() const;
    /** Everything written so far, one line after another. */
    std::string output() const;
    /** The last `max_bytes` of output, for failure messages. */
    std::string tail(std::size_t max_bytes = 4000) const;

private:
    struct waiter; // a coroutine waiting for output
    std::optional<output_line> take_line(std::string_view needle);
    void drain(int fd);

    pid_t pid_ = -1;
    int exit_fd_ = -1; // a pidfd: readable once the child has exited
    std::optional<int> status_;
    mutable std::mutex mutex_;
    std::condition_variable output_changed_;
    std::vector<output_line> lines_;
    std::size_t cursor_ = 0;
    bool drained_ = false; // the pipe reached its end
    std::vector<std::shared_ptr<waiter>> waiters_;
    std::thread reader_;
};

struct command_result {
    int exit_code = -1;
    std::string output;
};

/** Runs a command to completion (at most `timeout`) and returns its exit code and combined output. */
command_result run_command(std::vector<std::string> const& argv,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10),
                           std::string const& stdin_path = {});

/** The absolute path of `name` in one of the directories of $PATH, or empty if it is in none. */
std::string find_program(std::string_view name);

/** The CPUs each thread of process `pid` ("self" for this one) may run on, by thread id: the
 * Cpus_allowed_list of /proc/<pid>/task/<tid>/status, e.g. "0-1" or "1". */
std::map<std::string, std::string> cpus_of_threads(std::string const& pid = "self");

/** VmRSS of a process in KiB (0 if unreadable). */
std::size_t rss_kib(pid_t pid);
/** Open descriptors of a process, from /proc/PID/fd. */
std::size_t open_descriptors(pid_t pid);
/** Raises this process's RLIMIT_NOFILE soft limit to its hard limit; returns the new soft limit. */
unsigned long raise_open_file_limit();

/** A file in the temporary directory, named after `name` and this process, removed at the end. */
struct temp_file {
    temp_file(std::string_view name, std::string_view contents);
    temp_file(temp_file const&) = delete;
    temp_file& operator=(temp_file const&) = delete;
    ~temp_file();
    std::string path;
};

} // namespace wolf::test
