#include "client.hpp"

#include "protocol.hpp"
#include "support/async.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <charconv>

namespace wolf::bench {
namespace {

std::string make_event(std::string_view type, std::string_view id) {
    return boost::json::serialize(boost::json::object{{"type", type}, {"payload", {{"id", id}}}});
}

/** A parsed server event: its type and the one payload string a caller asks for. */
struct parsed_event {
    std::string type;
    std::string field;
};

std::optional<parsed_event> parse_event(std::string_view frame, std::string_view field) {
    boost::json::error_code ec;
    auto const value = boost::json::parse(frame, ec);
    if (ec || !value.is_object()) return std::nullopt;
    auto const& object = value.get_object();
    auto const* type = object.if_contains("type");
    if (!type || !type->is_string()) return std::nullopt;
    parsed_event event{std::string(type->get_string()), {}};
    if (auto const* payload = object.if_contains("payload"); payload && payload->is_object())
        if (auto const* text = payload->get_object().if_contains(field); text && text->is_string())
            event.field = std::string(text->get_string());
    return event;
}

std::string_view frame_text(beast::flat_buffer const& buffer) {
    return {static_cast<char const*>(buffer.data().data()), buffer.size()};
}

} // namespace

std::string_view to_string(session_status status) noexcept {
    switch (status) {
    case session_status::running:
        return "running";
    case session_status::completed:
        return "completed";
    case session_status::connect_failed:
        return "connect_failed";
    case session_status::handshake_failed:
        return "handshake_failed";
    case session_status::protocol_failed:
        return "protocol_failed";
    case session_status::closed_by_server:
        return "closed_by_server";
    case session_status::io_failed:
        return "io_failed";
    }
    return "unknown";
}

std::uint64_t quick_offset(std::string_view frame) noexcept {
    constexpr std::string_view key = R"("offset":)";
    auto const at = frame.find(key);
    if (at == std::string_view::npos) return 0;
    std::uint64_t value = 0;
    auto const digits = frame.substr(at + key.size());
    std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return value;
}

std::optional<std::string_view> quick_event_type(std::string_view frame) noexcept {
    constexpr std::string_view prefix = R"({"type":")";
    if (!frame.starts_with(prefix)) return std::nullopt;
    auto const rest = frame.substr(prefix.size());
    auto const end = rest.find_first_of("\"\\");
    if (end == std::string_view::npos || rest[end] != '"') return std::nullopt;
    return rest.substr(0, end);
}

client_session::client_session(net::any_io_executor executor, session_options options, session_hooks hooks)
    : options_(std::move(options))
    , hooks_(std::move(hooks))
    , ws_(executor)
    , timer_(executor) {
}

void client_session::leave() {
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->request_leave(); });
}

void client_session::drop() {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
        self->dropped_ = true;
        self->abort();
    });
}

void client_session::request_leave() {
    if (leave_requested_) return;
    leave_requested_ = true;
    timer_.cancel(); // wakes the writer, which sends `disconnect`
}

void client_session::fail(session_status status, std::string detail) {
    // The first failure is the cause; what follows from it is not reported over it.
    if (report_.status != session_status::running) return;
    report_.status = status;
    report_.detail = std::move(detail);
}

void client_session::abort() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).close(ignored);
}

net::awaitable<session_report> client_session::run() {
    using namespace net::experimental::awaitable_operators;
    auto const self = shared_from_this(); // the frame keeps the session alive, whoever else lets go
    report_.started = steady_clock::now();
    if (co_await open()) {
        if (hooks_.on_joined) hooks_.on_joined();
        // One reader and one writer: Beast allows one read and one write in flight on a stream. Neither
        // throws; the reader's end wakes the writer, the writer's end never cancels the reader.
        auto both = read_loop() && write_loop(); // named, not a temporary inside co_await (GCC 12, PR 99576)
        co_await std::move(both);
    }
    abort(); // no-op after a clean close; frees the descriptor at once after a failure
    report_.ended = steady_clock::now();
    if (report_.status == session_status::running || dropped_) report_.status = session_status::completed;
    co_return report_;
}

net::awaitable<bool> client_session::within_deadline(net::awaitable<std::tuple<beast::error_code>> step,
                                                     session_status failure, std::string_view what) {
    using namespace net::experimental::awaitable_operators;
    timer_.expires_after(options_.handshake_timeout);
    auto step_or_deadline = std::move(step) || timer_.async_wait(use_nothrow);
    auto const done = co_await std::move(step_or_deadline);
    if (done.index() == 1) {
        fail(failure, std::string(what) + ": no answer within the handshake timeout");
        co_return false;
    }
    if (auto const [ec] = std::get<0>(done); ec) {
        fail(failure, std::string(what) + ": " + ec.message());
        co_return false;
    }
    co_return true;
}

net::awaitable<bool> client_session::open() {
    // The TCP connect and the TLS handshake race a deadline; from the upgrade on, the WebSocket stream's own
    // timeouts apply.
    auto& socket = beast::get_lowest_layer(ws_);
    auto tcp_connect = socket.async_connect(options_.endpoint, use_nothrow); // named: not built in co_await
    if (!co_await within_deadline(std::move(tcp_connect), session_status::connect_failed, "connect"))
        co_return false;
    beast::error_code ignored;
    socket.set_option(net::ip::tcp::no_delay(true), ignored);
    if (options_.kernel_timestamps) {
        beast::error_code ec;
        ws_.next_layer().next_layer().enable_timestamps(ec);
        if (ec) {
            fail(session_status::connect_failed, "SO_TIMESTAMPNS: " + ec.message());
            co_return false;
        }
    }
    if (options_.tls) {
        auto& tls = ws_.next_layer().start_tls(options_.tls->context());
        tls.set_verify_mode(net::ssl::verify_peer);
        tls.set_verify_callback(net::ssl::host_name_verification(options_.endpoint.address().to_string()));
        options_.tls->offer(tls.native_handle());
        auto handshake = tls.async_handshake(net::ssl::stream_base::client, use_nothrow);
        if (!co_await within_deadline(std::move(handshake), session_status::handshake_failed,
                                      "TLS handshake"))
            co_return false;
        report_.tls_resumed = SSL_session_reused(tls.native_handle()) == 1;
    }
    ws_.set_option(websocket::stream_base::timeout{
        options_.handshake_timeout,
        options_.idle_timeout ? beast::websocket::stream_base::duration(*options_.idle_timeout)
                              : websocket::stream_base::none(),
        options_.idle_timeout.has_value()});
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::request_type& req) { req.set(http::field::user_agent, "wolf-bench"); }));

    websocket::response_type response;
    if (auto [ec] = co_await ws_.async_handshake(response, options_.host, options_.target, use_nothrow); ec) {
        fail(session_status::handshake_failed,
             "handshake: " + ec.message() + " (HTTP " + std::to_string(response.result_int()) + ")");
        co_return false;
    }
    ws_.text(true);

    // `initial` carries the id every later event must repeat.
    if (auto [ec, n] = co_await ws_.async_read(buffer_, use_nothrow); ec) {
        fail(session_status::io_failed, "read initial: " + ec.message());
        co_return false;
    }
    ++report_.frames;
    auto const initial = parse_event(frame_text(buffer_), "id");
    if (auto const position = parse_event(frame_text(buffer_), "epoch")) report_.epoch = position->field;
    report_.initial_offset = quick_offset(frame_text(buffer_));
    buffer_.consume(buffer_.size());
    if (!initial || initial->type != protocol::event::initial || initial->field.empty()) {
        fail(session_status::protocol_failed, "the first frame is not `initial` with an id");
        co_return false;
    }
    report_.id = initial->field;
    ping_ = make_event(protocol::event::ping, report_.id);
    disconnect_ = make_event(protocol::event::disconnect, report_.id);

    auto const connect = make_event(protocol::event::connect, report_.id);
    if (!co_await send(connect)) co_return false;
    if (options_.subscribe) {
        auto const subscribe =
            options_.since
                ? boost::json::serialize(boost::json::object{
                      {"type", protocol::event::subscribe},
                      {"payload",
                       {{"id", report_.id},
                        {"since", {{"epoch", options_.since->first}, {"offset", options_.since->second}}}}}})
                : make_event(protocol::event::subscribe, report_.id);
        if (!co_await send(subscribe)) co_return false;
        // Nothing else is due before the confirmation: no wisdom before subscribing, no error if we are
        // right.
        if (auto [ec, n] = co_await ws_.async_read(buffer_, use_nothrow); ec) {
            fail(session_status::io_failed, "read subscribe_confirmation: " + ec.message());
            co_return false;
        }
        ++report_.frames;
        auto const confirmation = parse_event(frame_text(buffer_), "status");
        if (!confirmation || confirmation->type != protocol::event::subscribe_confirmation ||
            confirmation->field != "ok") {
            fail(session_status::protocol_failed, "expected subscribe_confirmation ok, got: " +
                                                      std::string(frame_text(buffer_).substr(0, 200)));
            co_return false;
        }
        if (options_.since) {
            boost::json::error_code ec;
            auto const value = boost::json::parse(frame_text(buffer_), ec);
            auto const* payload = ec ? nullptr : value.at("payload").if_object();
            auto const* recovered = payload ? payload->if_contains("recovered") : nullptr;
            if (recovered && recovered->is_bool()) report_.recovered = recovered->get_bool();
            report_.confirmed_offset = quick_offset(frame_text(buffer_));
            if (hooks_.on_confirmed)
                hooks_.on_confirmed(report_.recovered.value_or(false), report_.confirmed_offset);
        }
        buffer_.consume(buffer_.size());
    }
    report_.joined = steady_clock::now();
    // TLS 1.3 sends its session tickets after the handshake; they have been read by now.
    if (auto* tls = ws_.next_layer().tls(); tls && options_.tls->resume())
        options_.tls->keep(tls->native_handle());
    co_return true;
}

net::awaitable<bool> client_session::send(std::string const& text) {
    auto [ec, n] = co_await ws_.async_write(net::buffer(text), use_nothrow);
    if (ec) fail(session_status::io_failed, "write: " + ec.message());
    co_return !ec;
}

net::awaitable<void> client_session::read_loop() {
    for (;;) {
        auto [ec, n] = co_await ws_.async_read(buffer_, use_nothrow);
        if (ec) {
            auto const& reason = ws_.reason();
            report_.close_code = static_cast<std::uint16_t>(reason.code);
            report_.close_reason = reason.reason.c_str();
            if (ec == websocket::error::closed) {
                if (!leave_requested_ || reason.code != websocket::close_code::normal)
                    fail(session_status::closed_by_server,
                         "closed by the server with " + std::to_string(report_.close_code) +
                             (report_.close_reason.empty() ? "" : " " + report_.close_reason));
            } else {
                fail(session_status::io_failed, "read: " + ec.message());
            }
            break;
        }
        ++report_.frames;
        auto const frame = frame_text(buffer_);
        auto type = quick_event_type(frame);
        std::optional<parsed_event> parsed;
        if (!type || *type != protocol::event::wisdom_distribution) {
            parsed = parse_event(frame, "code");
            type = parsed ? std::optional<std::string_view>(parsed->type) : std::nullopt;
        }
        if (type == protocol::event::wisdom_distribution) {
            ++report_.wisdom;
            if (hooks_.on_wisdom) {
                auto const kernel = ws_.next_layer().next_layer().last_received();
                hooks_.on_wisdom(frame, options_.kernel_timestamps && kernel != system_clock::time_point{}
                                            ? kernel
                                            : system_clock::now());
            }
            if (options_.leave_after_wisdom != 0 && report_.wisdom >= options_.leave_after_wisdom)
                request_leave();
        } else if (type == protocol::event::error) {
            // We broke the contract somewhere: the session fails, but it still leaves cleanly.
            ++report_.errors;
            fail(session_status::protocol_failed, "error event: " + parsed->field);
        } else if (type != protocol::event::subscribe_confirmation) {
            fail(session_status::protocol_failed, "unexpected frame: " + std::string(frame.substr(0, 200)));
        }
        buffer_.consume(buffer_.size());
    }
    reader_done_ = true;
    timer_.cancel(); // the writer has nothing left to do
}

net::awaitable<void> client_session::write_loop() {
    auto next_ping = report_.joined + options_.first_ping.value_or(options_.ping_period);
    auto const leave_at = options_.hold ? report_.joined + *options_.hold : steady_clock::time_point::max();
    // leave_requested_ and reader_done_ are set on this executor and checked right before each wait, so a
    // cancel() can never fall between the check and the wait.
    while (!leave_requested_ && !reader_done_) {
        timer_.expires_at(std::min(next_ping, leave_at));
        co_await timer_.async_wait(use_nothrow);
        if (leave_requested_ || reader_done_) break;
        auto const now = steady_clock::now();
        if (now >= leave_at) break;
        if (now < next_ping) continue;
        if (!co_await send(ping_)) break;
        next_ping += options_.ping_period;
        if (next_ping <= now) next_ping = now + options_.ping_period; // late (a stalled thread): no burst
    }
    if (reader_done_) co_return;

    report_.leaving = steady_clock::now();
    leave_requested_ = true;
    if (!co_await send(disconnect_)) {
        abort();
        co_return;
    }
    // The server answers `disconnect` with close 1000; the reader completes that handshake. A server that
    // never closes is dropped after the handshake timeout.
    if (reader_done_) co_return; // the close arrived while `disconnect` was being written
    timer_.expires_after(options_.handshake_timeout);
    co_await timer_.async_wait(use_nothrow);
    if (!reader_done_) {
        fail(session_status::io_failed, "no close within the handshake timeout after `disconnect`");
        abort();
    }
}

tls_client::tls_client(std::shared_ptr<net::ssl::context> context, bool resume)
    : context_(std::move(context))
    , resume_(resume) {
}

tls_client::~tls_client() {
    if (latest_) SSL_SESSION_free(latest_);
}

void tls_client::offer(SSL* ssl) {
    if (!resume_) return;
    std::lock_guard lock(mutex_);
    if (latest_) SSL_set_session(ssl, latest_);
}

void tls_client::keep(SSL* ssl) {
    SSL_SESSION* session = SSL_get1_session(ssl);
    if (!session) return;
    if (SSL_SESSION_is_resumable(session) != 1) {
        SSL_SESSION_free(session);
        return;
    }
    std::lock_guard lock(mutex_);
    if (latest_) SSL_SESSION_free(latest_);
    latest_ = session;
}

std::shared_ptr<net::ssl::context> tls_client::make_context(std::string const& ca_file, std::string& error) {
    auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
    beast::error_code ec;
    context->load_verify_file(ca_file, ec);
    if (ec) {
        error = "cannot load " + ca_file + ": " + ec.message();
        return nullptr;
    }
    // Keep sessions client-side too, so SSL_get1_session returns one the server can resume.
    SSL_CTX_set_session_cache_mode(context->native_handle(), SSL_SESS_CACHE_CLIENT);
    return context;
}

void spawn_session(net::any_io_executor executor, std::shared_ptr<client_session> session,
                   std::function<void(session_report const&)> done) {
    // Created and started on the session's own executor, so its coroutine frames never cross threads.
    net::post(executor, [executor, session = std::move(session), done = std::move(done)]() mutable {
        net::co_spawn(executor, session->run(),
                      [done = std::move(done)](std::exception_ptr error, session_report report) {
                          if (error) std::rethrow_exception(error); // a bug, not I/O: loud
                          done(report);
                      });
    });
}

} // namespace wolf::bench
