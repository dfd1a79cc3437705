#include "harness.hpp"

#include "support/async.hpp"
#include "support/clients.hpp"
#include "support/process_stats.hpp"
#include "support/test_server.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace wolf::test {

process::process(std::vector<std::string> const& argv, options const& opts) {
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
    rlimit const files{opts.max_open_files.value_or(0), opts.max_open_files.value_or(0)};

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        ::dup2(fds[1], STDOUT_FILENO);
        ::dup2(fds[1], STDERR_FILENO);
        if (opts.max_open_files && ::setrlimit(RLIMIT_NOFILE, &files) != 0) ::_exit(126);
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] { drain(fd); });
}

process::~process() {
    if (!status_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    // The pipe's write end died with the child, so the reader sees the end of output and returns.
    if (reader_.joinable()) reader_.join();
}

void process::drain(int fd) {
    std::string pending;
    char chunk[16384];
    for (;;) {
        auto const n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        pending.append(chunk, static_cast<std::size_t>(n));
        auto const now = std::chrono::steady_clock::now();
        std::size_t start = 0;
        std::lock_guard lock(mutex_);
        for (auto eol = pending.find('\n'); eol != std::string::npos; eol = pending.find('\n', start)) {
            lines_.push_back({pending.substr(start, eol - start), now});
            start = eol + 1;
        }
        pending.erase(0, start);
    }
    std::lock_guard lock(mutex_);
    if (!pending.empty()) lines_.push_back({std::move(pending), std::chrono::steady_clock::now()});
    ::close(fd);
}

void process::send_signal(int signal) {
    if (!status_) ::kill(pid_, signal);
}

bool process::running() {
    if (status_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
}

std::optional<int> process::wait(std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= until) return std::nullopt;
        std::this_thread::sleep_for(5ms); // waitpid has no timeout; the output is drained meanwhile
    }
    return status_;
}

std::optional<output_line> process::take_line(std::string_view needle) {
    std::lock_guard lock(mutex_);
    for (; cursor_ < lines_.size(); ++cursor_)
        if (lines_[cursor_].text.find(needle) != std::string::npos) return lines_[cursor_++];
    return std::nullopt;
}

std::optional<output_line> process::wait_for_line(std::string_view needle,
                                                  std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto line = take_line(needle)) return line;
        if (std::chrono::steady_clock::now() >= until) return std::nullopt;
        std::this_thread::sleep_for(2ms);
    }
}

net::awaitable<std::optional<output_line>> process::async_wait_for_line(std::string_view needle,
                                                                        std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto line = take_line(needle)) co_return line;
        if (std::chrono::steady_clock::now() >= until) co_return std::nullopt;
        co_await pause(10ms);
    }
}

std::vector<output_line> process::lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
}

std::string process::tail(std::size_t max_bytes) const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (auto it = lines_.rbegin(); it != lines_.rend() && text.size() < max_bytes; ++it)
        text.insert(0, it->text + "\n");
    return text;
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

std::vector<std::string> server_command(std::string binary, std::vector<std::string> args) {
    std::vector<std::string> argv{std::move(binary), "--host", "127.0.0.1", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

std::uint16_t wait_until_listening(process& server) {
    auto const line = server.wait_for_line(" listening url=http://", 20s);
    BOOST_REQUIRE_MESSAGE(line, "the server did not start:\n" << server.tail());
    auto const port = number_after(line->text, " port=").value_or(0);
    BOOST_REQUIRE_MESSAGE(port > 0 && port <= 65535, "no port in: " << line->text);
    return static_cast<std::uint16_t>(port);
}

std::vector<std::string> sanitizer_environment() {
#if defined(__SANITIZE_ADDRESS__)
    char const* inherited = std::getenv("ASAN_OPTIONS");
    std::string options = inherited ? inherited : "";
    if (!options.empty()) options += ':';
    return {"ASAN_OPTIONS=" + options + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"};
#else
    return {};
#endif
}

metric_samples parse_metrics(std::string_view text) {
    metric_samples samples;
    while (!text.empty()) {
        auto const eol = text.find('\n');
        auto const line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        if (line.empty() || line.front() == '#') continue;
        auto const space = line.rfind(' ');
        if (space == std::string_view::npos) continue;
        double value = 0;
        auto const number = line.substr(space + 1);
        if (std::from_chars(number.data(), number.data() + number.size(), value).ec != std::errc{}) continue;
        samples.emplace(std::string(line.substr(0, space)), value);
    }
    return samples;
}

net::awaitable<metric_samples> scrape_metrics(std::uint16_t port) {
    auto const res = co_await http_request(port, http::verb::get, "/metrics");
    BOOST_REQUIRE_EQUAL(res.result_int(), 200u);
    co_return parse_metrics(res.body());
}

double metric(metric_samples const& samples, std::string_view name) {
    auto const it = samples.find(name);
    BOOST_REQUIRE_MESSAGE(it != samples.end(), "no metric " << name);
    return it->second;
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

std::optional<std::uint64_t> number_after(std::string_view text, std::string_view key) {
    auto at = text.find(key);
    if (at == std::string_view::npos) return std::nullopt;
    at += key.size();
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t'))
        ++at;
    std::uint64_t value = 0;
    auto const [end, ec] = std::from_chars(text.data() + at, text.data() + text.size(), value);
    if (ec != std::errc{}) return std::nullopt;
    return value;
}

std::string_view logged_event(std::string_view line) {
    // "<ts> <level padded to 5> <event> ...": the level is followed by one or more spaces.
    auto at = line.find(' ');
    if (at == std::string_view::npos) return {};
    at = line.find_first_not_of(' ', line.find(' ', at + 1));
    if (at == std::string_view::npos) return {};
    auto const end = line.find(' ', at);
    return line.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
}

std::optional<std::string_view> logged_field(std::string_view line, std::string_view key) {
    auto const needle = " " + std::string(key) + "=";
    auto at = line.find(needle);
    if (at == std::string_view::npos) return std::nullopt;
    at += needle.size();
    if (at < line.size() && line[at] == '"') {
        // A quoted value: up to the closing quote that no backslash escapes.
        auto end = at + 1;
        while (end < line.size() && line[end] != '"')
            end += line[end] == '\\' ? 2 : 1;
        return line.substr(at, std::min(end + 1, line.size()) - at);
    }
    auto const end = line.find(' ', at);
    return line.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
}

std::optional<std::int64_t> log_ms_between(std::string_view earlier, std::string_view later) {
    // Milliseconds since midnight UTC of a stamp; a later line may be past midnight.
    auto const stamp = [](std::string_view line) -> std::optional<std::int64_t> {
        if (line.size() < 24 || line[10] != 'T' || line[23] != 'Z') return std::nullopt;
        auto const field = [&](std::size_t at, std::size_t length) {
            int value = 0;
            std::from_chars(line.data() + at, line.data() + at + length, value);
            return std::int64_t{value};
        };
        return ((field(11, 2) * 60 + field(14, 2)) * 60 + field(17, 2)) * 1000 + field(20, 3);
    };
    auto const from = stamp(earlier);
    auto const to = stamp(later);
    if (!from || !to) return std::nullopt;
    constexpr std::int64_t day = 24 * 3600 * 1000;
    return (*to - *from + day) % day;
}

void run_coro(std::function<net::awaitable<void>()> body, std::chrono::milliseconds deadline) {
    net::io_context ioc;
    run_to_completion(ioc, body(), deadline);
}

} // namespace wolf::test
