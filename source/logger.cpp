#include "logger.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace wolf {
namespace {

std::atomic<log_level> current_level{log_level::info};

constexpr std::array<std::string_view, 5> level_names{"debug", "info", "warn", "error", "off"};

} // namespace

std::optional<log_level> parse_log_level(std::string_view text) noexcept {
    for (std::size_t i = 0; i < level_names.size(); ++i)
        if (text == level_names[i]) return static_cast<log_level>(i);
    return std::nullopt;
}

std::string_view to_string(log_level level) noexcept {
    return level_names.at(static_cast<std::size_t>(level));
}

std::optional<log_format> parse_log_format(std::string_view text) noexcept {
    if (text == "text") return log_format::text;
    if (text == "json") return log_format::json;
    return std::nullopt;
}

std::string_view to_string(log_format format) noexcept {
    return format == log_format::json ? "json" : "text";
}

void set_log_level(log_level level) noexcept {
    current_level.store(level, std::memory_order_relaxed);
}

bool log_enabled(log_level level) noexcept {
    return level != log_level::off && level >= current_level.load(std::memory_order_relaxed);
}

void write_log_line(log_level level, std::string_view message) {
    using namespace std::chrono;
    auto const now = system_clock::now();
    auto const seconds = system_clock::to_time_t(now);
    auto const millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);

    char stamp[32];
    auto const stamp_len = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char head[64];
    auto const head_len =
        std::snprintf(head, sizeof head, "%.*s.%03dZ %-5s ", static_cast<int>(stamp_len), stamp,
                      static_cast<int>(millis), level_names.at(static_cast<std::size_t>(level)).data());

    // One write per line so lines from concurrent writers (tests, a future thread pool) never interleave.
    std::string line;
    line.reserve(static_cast<std::size_t>(head_len) + message.size() + 1);
    line.append(head, static_cast<std::size_t>(head_len)).append(message).push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace wolf
