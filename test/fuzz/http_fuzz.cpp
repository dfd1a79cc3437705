// libFuzzer target over the HTTP router: the input is raw bytes on the connection, parsed by Beast's
// request parser with the server's limits, one request after another as on a keep-alive connection.
// Each request goes through refuse_upgrade and handle_request; each response is serialized as the
// server would send it, parsed back, and checked. Any invariant that fails aborts.

#include "assets.hpp"
#include "broadcast_source.hpp"
#include "config.hpp"
#include "http_session.hpp"
#include "shard.hpp"

#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace wolf;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// As in http_session.cpp: what one request may be.
constexpr std::size_t max_header_bytes = 8 * 1024;
constexpr std::size_t max_body_bytes = 16 * 1024;
// Pipelined requests handled per input; enough to reach keep-alive state without slowing each run.
constexpr int max_requests = 4;

void require(bool condition, char const* what) {
    if (condition) return;
    std::fprintf(stderr, "fuzz_http: invariant failed: %s\n", what);
    std::abort();
}

/** A broadcast source that takes every non-empty message and runs nothing. */
struct accepting_source final : broadcast_source {
    net::awaitable<void> run() override { co_return; }
    void stop() override {}
    bool try_publish(std::string text) override { return !text.empty(); }
    broker_status status() const noexcept override { return {}; }
};

/** One state per answer refuse_upgrade can give: open, shutting down, at --max-connections. */
struct states {
    accepting_source source;
    server_state open;
    server_state closing;
    server_state full;
};

constexpr std::string_view admin_token = "fuzz-admin-token-0123456789";

config make_config(std::size_t max_connections) {
    config cfg;
    cfg.max_connections = max_connections;
    cfg.level = log_level::off;
    cfg.admin_token = admin_token;
    return cfg;
}

states& the_states() {
    static states* const s = [] {
        set_log_level(log_level::off);
        auto* built = new states{{},
                                 {make_config(10000), asset_store::embedded()},
                                 {make_config(10000), asset_store::embedded()},
                                 {make_config(0), asset_store::embedded()}};
        for (auto* state : {&built->open, &built->closing, &built->full})
            state->source = &built->source;
        built->open.listening = true;
        built->closing.shutting_down = true;
        return built;
    }();
    return *s;
}

/** The path a target names (RFC 9112 section 3.2): an origin form's own, without query or fragment; an
 * absolute form's (http:// or https://, any case) after its authority, "/" when it has none. */
std::string_view path_of(std::string_view target) {
    for (std::string_view const scheme : {"http://", "https://"})
        if (target.size() >= scheme.size() && beast::iequals(target.substr(0, scheme.size()), scheme)) {
            auto const rest = target.substr(scheme.size());
            auto const end = rest.find_first_of("/?#");
            if (end == std::string_view::npos || rest[end] != '/') return "/";
            target = rest.substr(end);
            break;
        }
    return target.substr(0, target.find_first_of("?#"));
}

/** The embedded file a 200 for this path may serve, or nullopt: never the quote deck. */
std::optional<std::string_view> embedded_asset_for(std::string_view path) {
    if (path == "/") return embedded_file_data("index.html");
    if (!path.starts_with('/') || path.substr(1) == default_quotes_name) return std::nullopt;
    return embedded_file_data(path.substr(1));
}

/** Paths nothing may answer 200 for: dot segments and dot-files, NUL, escapes, subdirectories. */
bool is_suspicious(std::string_view path) {
    return path.find("/.") != std::string_view::npos || path.find('\0') != std::string_view::npos ||
           path.find('%') != std::string_view::npos || path.find('\\') != std::string_view::npos ||
           path.find('/', 1) != std::string_view::npos;
}

/** The bytes the server would write for this message. */
std::string serialize(http::message_generator generator) {
    std::string out;
    beast::error_code ec;
    while (!generator.is_done()) {
        auto const buffers = generator.prepare(ec);
        require(!ec, "serializing the response failed");
        for (auto const& buffer : buffers)
            out.append(static_cast<char const*>(buffer.data()), buffer.size());
        generator.consume(beast::buffer_bytes(buffers));
    }
    return out;
}

/** Parses the serialized response back: it must be exactly one well-formed response. */
response parse_response(std::string const& bytes, bool head) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.skip(head); // a response to HEAD has headers only, whatever Content-Length says
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    beast::error_code ec;
    auto const used = parser.put(net::buffer(bytes), ec);
    require(!ec && parser.is_done(), "the response is not a complete HTTP message");
    require(used == bytes.size(), "bytes after the response (a HEAD response with a body?)");
    return parser.release();
}

/** What every response of the server carries. */
void check_common(request const& req, response const& res, bool keep_alive) {
    require(res.version() == req.version(), "the response's version is not the request's");
    require(res[http::field::server].starts_with("wolf-wisdom/"), "Server header");
    require(!res[http::field::content_type].empty(), "Content-Type header");
    require(res["X-Content-Type-Options"] == "nosniff", "X-Content-Type-Options header");
    require(res.has_content_length(), "Content-Length header");
    require(keep_alive == req.keep_alive(), "keep-alive differs from the request's");
}

void check_plain(request const& req, server_state const& state) {
    auto generator = handle_request(req, state);
    bool const keep_alive = generator.keep_alive();
    bool const head = req.method() == http::verb::head;
    auto const res = parse_response(serialize(std::move(generator)), head);
    check_common(req, res, keep_alive);

    auto const path = path_of(req.target());
    bool const get_or_head = req.method() == http::verb::get || head;
    bool const api = path == "/api/wisdom" || path == "/api/stats";
    // RFC 9110 section 11.1: the scheme is case-insensitive; spaces may precede the token.
    auto const credentials = std::string_view(req[http::field::authorization]);
    auto const token_start = credentials.find_first_not_of(' ', 6);
    bool const authorized = credentials.size() > 7 && beast::iequals(credentials.substr(0, 7), "bearer ") &&
                            token_start != std::string_view::npos &&
                            credentials.substr(token_start) == admin_token;
    bool const publish = path == "/api/wisdom" && req.method() == http::verb::post;
    switch (res.result()) {
    case http::status::ok: {
        require(get_or_head, "200 for a method other than GET and HEAD");
        if (path == "/api/stats")
            require(authorized, "200 for /api/stats without the token");
        else
            require(!is_suspicious(path), "200 for a path with a dot segment, NUL, escape or subdirectory");
        if (path == "/healthz" || path == "/metrics" || path == "/readyz" || path == "/api/stats") break;
        auto const file = embedded_asset_for(path);
        require(file.has_value(), "200 for a path that is no route and no embedded asset");
        require(res[http::field::content_type] == content_type_for(path == "/" ? "index.html" : path),
                "an asset's Content-Type");
        if (!head) require(res.body() == *file, "an asset's body is not the embedded file");
        break;
    }
    case http::status::not_found:
        break;
    case http::status::method_not_allowed:
        if (path == "/api/wisdom") {
            require(!publish, "405 for POST /api/wisdom");
            require(res[http::field::allow] == "POST", "405 for /api/wisdom without Allow: POST");
            break;
        }
        require(!get_or_head, "405 for GET or HEAD");
        require(res[http::field::allow] == "GET, HEAD", "405 without Allow: GET, HEAD");
        break;
    case http::status::accepted:
        require(publish && authorized, "202 for something other than an authorized POST /api/wisdom");
        break;
    case http::status::bad_request:
        require(publish && authorized, "400 from a route other than an authorized POST /api/wisdom");
        break;
    case http::status::unauthorized:
        require(api, "401 outside /api");
        require(!res[http::field::www_authenticate].empty(), "401 without WWW-Authenticate");
        break;
    case http::status::upgrade_required:
        require(path == "/ws" && get_or_head, "426 for something other than GET or HEAD /ws");
        require(res[http::field::upgrade] == "websocket", "426 without Upgrade: websocket");
        break;
    default:
        require(false, "handle_request returned a status it has no route for");
    }
    if (path == "/" + std::string(default_quotes_name))
        require(res.result() == http::status::not_found, "the quote deck is served");

    if (head) {
        // HEAD: the same headers as GET, Content-Length included, and no body.
        auto get_req = req;
        get_req.method(http::verb::get);
        auto get_generator = handle_request(get_req, state);
        auto const get = parse_response(serialize(std::move(get_generator)), false);
        require(get.result() == res.result(), "HEAD and GET differ in status");
        // /metrics and /api/stats read the clock and /proc on each call, so their sizes may differ.
        bool const dynamic = path == "/metrics" || path == "/api/stats";
        require(dynamic || res[http::field::content_length] == get[http::field::content_length],
                "HEAD's Content-Length is not GET's");
        require(res[http::field::content_type] == get[http::field::content_type],
                "HEAD's Content-Type is not GET's");
    }
}

void check_upgrade(request const& req, server_state const& state, bool accepting) {
    auto refusal = refuse_upgrade(req, state);
    auto const path = path_of(req.target());
    bool const websocket_path = path == "/ws" || path == "/";
    if (!refusal) {
        require(accepting && websocket_path, "an upgrade accepted on a path other than /ws and /, or while "
                                             "shutting down or full");
        return;
    }
    require(refusal->result() ==
                (websocket_path ? http::status::service_unavailable : http::status::not_found),
            "an upgrade refused with a status other than 404 (path) or 503 (shutting down, full)");
    require(!accepting || !websocket_path, "an upgrade to /ws or / refused while accepting");
    bool const keep_alive = refusal->keep_alive();
    http::message_generator generator(std::move(*refusal));
    auto const res = parse_response(serialize(std::move(generator)), req.method() == http::verb::head);
    check_common(req, res, keep_alive);
}

void check_request(request const& req) {
    auto& s = the_states();
    // The server routes on is_upgrade: only a GET of HTTP/1.1 or later may reach the WebSocket handshake.
    if (websocket::is_upgrade(req))
        require(req.method() == http::verb::get && req.version() >= 11,
                "is_upgrade for a non-GET or HTTP/1.0");
    // The server sends only upgrade requests to refuse_upgrade, but it reads nothing of the request but
    // its target: every request is a fair test of it.
    check_upgrade(req, s.open, true);
    check_upgrade(req, s.closing, false);
    check_upgrade(req, s.full, false);
    check_plain(req, s.open);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view input(reinterpret_cast<char const*>(data), size);
    for (int i = 0; i < max_requests && !input.empty(); ++i) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(max_header_bytes);
        parser.body_limit(max_body_bytes);
        parser.eager(true);
        beast::error_code ec;
        std::size_t used = 0;
        while (!ec && !parser.is_done()) {
            auto const n = parser.put(net::buffer(input.data() + used, input.size() - used), ec);
            used += n;
            if (n == 0) break;
        }
        // A parse error is answered without routing; an incomplete request waits for bytes that never come.
        if (ec || !parser.is_done()) break;
        input.remove_prefix(used);
        check_request(parser.get());
    }
    return 0;
}
