#include "http_session.hpp"

#include "async.hpp"
#include "logger.hpp"
#include "metrics.hpp"
#include "websocket_session.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

namespace wolf {
namespace {

constexpr std::size_t max_header_bytes = 8 * 1024;
constexpr std::size_t max_body_bytes = 16 * 1024;
constexpr std::string_view server_name = "wolf-wisdom/" WOLF_VERSION;

/** The path of a request target, without query or fragment. */
std::string_view path_of(std::string_view target) noexcept {
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

/** A path the server knows: the routes of the contract and the UI's files. */
bool is_known_path(std::string_view path, shared_state const& state) {
    if (path == "/" || path == "/ws" || path == "/healthz" || path == "/metrics") return true;
    return path.starts_with('/') && state.assets.contains(path.substr(1));
}

/** Tracks the connection for shutdown while it waits for requests. */
class tracked_connection final : public closable {
public:
    tracked_connection(beast::tcp_stream& stream, shared_state& state)
        : stream_(stream)
        , state_(state) {
        state_.http_connections.insert(this);
    }
    tracked_connection(tracked_connection const&) = delete;
    tracked_connection& operator=(tracked_connection const&) = delete;
    ~tracked_connection() { release(); }

    void close() override { stream_.close(); }
    void release() { state_.http_connections.erase(this); }

private:
    beast::tcp_stream& stream_;
    shared_state& state_;
};

} // namespace

http::message_generator handle_request(http::request<http::string_body> const& request,
                                       shared_state const& state) {
    auto const path = path_of(request.target());
    if (!is_known_path(path, state)) return make_status(request, http::status::not_found);

    auto const method = request.method();
    if (method != http::verb::get && method != http::verb::head) {
        auto res = make_status(request, http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        return res;
    }

    if (path == "/ws") {
        auto res = make_status(request, http::status::upgrade_required);
        res.set(http::field::upgrade, "websocket");
        return res;
    }
    if (path == "/healthz") {
        auto res =
            make_response(request, http::status::ok, "application/json", render_health(state.connections));
        res.set(http::field::cache_control, "no-store");
        return res;
    }
    if (path == "/metrics") {
        auto res = make_response(request, http::status::ok, "text/plain; version=0.0.4; charset=utf-8",
                                 render_prometheus(state.stats, state.connections));
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
refuse_upgrade(http::request<http::string_body> const& request, shared_state const& state) {
    auto const path = path_of(request.target());
    if (path != "/ws" && path != "/") return make_status(request, http::status::not_found);
    if (state.shutting_down) return make_status(request, http::status::service_unavailable);
    if (state.connections.connections() + state.pending_upgrades >= state.cfg.max_connections) {
        log_debug("upgrade_refused", kv("reason", "max_connections"),
                  kv("max_connections", state.cfg.max_connections));
        return make_status(request, http::status::service_unavailable);
    }
    return std::nullopt;
}

net::awaitable<void> run_http_session(net::ip::tcp::socket socket, shared_state& state) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    tracked_connection tracked(stream, state);

    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(max_header_bytes);
        parser.body_limit(max_body_bytes);
        // The whole request, headers and body, must arrive within the handshake timeout.
        stream.expires_after(state.cfg.handshake_timeout);
        auto const [read_ec, read_size] = co_await http::async_read(stream, buffer, parser, use_nothrow);
        if (read_ec) {
            if (read_ec == beast::error::timeout) {
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
                http::request<http::string_body> const blank;
                auto res = make_status(blank, *status);
                res.keep_alive(false);
                http::message_generator message(std::move(res));
                co_await beast::async_write(stream, std::move(message), use_nothrow);
            }
            break;
        }

        auto request = parser.release();
        if (websocket::is_upgrade(request)) {
            auto refusal = refuse_upgrade(request, state);
            if (!refusal) {
                tracked.release();
                stream.expires_never(); // the WebSocket stream applies its own timeouts
                co_await run_websocket_session(std::move(stream), std::move(request), state);
                co_return;
            }
            refusal->keep_alive(false);
            http::message_generator message(std::move(*refusal));
            co_await beast::async_write(stream, std::move(message), use_nothrow);
            break;
        }

        auto res = handle_request(request, state);
        bool const keep_alive = res.keep_alive() && !state.shutting_down;
        auto const [write_ec, written] = co_await beast::async_write(stream, std::move(res), use_nothrow);
        if (write_ec || !keep_alive) break;
    }

    beast::error_code ec;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
}

} // namespace wolf
