#include "probe.hpp"

#include "support/async.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <sstream>

namespace wolf::bench {

net::awaitable<http_reply> http_get(net::ip::tcp::endpoint endpoint, std::string target,
                                    std::chrono::milliseconds timeout) {
    beast::tcp_stream stream(co_await net::this_coro::executor);
    // One deadline for connect, write and read together: a probe never waits longer than asked.
    stream.expires_after(timeout);
    if (auto [ec] = co_await stream.async_connect(endpoint, use_nothrow); ec)
        co_return http_reply{0, {}, "connect: " + ec.message()};

    std::ostringstream host;
    host << endpoint;
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, host.str());
    request.set(http::field::user_agent, "wolf-bench");
    request.keep_alive(false);
    if (auto [ec, n] = co_await http::async_write(stream, request, use_nothrow); ec)
        co_return http_reply{0, {}, "write: " + ec.message()};

    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    if (auto [ec, n] = co_await http::async_read(stream, buffer, response, use_nothrow); ec)
        co_return http_reply{0, {}, "read: " + ec.message()};
    beast::error_code ignored;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    co_return http_reply{response.result_int(), std::move(response.body()), {}};
}

std::optional<health> parse_health(std::string_view body) {
    boost::json::error_code ec;
    auto const value = boost::json::parse(body, ec);
    if (ec || !value.is_object()) return std::nullopt;
    auto const& object = value.get_object();
    auto const* status = object.if_contains("status");
    if (!status || !status->is_string() || status->get_string() != "ok") return std::nullopt;
    auto const count = [&](std::string_view name) -> std::optional<std::uint64_t> {
        auto const* field = object.if_contains(name);
        if (field && field->is_uint64()) return field->get_uint64();
        if (field && field->is_int64() && field->get_int64() >= 0)
            return static_cast<std::uint64_t>(field->get_int64());
        return std::nullopt;
    };
    auto const connections = count("connections");
    auto const subscribers = count("subscribers");
    if (!connections || !subscribers) return std::nullopt;
    return health{*connections, *subscribers};
}

namespace {

/** Calls `sample(labels, value)` for every sample line of `family`; labels without the braces. */
template <class Sample>
void for_each_sample(std::string_view text, std::string_view family, Sample sample) {
    while (!text.empty()) {
        auto const end = text.find('\n');
        auto const line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (line.empty() || line.front() == '#' || !line.starts_with(family)) continue;
        auto rest = line.substr(family.size());
        std::string_view labels;
        if (rest.starts_with('{')) {
            auto const close = rest.find('}');
            if (close == std::string_view::npos) continue;
            labels = rest.substr(1, close - 1);
            rest = rest.substr(close + 1);
        }
        // Another family that merely starts with this name ("wolf_connections_total") has no space here.
        if (!rest.starts_with(' ')) continue;
        rest.remove_prefix(rest.find_first_not_of(' '));
        rest = rest.substr(0, rest.find(' ')); // an optional timestamp follows the value
        double value = 0;
        auto const [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
        if (ec == std::errc{} && ptr == rest.data() + rest.size()) sample(labels, value);
    }
}

} // namespace

std::optional<double> metric_sum(std::string_view text, std::string_view family) {
    std::optional<double> sum;
    for_each_sample(text, family, [&](std::string_view, double value) { sum = sum.value_or(0) + value; });
    return sum;
}

std::vector<metric_sample> metric_samples(std::string_view text, std::string_view family) {
    std::vector<metric_sample> samples;
    for_each_sample(text, family, [&](std::string_view labels, double value) {
        samples.push_back({std::string(labels), value});
    });
    return samples;
}

} // namespace wolf::bench
