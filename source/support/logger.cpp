#include "support/logger.hpp"

#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace wolf {
namespace {

std::atomic<log_level> current_level{log_level::info};
std::atomic<log_format> current_format{log_format::text};

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

void set_log_format(log_format format) noexcept {
    current_format.store(format, std::memory_order_relaxed);
}

bool log_enabled(log_level level) noexcept {
    return level != log_level::off && level >= current_level.load(std::memory_order_relaxed);
}

namespace {

/** "2026-11-26T09:31:02.123Z". */
std::string format_timestamp(std::chrono::system_clock::time_point when) {
    using namespace std::chrono;
    auto const seconds = system_clock::to_time_t(when);
    auto millis = duration_cast<milliseconds>(when.time_since_epoch()).count() % 1000;
    if (millis < 0) millis += 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[40];
    auto const length = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(stamp + length, sizeof stamp - length, ".%03dZ", static_cast<int>(millis));
    return stamp;
}

/** logfmt leaves a value bare unless it would split the line or the pair: then it is a JSON string. */
bool needs_quotes(std::string_view text) noexcept {
    if (text.empty()) return true;
    for (char const c : text) {
        auto const byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7f || c == '"' || c == '=') return true;
    }
    return false;
}

template <class Number>
void append_number(std::string& line, Number value) {
    char digits[32];
    auto const [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
    line.append(digits, end);
}

void append_text_value(std::string& line, log_value const& value) {
    std::visit(
        [&](auto const& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, bool>) {
                line.append(v ? "true" : "false");
            } else if constexpr (std::is_arithmetic_v<V>) {
                append_number(line, v);
            } else {
                std::string_view const text = v;
                if (needs_quotes(text))
                    line.append(boost::json::serialize(boost::json::string_view(text.data(), text.size())));
                else
                    line.append(text);
            }
        },
        value);
}

std::string format_text(std::string_view stamp, log_level level, std::string_view event,
                        std::span<log_entry const> fields) {
    std::string line;
    line.reserve(64 + event.size() + 24 * fields.size());
    line.append(stamp).push_back(' ');
    auto const name = to_string(level);
    line.append(name).append(name.size() < 5 ? 5 - name.size() : 0, ' ').push_back(' ');
    line.append(event);
    for (auto const& field : fields) {
        line.push_back(' ');
        line.append(field.key).push_back('=');
        append_text_value(line, field.value);
    }
    return line;
}

std::string format_json(std::string_view stamp, log_level level, std::string_view event,
                        std::span<log_entry const> fields) {
    // Most lines fit in the stack buffer: no allocation for the object itself.
    unsigned char buffer[2048];
    boost::json::monotonic_resource resource(buffer, sizeof buffer);
    boost::json::object line(fields.size() + 3, &resource);
    line.emplace("ts", boost::json::string_view(stamp.data(), stamp.size()));
    auto const name = to_string(level);
    line.emplace("level", boost::json::string_view(name.data(), name.size()));
    line.emplace("event", boost::json::string_view(event.data(), event.size()));
    for (auto const& field : fields) {
        boost::json::string_view const key(field.key.data(), field.key.size());
        // emplace keeps the first value of a key: a field can never replace ts, level or event.
        std::visit(
            [&](auto const& v) {
                using V = std::decay_t<decltype(v)>;
                if constexpr (std::is_arithmetic_v<V>)
                    line.emplace(key, v);
                else {
                    std::string_view const text = v;
                    line.emplace(key, boost::json::string_view(text.data(), text.size()));
                }
            },
            field.value);
    }
    return boost::json::serialize(line);
}

} // namespace

std::string format_log_line(log_format format, log_level level, std::chrono::system_clock::time_point when,
                            std::string_view event, std::span<log_entry const> fields) {
    auto const stamp = format_timestamp(when);
    return format == log_format::json ? format_json(stamp, level, event, fields)
                                      : format_text(stamp, level, event, fields);
}

void write_log_line(log_level level, std::string_view event, std::span<log_entry const> fields) {
    auto line = format_log_line(current_format.load(std::memory_order_relaxed), level,
                                std::chrono::system_clock::now(), event, fields);
    line.push_back('\n');
    // One write per line so lines from concurrent writers (tests, a future thread pool) never interleave.
    std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace wolf
