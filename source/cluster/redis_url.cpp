#include "cluster/redis_url.hpp"

#include <cctype>
#include <charconv>
#include <optional>

namespace wolf {
namespace {

constexpr std::string_view scheme = "redis://";
constexpr std::string_view tls_scheme = "rediss://";

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

std::string redis_endpoint::display() const {
    std::string url(tls ? tls_scheme : scheme);
    if (!password.empty()) url += username + ":***@";
    url += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    url += ':' + std::to_string(port) + '/' + std::to_string(db);
    return url;
}

std::variant<redis_endpoint, std::string> parse_redis_url(std::string_view text) {
    redis_endpoint endpoint;
    endpoint.tls = starts_with_nocase(text, tls_scheme);
    if (!endpoint.tls && !starts_with_nocase(text, scheme))
        return std::string(
            "it must start with redis:// or rediss:// (TLS): redis://[:PASSWORD@]HOST[:PORT][/DB]");
    auto rest = text.substr(endpoint.tls ? tls_scheme.size() : scheme.size());

    // The last '@' ends the user information, so a password may hold an unencoded '@' or '/'.
    if (auto const at = rest.rfind('@'); at != std::string_view::npos) {
        auto const userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        auto const colon = userinfo.find(':');
        if (colon == std::string_view::npos)
            return std::string("the password goes after a colon (redis://:PASSWORD@HOST or "
                               "redis://USER:PASSWORD@HOST)");
        auto user = percent_decode(userinfo.substr(0, colon));
        auto password = percent_decode(userinfo.substr(colon + 1));
        if (!user || !password) return std::string("bad percent-encoding in the user or password");
        if (password->empty()) return std::string("the password is empty");
        endpoint.username = std::move(*user);
        endpoint.password = std::move(*password);
    }
    if (rest.find_first_of("?#") != std::string_view::npos)
        return std::string("query parameters and fragments are not supported");

    auto const slash = rest.find('/');
    auto const host_port = rest.substr(0, slash);
    auto const path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

    std::string_view port_text;
    if (host_port.starts_with('[')) {
        auto const close = host_port.find(']');
        if (close == std::string_view::npos) return std::string("an IPv6 host needs its closing ']'");
        endpoint.host = host_port.substr(1, close - 1);
        auto const after = host_port.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) return std::string("unexpected text after the host");
            port_text = after.substr(1);
            if (port_text.empty()) return std::string("the port is empty");
        }
    } else {
        auto const colon = host_port.rfind(':');
        endpoint.host = host_port.substr(0, colon);
        if (colon != std::string_view::npos) {
            port_text = host_port.substr(colon + 1);
            if (port_text.empty()) return std::string("the port is empty");
        }
    }
    if (endpoint.host.empty()) return std::string("the host is empty");
    if (endpoint.host.find_first_of(":/ ") != std::string::npos && !host_port.starts_with('['))
        return std::string("the host is not a name or an address (an IPv6 address goes in brackets)");
    if (!port_text.empty()) {
        auto const port = whole_number<unsigned>(port_text, 65535);
        if (!port || *port == 0) return std::string("the port must be a whole number from 1 to 65535");
        endpoint.port = static_cast<std::uint16_t>(*port);
    }
    if (!path.empty()) {
        auto const db = whole_number<unsigned>(path, 1'000'000);
        if (!db) return std::string("the database must be a whole number (redis://HOST:PORT/DB)");
        endpoint.db = *db;
    }
    return endpoint;
}

std::string mask_redis_url(std::string_view text) {
    auto const start = text.find("://");
    auto const at = text.rfind('@');
    if (start == std::string_view::npos || at == std::string_view::npos || at < start)
        return std::string(text);
    auto const colon = text.find(':', start + 3);
    if (colon == std::string_view::npos || colon > at) return std::string(text);
    return std::string(text.substr(0, colon + 1)) + "***" + std::string(text.substr(at));
}

} // namespace wolf
