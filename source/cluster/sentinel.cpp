#include "cluster/sentinel.hpp"

#include "cluster/redis_client.hpp"

#include <charconv>
#include <vector>

namespace wolf {

redis_endpoint sentinel_endpoint(redis_endpoint const& endpoint, std::size_t index) {
    redis_endpoint sentinel;
    sentinel.host = endpoint.sentinels.at(index).host;
    sentinel.port = endpoint.sentinels.at(index).port;
    sentinel.username = endpoint.sentinel_username;
    sentinel.password = endpoint.sentinel_password;
    sentinel.tls = endpoint.tls;
    return sentinel;
}

net::awaitable<std::variant<sentinel_answer, std::string>> ask_sentinels(net::any_io_executor executor,
                                                                         redis_endpoint const& endpoint,
                                                                         duration timeout,
                                                                         net::ssl::context* tls) {
    std::string reasons;
    for (std::size_t i = 0; i < endpoint.sentinels.size(); ++i) {
        auto const sentinel = sentinel_endpoint(endpoint, i);
        auto const why = [&](std::string reason) {
            reasons +=
                (reasons.empty() ? "" : "; ") + std::string("sentinel ") + sentinel.address() + ": " + reason;
        };
        redis_client client(executor, timeout, tls);
        if (auto failure = co_await client.connect(sentinel); !failure.empty()) {
            why(std::move(failure));
            continue;
        }
        std::vector<std::string> args{"SENTINEL", "GET-MASTER-ADDR-BY-NAME", endpoint.master_name};
        auto const result = co_await client.command(std::move(args));
        if (!result.ok()) {
            why(result.failure);
            continue;
        }
        auto const& reply = result.reply;
        if (reply.type == redis_reply::kind::nil) {
            why("does not know a master named " + endpoint.master_name);
            continue;
        }
        unsigned port = 0;
        if (reply.type != redis_reply::kind::array || reply.elements.size() != 2 ||
            reply.elements[0].type != redis_reply::kind::string ||
            reply.elements[1].type != redis_reply::kind::string ||
            std::from_chars(reply.elements[1].text.data(),
                            reply.elements[1].text.data() + reply.elements[1].text.size(), port)
                    .ec != std::errc{} ||
            port == 0 || port > 65535) {
            why(reply.type == redis_reply::kind::error ? reply.text
                                                       : std::string("an answer that is not an address"));
            continue;
        }
        sentinel_answer answer{endpoint, i};
        answer.master.host = reply.elements[0].text;
        answer.master.port = static_cast<std::uint16_t>(port);
        co_return answer;
    }
    co_return reasons.empty() ? std::string("no sentinel") : reasons;
}

std::optional<redis_endpoint::host_port> parse_switch_master(std::string_view payload,
                                                             std::string_view master) {
    std::vector<std::string_view> words;
    while (!payload.empty()) {
        auto const space = payload.find(' ');
        words.push_back(payload.substr(0, space));
        payload = space == std::string_view::npos ? std::string_view{} : payload.substr(space + 1);
    }
    if (words.size() != 5 || words[0] != master) return std::nullopt;
    unsigned port = 0;
    auto const [end, ec] = std::from_chars(words[4].data(), words[4].data() + words[4].size(), port);
    if (ec != std::errc{} || end != words[4].data() + words[4].size() || port == 0 || port > 65535)
        return std::nullopt;
    return redis_endpoint::host_port{std::string(words[3]), static_cast<std::uint16_t>(port)};
}

} // namespace wolf
