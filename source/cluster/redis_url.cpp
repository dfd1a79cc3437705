#include "cluster/redis_url.hpp"

#include <cctype>
#include <charconv>
#include <optional>
#include <tuple>

namespace wolf {
namespace {

constexpr std::string_view scheme = "redis://";
constexpr std::string_view tls_scheme = "rediss://";
constexpr std::string_view sentinel_scheme = "redis+sentinel://";
constexpr std::string_view tls_sentinel_scheme = "rediss+sentinel://";

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
    return true;
}

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        unsigned value = 0;
        if (i + 2 >= text.size()) return std::nullopt;
        auto const [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
        if (ec != std::errc{} || end != text.data() + i + 3) return std::nullopt;
        out.push_back(static_cast<char>(value));
        i += 2;
    }
    return out;
}

template <class Number>
std::optional<Number> whole_number(std::string_view text, Number max) {
    Number value{};
    if (text.empty() || text.size() > 10) return std::nullopt;
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > max) return std::nullopt;
    return value;
}

} // namespace

/** "host:port", an IPv6 host in brackets. */
std::string host_port_text(std::string const& host, std::uint16_t port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ':' + std::to_string(port);
}

std::string redis_endpoint::address() const {
    return host_port_text(host, port);
}

std::string redis_endpoint::display() const {
    std::string url(sentinels.empty() ? (tls ? tls_scheme : scheme)
                                      : (tls ? tls_sentinel_scheme : sentinel_scheme));
    if (!password.empty()) url += username + ":***@";
    if (sentinels.empty()) {
        url += address();
    } else {
        for (std::size_t i = 0; i < sentinels.size(); ++i)
            url += (i ? "," : "") + host_port_text(sentinels[i].host, sentinels[i].port);
        url += '/' + master_name;
    }
    url += '/' + std::to_string(db);
    if (!sentinel_password.empty())
        url += (sentinel_username.empty() ? "?" : "?sentinel_user=" + sentinel_username + "&") +
               "sentinel_password=***";
    return url;
}

namespace {

/** Reads "HOST[:PORT]" (an IPv6 host in brackets) into `out`; the reason it is not one otherwise. */
std::string parse_host_port(std::string_view text, redis_endpoint::host_port& out) {
    std::string_view port_text;
    if (text.starts_with('[')) {
        auto const close = text.find(']');
        if (close == std::string_view::npos) return "an IPv6 host needs its closing ']'";
        out.host = text.substr(1, close - 1);
        auto const after = text.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) return "unexpected text after the host";
            port_text = after.substr(1);
            if (port_text.empty()) return "the port is empty";
        }
    } else {
        auto const colon = text.rfind(':');
        out.host = text.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = text.substr(colon + 1);
            if (port_text.empty()) return "the port is empty";
        }
    }
    if (out.host.empty()) return "the host is empty";
    if (out.host.find_first_of(":/ ") != std::string::npos && !text.starts_with('['))
        return "the host is not a name or an address (an IPv6 address goes in brackets)";
    if (!port_text.empty()) {
        auto const port = whole_number<unsigned>(port_text, 65535);
        if (!port || *port == 0) return "the port must be a whole number from 1 to 65535";
        out.port = static_cast<std::uint16_t>(*port);
    }
    return {};
}

/** Reads "USER:PASSWORD" (percent-decoded) into `endpoint`; the reason it is not one otherwise. */
std::string parse_userinfo(std::string_view userinfo, redis_endpoint& endpoint) {
    auto const colon = userinfo.find(':');
    if (colon == std::string_view::npos)
        return "the password goes after a colon (redis://:PASSWORD@HOST or redis://USER:PASSWORD@HOST)";
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!user || !password) return "bad percent-encoding in the user or password";
    if (password->empty()) return "the password is empty";
    endpoint.username = std::move(*user);
    endpoint.password = std::move(*password);
    return {};
}

/** Reads a Sentinel URL's query, "sentinel_user=U&sentinel_password=P" (percent-decoded). */
std::string parse_sentinel_query(std::string_view query, redis_endpoint& endpoint) {
    while (!query.empty()) {
        auto const amp = query.find('&');
        auto const pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        auto const equals = pair.find('=');
        if (equals == std::string_view::npos) return "a query parameter needs a value (NAME=VALUE)";
        auto const name = pair.substr(0, equals);
        auto value = percent_decode(pair.substr(equals + 1));
        if (!value) return "bad percent-encoding in a query parameter";
        if (name == "sentinel_user")
            endpoint.sentinel_username = std::move(*value);
        else if (name == "sentinel_password")
            endpoint.sentinel_password = std::move(*value);
        else
            return "unknown query parameter '" + std::string(name) + "' (sentinel_user, sentinel_password)";
    }
    if (!endpoint.sentinel_username.empty() && endpoint.sentinel_password.empty())
        return "sentinel_user needs sentinel_password";
    return {};
}

std::string const usage = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS, or "
                          "redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]";

} // namespace

std::variant<redis_endpoint, std::string> parse_redis_url(std::string_view text) {
    redis_endpoint endpoint;
    bool sentinel = false;
    std::string_view rest;
    for (auto const& [prefix, is_tls, is_sentinel] :
         {std::tuple{tls_sentinel_scheme, true, true}, std::tuple{sentinel_scheme, false, true},
          std::tuple{tls_scheme, true, false}, std::tuple{scheme, false, false}})
        if (starts_with_nocase(text, prefix)) {
            endpoint.tls = is_tls;
            sentinel = is_sentinel;
            rest = text.substr(prefix.size());
            break;
        }
    if (rest.data() == nullptr) return "it must be " + usage;

    // A Sentinel URL's query (its values percent-encoded) comes off first; then the last '@' ends the user
    // information, so a password may hold an unencoded '@' or '/'.
    if (sentinel)
        if (auto const question = rest.rfind('?');
            question != std::string_view::npos && rest.substr(question).find('@') == std::string_view::npos) {
            if (auto why = parse_sentinel_query(rest.substr(question + 1), endpoint); !why.empty())
                return why;
            rest = rest.substr(0, question);
        }
    if (auto const at = rest.rfind('@'); at != std::string_view::npos) {
        if (auto why = parse_userinfo(rest.substr(0, at), endpoint); !why.empty()) return why;
        rest = rest.substr(at + 1);
    }
    if (rest.find_first_of("?#") != std::string_view::npos)
        return std::string(sentinel ? "fragments are not supported (percent-encode '@' in query values)"
                                    : "query parameters and fragments are not supported");

    auto const slash = rest.find('/');
    auto const hosts = rest.substr(0, slash);
    auto path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

    if (!sentinel) {
        redis_endpoint::host_port where{{}, endpoint.port};
        if (auto why = parse_host_port(hosts, where); !why.empty()) return why;
        endpoint.host = std::move(where.host);
        endpoint.port = where.port;
    } else {
        for (std::string_view list = hosts;;) {
            auto const comma = list.find(',');
            redis_endpoint::host_port where{{}, 26379};
            if (auto why = parse_host_port(list.substr(0, comma), where); !why.empty())
                return "sentinel " + std::to_string(endpoint.sentinels.size() + 1) + ": " + why;
            endpoint.sentinels.push_back(std::move(where));
            if (comma == std::string_view::npos) break;
            list = list.substr(comma + 1);
        }
        auto const name_end = path.find('/');
        endpoint.master_name = path.substr(0, name_end);
        if (endpoint.master_name.empty())
            return std::string("the master's name is missing (redis+sentinel://HOST:PORT,.../MASTER[/DB])");
        path = name_end == std::string_view::npos ? std::string_view{} : path.substr(name_end + 1);
    }
    if (!path.empty()) {
        auto const db = whole_number<unsigned>(path, 1'000'000);
        if (!db) return std::string("the database must be a whole number (.../DB)");
        endpoint.db = *db;
    }
    return endpoint;
}

std::string mask_redis_url(std::string_view text) {
    std::string masked(text);
    // A sentinel_password in the query, up to the next '&'.
    constexpr std::string_view key = "sentinel_password=";
    if (auto const at = masked.find(key); at != std::string::npos) {
        auto const from = at + key.size();
        auto const to = masked.find('&', from);
        masked.replace(from, (to == std::string::npos ? masked.size() : to) - from, "***");
    }
    auto const start = masked.find("://");
    auto const question = masked.find('?');
    auto const at = masked.rfind('@', question == std::string::npos ? std::string::npos : question);
    if (start == std::string::npos || at == std::string::npos || at < start) return masked;
    auto const colon = masked.find(':', start + 3);
    if (colon == std::string::npos || colon > at) return masked;
    return masked.substr(0, colon + 1) + "***" + masked.substr(at);
}

} // namespace wolf
