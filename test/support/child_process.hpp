#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace wolf::test {

/** A child process whose stdout and stderr arrive on one pipe, read line by line with timeouts. Its stdin
 * is the test's, or the file `stdin_path` if one is given. */
class child_process {
public:
    explicit child_process(std::vector<std::string> const& argv, std::string const& stdin_path = {});
    child_process(child_process const&) = delete;
    child_process& operator=(child_process const&) = delete;
    /** Kills (SIGKILL) and reaps the child if it is still running. */
    ~child_process();

    pid_t pid() const noexcept { return pid_; }

    /** The next line of output, or nullopt on end of output or timeout. */
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);
    /** Reads lines until one contains `needle`; returns it, or nullopt on end of output or timeout. */
    std::optional<std::string> wait_for_line(std::string_view needle, std::chrono::milliseconds timeout);

    void send_signal(int signal);
    /** The exit status (or 128 + signal), or nullopt if the child is still running after `timeout`. */
    std::optional<int> wait(std::chrono::milliseconds timeout);

    /** Everything read so far, for failure messages. */
    std::string const& output() const noexcept { return output_; }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
    std::string pending_;
    std::string output_;
    std::optional<int> status_;
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

} // namespace wolf::test
