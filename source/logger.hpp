#pragma once

#include <optional>
#include <sstream>
#include <string_view>

namespace wolf {

enum class log_level { debug, info, warn, error, off };
/** text: "<ts> <level> <event> key=value ..." (logfmt); json: one object per line for log shippers. */
enum class log_format { text, json };

std::optional<log_level> parse_log_level(std::string_view text) noexcept;
std::string_view to_string(log_level level) noexcept;
std::optional<log_format> parse_log_format(std::string_view text) noexcept;
std::string_view to_string(log_format format) noexcept;

void set_log_level(log_level level) noexcept;
bool log_enabled(log_level level) noexcept;

/** Writes one line to stderr: an ISO-8601 UTC timestamp, the level, the message. */
void write_log_line(log_level level, std::string_view message);

/** Streams the arguments into one line; the arguments are not evaluated into text below the level. */
template <class... Args>
void log(log_level level, Args const&... args) {
    if (!log_enabled(level)) return;
    std::ostringstream line;
    (line << ... << args);
    write_log_line(level, line.view());
}

template <class... Args>
void log_debug(Args const&... args) {
    log(log_level::debug, args...);
}
template <class... Args>
void log_info(Args const&... args) {
    log(log_level::info, args...);
}
template <class... Args>
void log_warn(Args const&... args) {
    log(log_level::warn, args...);
}
template <class... Args>
void log_error(Args const&... args) {
    log(log_level::error, args...);
}

} // namespace wolf
