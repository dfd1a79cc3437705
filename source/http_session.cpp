#include "http_session.hpp"

#include "broadcast_source.hpp"
#include "metrics.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"
#include "tls.hpp"
#include "tls_socket.hpp"
#include "version.hpp"
#include "websocket_session.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json.hpp>
#include <type_traits>

namespace wolf {
namespace {

constexpr std::size_t max_header_bytes = 8 * 1024;
constexpr std::size_t max_body_bytes = 16 * 1024;
constexpr std::string_view server_name = "wolf-wisdom/" WOLF_VERSION;
constexpr std::string_view api_wisdom = "/api/wisdom";
constexpr std::string_view api_stats = "/api/stats";

/** The path of a request target, without query or fragment. A target in absolute form
 * ("http://host:8000/healthz", RFC 9112 section 3.2.2) has the path of its origin form ("/healthz"; "/" when
 * it has none). */
std::string_view path_of(std::string_view target) noexcept {
    if (auto const scheme = target.find("://"); scheme == 4 || scheme == 5) {
        auto const name = target.substr(0, scheme);
        if (beast::iequals(name, "http") || beast::iequals(name, "https")) {
            target.remove_prefix(scheme + 3);
            auto const path = target.find_first_of("/?#");
            if (path == std::string_view::npos || target[path] != '/') return "/";
            target.remove_prefix(path);
        }
    }
    return target.substr(0, target.find_first_of("?#"));
}

using response = http::response<http::string_body>;

/** A response with common headers. For HEAD the body is left out but Content-Length still says its size. */
response make_response(http::request<http::string_body> const& request, http::status status,
                       std::string_view content_type, std::string body) {
    response res{status, request.version()};
    res.set(http::field::server, server_name);
    res.set(http::field::content_type, content_type);
    res.set("X-Content-Type-Options", "nosniff");
    res.keep_alive(request.keep_alive());
    auto const size = body.size();
    if (request.method() != http::verb::head) res.body() = std::move(body);
    res.content_length(size);
    return res;
}

response make_status(http::request<http::string_body> const& request, http::status status) {
    std::string body = std::to_string(static_cast<unsigned>(status));
    body.append(" ").append(http::obsolete_reason(status)).append("\n");
    return make_response(request, status, "text/plain; charset=utf-8", std::move(body));
}

response make_json(http::request<http::string_body> const& request, http::status status,
                   json::object const& body) {
    auto res = make_response(request, status, "application/json", json::serialize(body) + "\n");
    res.set(http::field::cache_control, "no-store");
    return res;
}

/** An error of the admin API: JSON `{"error": "..."}`, as protocol.md promises for its paths. */
response make_api_error(http::request<http::string_body> const& request, http::status status,
                        std::string message) {
    return make_json(request, status, {{"error", std::move(message)}});
}

bool admin_api_enabled(server_state const& state) noexcept {
    return !state.cfg.admin_token.empty();
}

/** Whether `path` is one of the admin API's, which exist only while it is enabled. */
bool is_api_path(std::string_view path, server_state const& state) noexcept {
    return (path == api_wisdom || path == api_stats) && admin_api_enabled(state);
}

/** 405 with `Allow`; on the admin API's paths the body is its JSON error, elsewhere the status text. */
response make_method_not_allowed(http::request<http::string_body> const& request, std::string_view path,
                                 std::string_view allow, server_state const& state) {
    auto res = is_api_path(path, state) ? make_api_error(request, http::status::method_not_allowed,
                                                         "this path answers only " + std::string(allow))
                                        : make_status(request, http::status::method_not_allowed);
    res.set(http::field::allow, allow);
    return res;
}

/** A path the server knows: the routes of the contract, /readyz, the admin API when on, the UI's files. */
bool is_known_path(std::string_view path, server_state const& state) {
    if (path == "/" || path == "/ws" || path == "/healthz" || path == "/readyz" || path == "/metrics")
        return true;
    if (path == api_wisdom || path == api_stats) return admin_api_enabled(state); // never a UI file
    return path.starts_with('/') && state.assets.contains(path.substr(1));
}

/** Compares in time that depends only on the expected token's length, never on where they differ. */
bool same_token(std::string_view given, std::string_view expected) noexcept {
    unsigned char difference = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        auto const g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
        difference |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(expected[i]));
    }
    // Through a volatile so the compiler cannot turn the loop into an early-exit comparison.
    volatile unsigned char const result = difference;
    return result == 0;
}

/** nullopt if the request carries `Authorization: Bearer <the admin token>`, else the 401 to send. */
std::optional<response> refuse_unauthorized(http::request<http::string_body> const& request,
                                            server_state const& state) {
    std::string_view const header = request[http::field::authorization];
    constexpr std::string_view scheme = "bearer ";
    bool const bearer =
        header.size() > scheme.size() && beast::iequals(header.substr(0, scheme.size()), scheme);
    auto token = bearer ? header.substr(scheme.size()) : std::string_view{};
    token.remove_prefix(std::min(token.find_first_not_of(' '), token.size()));
    if (bearer && same_token(token, state.cfg.admin_token)) return std::nullopt;

    log_debug("admin_unauthorized", kv("path", path_of(request.target())),
              kv("token_given", !header.empty()));
    // RFC 6750 section 3.1: `error="invalid_token"` only for a Bearer token that is wrong; a request with
    // no header or another scheme lacks authentication and is only told which scheme to use.
    auto res =
        make_api_error(request, http::status::unauthorized,
                       bearer ? "invalid token" : "an Authorization: Bearer <token> header is required");
    res.set(http::field::www_authenticate, bearer ? "Bearer realm=\"wolf-wisdom\", error=\"invalid_token\""
                                                  : "Bearer realm=\"wolf-wisdom\"");
    return res;
}

/** POST /api/wisdom {"message": "..."}: broadcasts the message through the broadcaster, like a tick. */
response publish_message(http::request<http::string_body> const& request, server_state const& state) {
    if (request.method() != http::verb::post)
        return make_method_not_allowed(request, api_wisdom, "POST", state);
    if (auto refusal = refuse_unauthorized(request, state)) return std::move(*refusal);

    auto const bad = [&](std::string message) {
        return make_api_error(request, http::status::bad_request, std::move(message));
    };
    boost::system::error_code parse_ec;
    auto const body = json::parse(request.body(), parse_ec);
    if (parse_ec || !body.is_object()) return bad("the body must be a JSON object {\"message\": \"...\"}");
    auto const* message = body.as_object().if_contains("message");
    if (!message || !message->is_string()) return bad("\"message\" must be a string");
    auto const& text = message->get_string();
    if (text.empty()) return bad("\"message\" is empty");
    if (text.size() > state.cfg.max_message_size)
        return bad("\"message\" is longer than --max-message-size (" +
                   std::to_string(state.cfg.max_message_size) + " bytes)");

    if (state.shutting_down || !state.source->try_publish(std::string(text))) {
        auto res = make_api_error(request, http::status::service_unavailable,
                                  state.shutting_down ? "shutting down" : "the broadcaster is busy");
        res.set(http::field::retry_after, "1");
        return res;
    }
    return make_json(request, http::status::accepted,
                     {{"status", "accepted"}, {"subscribers", state.pools.subscribers()}});
}

/** GET /api/stats: the figures an operator's script wants without parsing Prometheus text. */
response stats(http::request<http::string_body> const& request, server_state const& state) {
    if (auto refusal = refuse_unauthorized(request, state)) return std::move(*refusal);
    auto const uptime = std::chrono::duration_cast<std::chrono::seconds>(steady_clock::now() - state.started);
    return make_json(request, http::status::ok,
                     {{"connections", state.pools.connections()},
                      {"subscribers", state.pools.subscribers()},
                      {"ticks", state.stats.broadcast_ticks_total.load()},
                      {"wisdom_sent", state.stats.wisdom_sent_total.load()},
                      {"wisdom_dropped", state.stats.wisdom_dropped_total.load()},
                      {"uptime_seconds", uptime.count()}});
}

/** /readyz: 200 once the listener is up (the deck is loaded before), 503 before that and while shutting down.
 */
response readiness(http::request<http::string_body> const& request, server_state const& state) {
    if (state.listening && !state.shutting_down)
        return make_json(request, http::status::ok, {{"status", "ready"}});
    return make_json(request, http::status::service_unavailable,
                     {{"status", state.shutting_down ? "shutting_down" : "starting"}});
}

/** Tracks the connection for shutdown while it waits for requests (or, with TLS, for its handshake). */
template <class Stream>
class tracked_connection final : public closable {
public:
    tracked_connection(Stream& stream, shard& state)
        : stream_(stream) {
        state.http_connections.push_back(*this);
    }
    tracked_connection(tracked_connection const&) = delete;
    tracked_connection& operator=(tracked_connection const&) = delete;

    void close() override { stream_.close(); }
    /** Off the shard's list before the connection's end: its upgrade. */
    void release() { unlink(); }

private:
    Stream& stream_;
};

} // namespace

http::message_generator handle_request(http::request<http::string_body> const& request,
                                       server_state const& state) {
    auto const path = path_of(request.target());
    if (!is_known_path(path, state)) return make_status(request, http::status::not_found);
    if (path == api_wisdom) return publish_message(request, state);

    auto const method = request.method();
    if (method != http::verb::get && method != http::verb::head)
        return make_method_not_allowed(request, path, "GET, HEAD", state);

    if (path == "/ws") {
        auto res = make_status(request, http::status::upgrade_required);
        res.set(http::field::upgrade, "websocket");
        return res;
    }
    if (path == "/healthz") {
        auto res = make_response(request, http::status::ok, "application/json",
                                 render_health(state.pools, state.source->status()));
        res.set(http::field::cache_control, "no-store");
        return res;
    }
    if (path == "/readyz") return readiness(request, state);
    if (path == api_stats) return stats(request, state);
    if (path == "/metrics") {
        auto res = make_response(request, http::status::ok, "text/plain; version=0.0.4; charset=utf-8",
                                 render_prometheus(state.stats, state.pools, state.source->status()));
        res.set(http::field::cache_control, "no-store");
        return res;
    }

    auto const name = path == "/" ? std::string_view("index.html") : path.substr(1);
    auto body = state.assets.read(name);
    if (!body) return make_status(request, http::status::not_found);
    auto res = make_response(request, http::status::ok, content_type_for(name), std::move(*body));
    res.set(http::field::cache_control, "no-cache");
    return res;
}

std::optional<http::response<http::string_body>>
refuse_upgrade(http::request<http::string_body> const& request, server_state const& state) {
    auto const path = path_of(request.target());
    if (path != "/ws" && path != "/") return make_status(request, http::status::not_found);
    if (state.shutting_down) return make_status(request, http::status::service_unavailable);
    if (state.pools.admitted() >= state.cfg.max_connections) {
        log_debug("upgrade_refused", kv("reason", "max_connections"),
                  kv("max_connections", state.cfg.max_connections));
        return make_status(request, http::status::service_unavailable);
    }
    return std::nullopt;
}

namespace {

/**
 * A plain port's connection until its upgrade: the socket, and the deadline of a request (its read and its
 * response's write), which closes the socket when it passes, as beast::tcp_stream's does, without that
 * stream's shared state and its two timers. An AsyncStream for Beast's HTTP reads and writes. Lives in the
 * session's frame and never moves: the deadline's wait refers to it (and touches it only if it passed).
 */
class request_socket {
public:
    using executor_type = tcp_socket::executor_type;

    explicit request_socket(tcp_socket socket)
        : socket_(std::move(socket))
        , deadline_(socket_.get_executor()) {}
    request_socket(request_socket const&) = delete;
    request_socket& operator=(request_socket const&) = delete;

    executor_type get_executor() noexcept { return socket_.get_executor(); }
    tcp_socket& socket() noexcept { return socket_; }

    template <class MutableBufferSequence, class Handler>
    auto async_read_some(MutableBufferSequence const& buffers, Handler&& handler) {
        return socket_.async_read_some(buffers, std::forward<Handler>(handler));
    }
    template <class ConstBufferSequence, class Handler>
    auto async_write_some(ConstBufferSequence const& buffers, Handler&& handler) {
        return socket_.async_write_some(buffers, std::forward<Handler>(handler));
    }

    void expires_after(duration timeout) {
        deadline_.expires_after(timeout); // ends a pending wait, which then does nothing
        deadline_.async_wait([this](beast::error_code ec) {
            if (ec) return;
            expired_ = true;
            close();
        });
    }
    void expires_never() { deadline_.cancel(); }
    bool expired() const noexcept { return expired_; }
    void close() noexcept {
        beast::error_code ignored;
        socket_.close(ignored);
    }
    /** The socket, for the WebSocket session; the deadline is off. */
    tcp_socket release_socket() {
        expires_never();
        return std::move(socket_);
    }

private:
    tcp_socket socket_;
    loop_timer deadline_;
    bool expired_ = false;
};

/** What the WebSocket session keeps: the plain socket without the deadline's timer, or the tls_socket. */
tcp_socket session_transport(request_socket& stream) {
    return stream.release_socket();
}
tls_socket session_transport(tls_socket& stream) {
    return std::move(stream);
}

} // namespace

/** What a session reads requests from: on a plain port a request_socket; on a TLS port the tls_socket,
 * which has a deadline of its own. */
template <class Socket>
using request_stream = std::conditional_t<std::is_same_v<Socket, tls_socket>, tls_socket, request_socket>;

template <class Socket>
loop_awaitable<> run_http_session(Socket socket, beast::flat_buffer buffer, shard& connection_shard) {
    auto& state = connection_shard.server;
    request_stream<Socket> stream(std::move(socket));
    tracked_connection tracked(stream, connection_shard);

    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(max_header_bytes);
        parser.body_limit(max_body_bytes);
        // The whole request, headers and body, must arrive within the handshake timeout.
        stream.expires_after(state.cfg.handshake_timeout);
        auto const [read_ec, read_size] = co_await http::async_read(stream, buffer, parser, loop_nothrow);
        if (read_ec) {
            if (stream.expired()) { // the deadline closed the socket (a TLS read also says `timeout`)
                ++state.stats.http_timeouts_total;
                log_debug("http_timeout",
                          kv("handshake_timeout", format_duration(state.cfg.handshake_timeout)));
            }
            // Malformed requests get an answer; a peer that left or timed out gets nothing.
            std::optional<http::status> status;
            if (read_ec == http::error::header_limit)
                status = http::status::request_header_fields_too_large;
            else if (read_ec == http::error::body_limit)
                status = http::status::payload_too_large;
            else if (read_ec.category() == http::make_error_code(http::error::bad_target).category() &&
                     read_ec != http::error::end_of_stream && read_ec != http::error::partial_message)
                status = http::status::bad_request;
            if (status) {
                // A body too large for an admin API path gets its JSON error. The parser stores the target
                // as soon as the request line is read, before it compares Content-Length with the limit.
                bool const api = *status == http::status::payload_too_large &&
                                 is_api_path(path_of(parser.get().target()), state);
                http::request<http::string_body> const blank;
                auto res = api ? make_api_error(parser.get(), *status,
                                                "the body is larger than " +
                                                    std::to_string(max_body_bytes / 1024) + " KiB")
                               : make_status(blank, *status);
                res.keep_alive(false);
                http::message_generator message(std::move(res));
                co_await beast::async_write(stream, std::move(message), loop_nothrow);
            }
            break;
        }

        auto request = parser.release();
        if (websocket::is_upgrade(request)) {
            auto refusal = refuse_upgrade(request, state);
            // The place among --max-connections is taken here, atomically across threads; the session
            // gives it back if its handshake fails, the registry when its close begins.
            if (!refusal && !state.pools.try_admit(state.cfg.max_connections))
                refusal = make_status(request, http::status::service_unavailable);
            if (!refusal) {
                tracked.release();
                stream.expires_never(); // the WebSocket stream applies its own timeouts
                // The session runs in a coroutine of its own, so this one's frame, with its request
                // buffer and parser, is freed for the connection's whole life.
                auto const executor = stream.get_executor();
                net::co_spawn(executor,
                              run_websocket_session(session_transport(stream),
                                                    std::make_unique<decltype(request)>(std::move(request)),
                                                    connection_shard),
                              log_and_contain{"websocket_session"});
                co_return;
            }
            refusal->keep_alive(false);
            http::message_generator message(std::move(*refusal));
            co_await beast::async_write(stream, std::move(message), loop_nothrow);
            break;
        }

        auto res = handle_request(request, state);
        bool const keep_alive = res.keep_alive() && !state.shutting_down;
        auto const [write_ec, written] = co_await beast::async_write(stream, std::move(res), loop_nothrow);
        if (write_ec || !keep_alive) break;
    }

    if constexpr (std::is_same_v<Socket, tls_socket>) {
        // close_notify and the FIN, then the client's last bytes until it closes too, in time; after a
        // failed read this ends at once.
        stream.expires_after(state.cfg.handshake_timeout);
        co_await stream.async_close_gracefully(loop_nothrow);
    } else {
        beast::error_code ec;
        stream.socket().shutdown(tcp_socket::shutdown_send, ec);
    }
}

template loop_awaitable<> run_http_session(tcp_socket, beast::flat_buffer, shard&);
template loop_awaitable<> run_http_session(tls_socket, beast::flat_buffer, shard&);

namespace {

/** What a plain-HTTP client on the TLS port reads instead of a hang. */
constexpr std::string_view tls_only_body = "this port speaks TLS: use https:// or wss://\n";

/** The TLS port: a ClientHello, the handshake, then the same HTTP session as on a plain port. */
loop_awaitable<> run_tls_connection(tcp_socket socket, shard& connection_shard) {
    auto& state = connection_shard.server;
    tls_socket stream(std::move(socket), *state.tls);
    beast::flat_buffer buffer;
    {
        tracked_connection tracked(stream, connection_shard);
        // One deadline for the ClientHello and the whole handshake.
        stream.expires_after(state.cfg.handshake_timeout);
        auto const [detect_ec, is_tls] =
            co_await beast::async_detect_ssl(stream.next_layer(), buffer, loop_nothrow);
        if (!detect_ec && !is_tls) {
            http::request<http::string_body> const blank;
            auto res = make_response(blank, http::status::bad_request, "text/plain; charset=utf-8",
                                     std::string(tls_only_body));
            res.keep_alive(false);
            http::message_generator message(std::move(res));
            co_await beast::async_write(stream.next_layer(), std::move(message), loop_nothrow);
            beast::error_code ec;
            stream.next_layer().shutdown(tcp_socket::shutdown_send, ec);
            co_return;
        }
        auto handshake_ec = detect_ec;
        if (!handshake_ec) {
            auto const [ec, used] = co_await stream.async_handshake(buffer.data(), loop_nothrow);
            handshake_ec = ec;
            buffer.consume(used);
        }
        if (handshake_ec) {
            if (stream.expired()) { // the detection's read sees only its socket closed
                handshake_ec = beast::error::timeout;
                ++state.stats.http_timeouts_total;
            }
            log_debug("tls_handshake_failed", kv("error", handshake_ec.message()));
            co_return;
        }
    }
    co_await run_http_session(std::move(stream), std::move(buffer), connection_shard);
}

} // namespace

loop_awaitable<> run_connection(tcp_socket socket, shard& connection_shard) {
    // Not a coroutine: a plain port pays nothing for TLS, not even a frame.
    if (!connection_shard.server.tls)
        return run_http_session(std::move(socket), beast::flat_buffer(), connection_shard);
    return run_tls_connection(std::move(socket), connection_shard);
}

} // namespace wolf
