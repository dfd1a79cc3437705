#define BOOST_TEST_MODULE logger
// The log line renderer: logfmt text with quoting, JSON objects with typed fields, one line per event.
#include "support/logger.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <unistd.h>

using namespace wolf;
using namespace std::chrono_literals;

namespace {

/** 2026-11-26T09:31:02.123Z. */
std::chrono::system_clock::time_point const when =
    std::chrono::sys_days{std::chrono::year{2026} / 11 / 26} + 9h + 31min + 2s + 123ms;

/** Renders one event with these fields, in `format`, the way log() collects them. */
template <class... T>
std::string render(log_format format, log_level level, std::string_view event,
                   log_field<T> const&... fields) {
    std::array<log_entry, sizeof...(T)> const entries{log_entry{fields.key, to_log_value(fields.value)}...};
    return format_log_line(format, level, when, event, entries);
}

boost::json::object parse_object(std::string const& line) {
    boost::system::error_code ec;
    auto value = boost::json::parse(line, ec);
    BOOST_REQUIRE_MESSAGE(!ec && value.is_object(), "not a JSON object: " << line);
    return std::move(value.as_object());
}

/** A streamable type that is neither a number nor a string. */
struct point {
    int x, y;
    friend std::ostream& operator<<(std::ostream& out, point const& p) { return out << p.x << ',' << p.y; }
};

/** Counts how often it is streamed: kv must not convert below the level. */
struct counted {
    static inline int streamed = 0;
    friend std::ostream& operator<<(std::ostream& out, counted const&) {
        ++streamed;
        return out << "counted";
    }
};

} // namespace

BOOST_AUTO_TEST_SUITE(text)

BOOST_AUTO_TEST_CASE(a_line_is_timestamp_padded_level_event_and_logfmt_pairs) {
    std::uint64_t const recipients = 2;
    BOOST_TEST(render(log_format::text, log_level::info, "tick", kv("number", 12),
                      kv("recipients", recipients), kv("dropped", 0u), kv("ok", true), kv("ratio", 0.5)) ==
               "2026-11-26T09:31:02.123Z info  tick number=12 recipients=2 dropped=0 ok=true ratio=0.5");
    BOOST_TEST(render(log_format::text, log_level::debug, "ping", kv("id", std::string("a-b"))) ==
               "2026-11-26T09:31:02.123Z debug ping id=a-b");
    BOOST_TEST(render(log_format::text, log_level::warn, "shutdown_complete") ==
               "2026-11-26T09:31:02.123Z warn  shutdown_complete");
    BOOST_TEST(render(log_format::text, log_level::error, "fatal", kv("signed", -3)) ==
               "2026-11-26T09:31:02.123Z error fatal signed=-3");
}

BOOST_AUTO_TEST_CASE(values_that_would_split_a_pair_or_a_line_are_json_quoted) {
    auto const value_of = [](std::string_view value) {
        auto const line = render(log_format::text, log_level::info, "e", kv("k", value));
        return line.substr(line.find(" k=") + 3);
    };
    BOOST_TEST(value_of("plain") == "plain");
    BOOST_TEST(value_of("Too many open files") == R"("Too many open files")");
    BOOST_TEST(value_of(R"(say "hi")") == R"("say \"hi\"")");
    BOOST_TEST(value_of("a=b") == R"("a=b")");
    BOOST_TEST(value_of("") == R"("")");
    BOOST_TEST(value_of("tab\there") == R"("tab\there")");
    BOOST_TEST(value_of("bye\n2026-11-26T09:31:02.123Z error fatal") ==
               R"("bye\n2026-11-26T09:31:02.123Z error fatal")");
    BOOST_TEST(value_of("cr\rlf") == R"("cr\rlf")");
    BOOST_TEST(value_of(std::string_view("nul\0x", 5)) == R"("nul\u0000x")");
}

BOOST_AUTO_TEST_CASE(other_types_are_written_with_their_stream_operator) {
    auto const endpoint = boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 54278);
    BOOST_TEST(
        render(log_format::text, log_level::info, "open", kv("remote", endpoint), kv("at", point{1, 2})) ==
        "2026-11-26T09:31:02.123Z info  open remote=127.0.0.1:54278 at=1,2");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(json)

BOOST_AUTO_TEST_CASE(a_line_is_one_object_with_ts_level_event_and_typed_fields) {
    std::size_t const connections = 7;
    auto const line = render(log_format::json, log_level::info, "tick", kv("number", 5), kv("recipients", 3u),
                             kv("connections", connections), kv("ratio", 0.25), kv("ok", false),
                             kv("id", "c0ffee"), kv("remote", point{1, 2}));
    BOOST_TEST(line.find('\n') == std::string::npos);
    BOOST_TEST(
        line.starts_with(R"({"ts":"2026-11-26T09:31:02.123Z","level":"info","event":"tick","number":5,)"),
        line);
    auto const object = parse_object(line);
    BOOST_TEST(object.size() == 10u);
    BOOST_TEST(object.at("number").is_int64());
    BOOST_TEST(object.at("number").as_int64() == 5);
    BOOST_TEST(object.at("recipients").to_number<int>() == 3);
    BOOST_TEST(object.at("connections").to_number<int>() == 7);
    BOOST_TEST(object.at("ratio").as_double() == 0.25);
    BOOST_TEST(object.at("ok").is_bool());
    BOOST_TEST(object.at("ok").as_bool() == false);
    BOOST_TEST(object.at("id").as_string() == "c0ffee");
    BOOST_TEST(object.at("remote").as_string() == "1,2");
}

BOOST_AUTO_TEST_CASE(a_newline_or_quote_in_a_value_stays_inside_the_string) {
    std::string const hostile = "bye\n{\"ts\":\"forged\"}\t\"quoted\" \\ end";
    auto const line = render(log_format::json, log_level::warn, "closed", kv("reason", hostile));
    BOOST_TEST(line.find('\n') == std::string::npos, line);
    auto const object = parse_object(line);
    BOOST_TEST(object.at("reason").as_string() == hostile);
    BOOST_TEST(object.at("ts").as_string() == "2026-11-26T09:31:02.123Z");
    BOOST_TEST(object.at("level").as_string() == "warn");
}

BOOST_AUTO_TEST_CASE(a_field_cannot_replace_ts_level_or_event) {
    auto const object = parse_object(render(log_format::json, log_level::info, "open", kv("event", "forged"),
                                            kv("ts", "forged"), kv("level", "error")));
    BOOST_TEST(object.at("event").as_string() == "open");
    BOOST_TEST(object.at("ts").as_string() == "2026-11-26T09:31:02.123Z");
    BOOST_TEST(object.at("level").as_string() == "info");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(levels)

BOOST_AUTO_TEST_CASE(below_the_level_nothing_is_converted_or_written) {
    // stderr goes to a pipe for the duration of the test.
    int pipe_fds[2];
    BOOST_REQUIRE(::pipe(pipe_fds) == 0);
    std::fflush(stderr);
    int const saved = ::dup(STDERR_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);

    set_log_level(log_level::warn);
    set_log_format(log_format::json);
    counted::streamed = 0;
    log_info("hidden", kv("value", counted{}));
    log_debug("hidden", kv("value", counted{}));
    BOOST_TEST(counted::streamed == 0);
    log_warn("shown", kv("value", counted{}));
    BOOST_TEST(counted::streamed == 1);
    set_log_level(log_level::off);
    log_error("hidden_too");

    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(pipe_fds[1]);
    std::string written;
    char chunk[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], chunk, sizeof chunk)) > 0;)
        written.append(chunk, static_cast<std::size_t>(n));
    ::close(pipe_fds[0]);
    set_log_level(log_level::info);
    set_log_format(log_format::text);

    BOOST_TEST(std::count(written.begin(), written.end(), '\n') == 1, written);
    auto const object = parse_object(written.substr(0, written.find('\n')));
    BOOST_TEST(object.at("event").as_string() == "shown");
    BOOST_TEST(object.at("value").as_string() == "counted");
}

BOOST_AUTO_TEST_CASE(levels_and_formats_parse_and_print) {
    BOOST_TEST((parse_log_format("json") == log_format::json));
    BOOST_TEST((parse_log_format("text") == log_format::text));
    BOOST_TEST(!parse_log_format("JSON"));
    BOOST_TEST(to_string(log_format::json) == "json");
    BOOST_TEST((parse_log_level("warn") == log_level::warn));
}

BOOST_AUTO_TEST_SUITE_END()
