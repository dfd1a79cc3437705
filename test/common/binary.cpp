#include "common/binary.hpp"

#include "common/clients.hpp"

#include <algorithm>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <charconv>
#include <cstdlib>

namespace wolf::test {

std::vector<std::string> server_command(std::string binary, std::vector<std::string> args) {
    std::vector<std::string> argv{std::move(binary), "--host", "127.0.0.1", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

std::uint16_t wait_until_listening(child_process& server, std::string_view scheme) {
    auto const line = server.wait_for_line(" listening url=", 20s);
    BOOST_REQUIRE_MESSAGE(line, "the server did not start:\n" << server.tail());
    auto const prefix = " url=" + std::string(scheme) + "://127.0.0.1:";
    auto const at = line->text.find(prefix);
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, line->text);
    auto const port = number_after(line->text, " port=").value_or(0);
    BOOST_REQUIRE_MESSAGE(port > 0 && port <= 65535, "no port in: " << line->text);
    BOOST_TEST(line->text.find(":" + std::to_string(port) + " ") == at + prefix.size() - 1, line->text);
    return static_cast<std::uint16_t>(port);
}

cluster_node::cluster_node(std::string binary, std::string const& redis_url, std::vector<std::string> args)
    : server(
          [&] {
              args.insert(args.begin(), {"--redis", redis_url});
              return server_command(std::move(binary), std::move(args));
          }(),
          {.environment = sanitizer_environment()})
    , port(wait_until_listening(server)) {
}

net::awaitable<health> healthz(std::uint16_t port) {
    auto const res = co_await http_request(port, http::verb::get, "/healthz");
    BOOST_REQUIRE(res.result_int() == 200u);
    auto const body = boost::json::parse(res.body()).as_object();
    health result;
    result.broker = body.at("broker").as_string();
    result.connected = body.at("broker_connected").as_bool();
    result.leader = body.at("leader").as_bool();
    result.connections = body.at("connections").as_int64();
    if (auto const* redis = body.if_contains("redis")) {
        auto const& r = redis->as_object();
        result.master = r.at("master").as_string();
        result.role = r.at("role").as_string();
        if (auto const* sentinel = r.if_contains("sentinel")) result.sentinel = sentinel->as_string();
        result.failovers = r.at("failovers").to_number<std::uint64_t>();
        result.deck = r.at("deck").as_string();
        result.deck_fingerprint = r.at("deck_fingerprint").as_string();
    }
    co_return result;
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

} // namespace wolf::test
