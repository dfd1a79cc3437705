#include "child_process.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace wolf::test {

child_process::child_process(std::vector<std::string> const& argv, std::string const& stdin_path) {
    int input = -1;
    if (!stdin_path.empty()) {
        input = ::open(stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (input < 0) throw std::runtime_error("cannot open " + stdin_path);
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        if (input >= 0) ::dup2(input, STDIN_FILENO);
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        std::vector<char*> args;
        for (auto const& arg : argv)
            args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    if (input >= 0) ::close(input);
    fd_ = fds[0];
}

child_process::~child_process() {
    if (!status_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
}

std::optional<std::string> child_process::read_line(std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto const eol = pending_.find('\n'); eol != std::string::npos) {
            auto line = pending_.substr(0, eol);
            pending_.erase(0, eol + 1);
            return line;
        }
        auto const left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0 || fd_ < 0) return std::nullopt;
        pollfd pfd{fd_, POLLIN, 0};
        int const ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return std::nullopt;
        char chunk[4096];
        auto const n = ::read(fd_, chunk, sizeof chunk);
        if (n <= 0) {
            if (pending_.empty()) return std::nullopt;
            return std::exchange(pending_, {});
        }
        pending_.append(chunk, static_cast<std::size_t>(n));
        output_.append(chunk, static_cast<std::size_t>(n));
    }
}

std::optional<std::string> child_process::wait_for_line(std::string_view needle,
                                                        std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto const left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        auto line = read_line(left);
        if (!line) return std::nullopt;
        if (line->find(needle) != std::string::npos) return line;
    }
}

void child_process::send_signal(int signal) {
    if (!status_) ::kill(pid_, signal);
}

std::optional<int> child_process::wait(std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    while (!status_) {
        int status = 0;
        auto const r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        if (std::chrono::steady_clock::now() >= until) return std::nullopt;
        // Drain output meanwhile so the child never blocks on a full pipe.
        read_line(std::chrono::milliseconds(10));
    }
    return status_;
}

command_result run_command(std::vector<std::string> const& argv, std::chrono::milliseconds timeout,
                           std::string const& stdin_path) {
    child_process child(argv, stdin_path);
    auto const status = child.wait(timeout);
    while (child.read_line(std::chrono::milliseconds(100))) {
    }
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

} // namespace wolf::test
