#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace wolf {

enum class log_level { debug, info, warn, error, off };
/** text: "<ts> <level> <event> key=value ..." (logfmt); json: one object per line for log shippers. */
enum class log_format { text, json };

std::optional<log_level> parse_log_level(std::string_view text) noexcept;
std::string_view to_string(log_level level) noexcept;
std::optional<log_format> parse_log_format(std::string_view text) noexcept;
std::string_view to_string(log_format format) noexcept;

void set_log_level(log_level level) noexcept;
void set_log_format(log_format format) noexcept;
bool log_enabled(log_level level) noexcept;

/**
 * One field of an event as `kv` makes it: a name and a reference to the value, so nothing is converted
 * unless the line is written. Lives only as long as the log call's full expression.
 */
template <class T>
struct log_field {
    std::string_view key;
    T const& value;
};

/** `log_info("tick", kv("number", n), kv("recipients", q))`. Integers and floating point become JSON
 * numbers, bool true/false, string-likes strings, anything else streamable (endpoints...) its `<<` text. */
template <class T>
log_field<T> kv(std::string_view key, T const& value) noexcept {
    return {key, value};
}

/** A field's value once the line is written. string_view refers to the caller's value; string holds what
 * a type's operator<< made. */
using log_value = std::variant<bool, std::int64_t, std::uint64_t, double, std::string_view, std::string>;

/** A field ready to render. */
struct log_entry {
    std::string_view key;
    log_value value;
};

template <class T>
log_value to_log_value(T const& value) {
    if constexpr (std::same_as<T, bool>)
        return value;
    else if constexpr (std::integral<T> && std::is_signed_v<T>)
        return static_cast<std::int64_t>(value);
    else if constexpr (std::integral<T>)
        return static_cast<std::uint64_t>(value);
    else if constexpr (std::floating_point<T>)
        return static_cast<double>(value);
    else if constexpr (std::is_convertible_v<T const&, std::string_view>)
        return std::string_view(value);
    else {
        std::ostringstream text;
        text << value;
        return std::move(text).str();
    }
}

/**
 * One event as one line, without the newline. text: the UTC timestamp with milliseconds, the level padded
 * to five, the event, then `key=value` pairs; a value that is empty or holds a space, '"', '=' or a control
 * character is written as a JSON string, so a line never splits. json: {"ts":..,"level":..,"event":..,
 * fields...} serialized by Boost.JSON; a field named ts, level or event is dropped.
 */
std::string format_log_line(log_format format, log_level level, std::chrono::system_clock::time_point when,
                            std::string_view event, std::span<log_entry const> fields);

/** Writes one event to stderr in the current format, with one write so concurrent lines never mix. */
void write_log_line(log_level level, std::string_view event, std::span<log_entry const> fields);

/** Logs one event; below the level nothing is converted or formatted. */
template <class... T>
void log(log_level level, std::string_view event, log_field<T> const&... fields) {
    if (!log_enabled(level)) return;
    std::array<log_entry, sizeof...(T)> const entries{log_entry{fields.key, to_log_value(fields.value)}...};
    write_log_line(level, event, entries);
}

template <class... T>
void log_debug(std::string_view event, log_field<T> const&... fields) {
    log(log_level::debug, event, fields...);
}
template <class... T>
void log_info(std::string_view event, log_field<T> const&... fields) {
    log(log_level::info, event, fields...);
}
template <class... T>
void log_warn(std::string_view event, log_field<T> const&... fields) {
    log(log_level::warn, event, fields...);
}
template <class... T>
void log_error(std::string_view event, log_field<T> const&... fields) {
    log(log_level::error, event, fields...);
}

} // namespace wolf
