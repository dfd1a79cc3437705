#include "common/process.hpp"

#include "support/async.hpp"
#include "support/process_stats.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace wolf::test {

/** A coroutine waiting for output: the drain thread wakes it by cancelling its timer on its own executor. */
struct child_process::waiter {
    explicit waiter(net::any_io_executor executor)
        : timer(std::move(executor)) {}
    net::steady_timer timer;
};

child_process::child_process(std::vector<std::string> const& argv, options const& opts) {
    // Everything the child needs is built before fork: between fork and exec only async-signal-safe calls.
    std::vector<std::string> environment;
    for (char** entry = environ; *entry; ++entry)
        environment.emplace_back(*entry);
    for (auto const& entry : opts.environment) {
        auto const name = entry.substr(0, entry.find('=') + 1);
        std::erase_if(environment, [&](std::string const& e) { return e.starts_with(name); });
        environment.push_back(entry);
    }
    std::vector<char*> args;
    for (auto const& arg : argv)
        args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (auto const& entry : environment)
        envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
    auto const hard = opts.max_open_files_hard ? opts.max_open_files_hard : opts.max_open_files;
    rlimit const files{opts.max_open_files.value_or(hard.value_or(0)), hard.value_or(0)};

    int input = -1;
    if (!opts.stdin_path.empty()) {
        input = ::open(opts.stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (input < 0) throw std::runtime_error("cannot open " + opts.stdin_path);
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        if (input >= 0) ::dup2(input, STDIN_FILENO);
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        if (hard && ::setrlimit(RLIMIT_NOFILE, &files) != 0) ::_exit(126);
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    if (input >= 0) ::close(input);
    // -1 where the call is unknown (under Valgrind, which warns at each call: it is tried once): wait()
    // then takes the end of output as the exit.
    static bool pidfd_known = true;
    if (pidfd_known) exit_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (exit_fd_ < 0 && errno == ENOSYS) pidfd_known = false;
    reader_ = std::thread([this, fd = fds[0]] { drain(fd); });
}

child_process::~child_process() {
    if (!status_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    // The pipe's write end died with the child, so the reader sees the end of output and returns.
    if (reader_.joinable()) reader_.join();
    if (exit_fd_ >= 0) ::close(exit_fd_);
}

void child_process::drain(int fd) {
    std::string pending;
    char chunk[16384];
    auto const publish = [this](std::vector<output_line> fresh, bool end) {
        std::lock_guard lock(mutex_);
        std::move(fresh.begin(), fresh.end(), std::back_inserter(lines_));
        drained_ = end;
        output_changed_.notify_all();
        for (auto const& w : waiters_)
            net::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
    };
    for (;;) {
        auto const n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        pending.append(chunk, static_cast<std::size_t>(n));
        auto const now = std::chrono::steady_clock::now();
        std::vector<output_line> fresh;
        std::size_t start = 0;
        for (auto eol = pending.find('\n'); eol != std::string::npos; eol = pending.find('\n', start)) {
            fresh.push_back({pending.substr(start, eol - start), now});
            start = eol + 1;
        }
        pending.erase(0, start);
        if (!fresh.empty()) publish(std::move(fresh), false);
    }
    std::vector<output_line> last;
    if (!pending.empty()) last.push_back({std::move(pending), std::chrono::steady_clock::now()});
    publish(std::move(last), true);
    ::close(fd);
}

void child_process::send_signal(int signal) {
    if (!status_) ::kill(pid_, signal);
}

bool child_process::running() {
    if (status_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    if (exit_fd_ >= 0) {
        pollfd exited{exit_fd_, POLLIN, 0};
        int ready = 0;
        do
            ready = ::poll(&exited, 1, static_cast<int>(timeout.count()));
        while (ready < 0 && errno == EINTR);
        if (ready <= 0 || running()) return std::nullopt;
        // The child is gone, and with it the pipe's write end (unless a child of its own still holds it):
        // its last lines are on their way to the reader.
        std::unique_lock lock(mutex_);
        output_changed_.wait_for(lock, 5s, [this] { return drained_; });
        return status_;
    }
    // Without a pidfd: the end of the child's output is its exit (none of the programs the tests run hands
    // its stdout to a process that outlives it).
    {
        std::unique_lock lock(mutex_);
        if (!output_changed_.wait_for(lock, timeout, [this] { return drained_; })) return std::nullopt;
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
}

std::optional<output_line> child_process::take_line(std::string_view needle) {
    for (; cursor_ < lines_.size(); ++cursor_)
        if (lines_[cursor_].text.find(needle) != std::string::npos) return lines_[cursor_++];
    return std::nullopt;
}

std::optional<output_line> child_process::wait_for_line(std::string_view needle,
                                                        std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    std::optional<output_line> line;
    output_changed_.wait_for(lock, timeout, [&] { return (line = take_line(needle)) || drained_; });
    return line;
}

net::awaitable<std::optional<output_line>>
child_process::async_wait_for_line(std::string_view needle, std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    auto const self = std::make_shared<waiter>(co_await net::this_coro::executor);
    std::optional<output_line> line;
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            std::erase(waiters_, self);
            if ((line = take_line(needle)) || drained_ || std::chrono::steady_clock::now() >= until) break;
            waiters_.push_back(self);
        }
        // Woken early (operation_aborted) when the child writes; at the deadline otherwise.
        self->timer.expires_at(until);
        co_await self->timer.async_wait(use_nothrow);
    }
    co_return line;
}

std::vector<output_line> child_process::lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
}

std::string child_process::output() const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (auto const& line : lines_)
        text.append(line.text).push_back('\n');
    return text;
}

std::string child_process::tail(std::size_t max_bytes) const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (auto it = lines_.rbegin(); it != lines_.rend() && text.size() < max_bytes; ++it)
        text.insert(0, it->text + "\n");
    return text;
}

command_result run_command(std::vector<std::string> const& argv, std::chrono::milliseconds timeout,
                           std::string const& stdin_path) {
    child_process child(argv, {.stdin_path = stdin_path});
    auto const status = child.wait(timeout);
    return {status.value_or(-1), child.output()};
}

std::string find_program(std::string_view name) {
    char const* path = std::getenv("PATH");
    std::string_view directories = path ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!directories.empty()) {
        auto const colon = directories.find(':');
        auto const directory = directories.substr(0, colon);
        directories.remove_prefix(colon == std::string_view::npos ? directories.size() : colon + 1);
        if (directory.empty()) continue;
        auto candidate = std::string(directory) + "/" + std::string(name);
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

std::map<std::string, std::string> cpus_of_threads(std::string const& pid) {
    std::map<std::string, std::string> result;
    for (auto const& task : std::filesystem::directory_iterator("/proc/" + pid + "/task")) {
        std::ifstream status(task.path() / "status");
        for (std::string line; std::getline(status, line);)
            if (line.starts_with("Cpus_allowed_list:"))
                result[task.path().filename()] = line.substr(line.find_last_of(" \t") + 1);
    }
    return result;
}

std::size_t rss_kib(pid_t pid) {
    auto const stats = read_process_stats(pid);
    return stats ? stats->resident_memory_bytes / 1024 : 0;
}

std::size_t open_descriptors(pid_t pid) {
    return count_open_fds(pid).value_or(0);
}

unsigned long raise_open_file_limit() {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
}

temp_file::temp_file(std::string_view name, std::string_view contents)
    : path((std::filesystem::temp_directory_path() /
            ("wolf-" + std::to_string(::getpid()) + "-" + std::string(name)))
               .string()) {
    std::ofstream(path, std::ios::binary) << contents;
}

temp_file::~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
}

} // namespace wolf::test
