#include "websocket_session.hpp"

#include "async.hpp"
#include "logger.hpp"
#include "protocol.hpp"
#include "tls.hpp"

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <deque>
#include <memory>
#include <optional>

namespace wolf {
namespace {

using namespace std::chrono_literals;

std::string make_connection_id() {
    // Operating-system entropy: ids are the only thing that proves who a client is.
    thread_local boost::uuids::random_generator generator;
    return boost::uuids::to_string(generator());
}

shared_frame make_frame(std::string text) {
    return std::make_shared<std::string const>(std::move(text));
}

shared_frame const& subscribe_confirmation_frame() {
    static shared_frame const frame = make_frame(protocol::make_subscribe_confirmation());
    return frame;
}

std::uint32_t millis_since_epoch(steady_clock::time_point t) noexcept {
    // Truncated to 32 bits: only differences of less than 49 days are ever taken.
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

/**
 * One WebSocket connection over `Stream` (beast::tcp_stream for ws://, tls_stream for wss://). The reader
 * coroutine (run) owns the session through a shared_ptr; the registry reaches it through its `peer` base
 * to queue frames and to close it, and each write in flight holds a shared_ptr so the frame and the
 * stream outlive it.
 *
 * Writes: a bounded queue of shared frames drained by a chain of async_write calls that starts when
 * the queue becomes non-empty, so an idle connection costs no parked coroutine. The frame at the
 * front is the one on the wire while writing() is true; it is popped only when that write completes.
 */
template <class Stream>
class websocket_session final : public peer, public std::enable_shared_from_this<websocket_session<Stream>> {
public:
    websocket_session(Stream stream, shared_state& state)
        : peer(make_connection_id())
        , ws_(std::move(stream))
        , state_(state) {}

    net::awaitable<void> run(http::request<http::string_body> request);

    bool offer(shared_frame const& frame) override {
        if (closing_ || queue_.size() >= state_.cfg.max_queue) return false;
        enqueue(frame);
        return true;
    }

    void close(std::uint16_t code, std::string_view reason) override;

    // The TCP socket under any TLS layer: no close_notify, the peer sees the connection end.
    void abort() override { beast::get_lowest_layer(ws_).close(); }

    bool transport_closing() const noexcept override { return !closing_ && !ended_ && !ws_.is_open(); }

private:
    // The write start time the watchdog reads is the one record of a write in flight.
    bool writing() const noexcept { return write_pending_since().has_value(); }
    void enqueue(shared_frame frame) {
        queue_.push_back(std::move(frame));
        if (!writing()) write_front();
    }
    void reply(shared_frame frame);
    void write_front();
    void on_write(beast::error_code ec);
    void drop_unsent();

    void handle_message(std::string_view text, steady_clock::time_point now);
    void reply_error(protocol::protocol_error const& error);
    bool over_rate_limit(steady_clock::time_point now) noexcept;
    void evict(eviction_reason reason, std::uint16_t code, std::string_view text);
    void log_end(beast::error_code ec);

    websocket::stream<Stream> ws_;
    shared_state& state_;
    std::deque<shared_frame> queue_;
    bool closing_ = false;
    bool ended_ = false;
    std::optional<net::steady_timer> close_deadline_; // made only when a close begins
    // Arrival times (ms) of the last rate_limit_messages messages, a ring.
    std::array<std::uint32_t, protocol::rate_limit_messages> recent_{};
    std::size_t recent_count_ = 0;
    std::size_t recent_next_ = 0;
    std::size_t errors_ = 0; // protocol errors so far, against --max-errors
};

template <class Stream>
net::awaitable<void> websocket_session<Stream>::run(http::request<http::string_body> request) {
    auto const& cfg = state_.cfg;
    // The handshake timeout covers the opening and the closing handshake; liveness after the opening is
    // the watchdog's job (client events), not WebSocket pings, which browsers cannot send.
    ws_.set_option(
        websocket::stream_base::timeout{cfg.handshake_timeout, websocket::stream_base::none(), false});
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "wolf-wisdom/" WOLF_VERSION); }));
    ws_.read_message_max(cfg.max_message_size);
    ws_.auto_fragment(false);
    ws_.text(true);

    // A handshake under way counts against --max-connections, like an open connection.
    ++state_.pending_upgrades;
    auto const [accept_ec] = co_await ws_.async_accept(request, use_nothrow);
    --state_.pending_upgrades;
    if (accept_ec) {
        log_debug("handshake_failed", kv("error", accept_ec.message()));
        co_return;
    }

    auto& connections = state_.connections;
    connections.add(*this);
    ++state_.stats.connections_total;
    auto const opened = steady_clock::now();
    touch(opened);
    enqueue(make_frame(protocol::make_initial(id())));
    beast::error_code endpoint_ec;
    log_info("open", kv("id", id()),
             kv("remote", beast::get_lowest_layer(ws_).socket().remote_endpoint(endpoint_ec)),
             kv("connections", connections.connections()));
    if (state_.shutting_down) close(protocol::close_code::going_away, protocol::close_reason::going_away);

    beast::flat_buffer buffer;
    beast::error_code end_ec;
    for (;;) {
        auto const [ec, size] = co_await ws_.async_read(buffer, use_nothrow);
        if (ec) {
            end_ec = ec;
            break;
        }
        auto const now = steady_clock::now();
        // After a close begins, what the client still sends is read (to finish the handshake) and ignored.
        if (!closing_) {
            if (over_rate_limit(now))
                evict(eviction_reason::rate_limit, protocol::close_code::policy_violation,
                      protocol::close_reason::rate_limit);
            else if (!ws_.got_text())
                evict(eviction_reason::binary, protocol::close_code::unsupported_data,
                      protocol::close_reason::binary);
            else
                handle_message({static_cast<char const*>(buffer.data().data()), size}, now);
        }
        buffer.consume(buffer.size());
    }

    ended_ = true;
    connections.remove(*this);
    if (close_deadline_) close_deadline_->cancel();
    drop_unsent();
    abort(); // the read failed: make sure a write in flight completes too
    log_end(end_ec);
    state_.stats.session_duration.observe(
        std::chrono::duration<double>(steady_clock::now() - opened).count());
    if (state_.on_peer_removed) state_.on_peer_removed();
}

template <class Stream>
void websocket_session<Stream>::handle_message(std::string_view text, steady_clock::time_point now) {
    auto parsed = protocol::parse_client_event(text);
    if (auto const* error = std::get_if<protocol::protocol_error>(&parsed)) return reply_error(*error);
    auto const& event = std::get<protocol::client_event>(parsed);

    auto& connections = state_.connections;
    if (auto const error = protocol::check_client_event(event, id(), connections.is_ready(*this)))
        return reply_error(*error);

    touch(now); // only applied events count as liveness
    switch (event.type) {
    case protocol::client_event_type::connect:
        if (connections.mark_ready(*this))
            log_info("connect", kv("id", id()), kv("ready", connections.ready()));
        break;
    case protocol::client_event_type::subscribe:
        if (connections.subscribe(*this))
            log_info("subscribe", kv("id", id()), kv("subscribers", connections.subscribers()));
        reply(subscribe_confirmation_frame());
        break;
    case protocol::client_event_type::unsubscribe:
        if (connections.unsubscribe(*this))
            log_info("unsubscribe", kv("id", id()), kv("subscribers", connections.subscribers()));
        break;
    case protocol::client_event_type::ping:
        log_debug("ping", kv("id", id()));
        break;
    case protocol::client_event_type::disconnect:
        log_info("disconnect", kv("id", id()));
        close(protocol::close_code::normal, {});
        break;
    }
}

template <class Stream>
void websocket_session<Stream>::reply_error(protocol::protocol_error const& error) {
    state_.stats.count(error.code);
    if (++errors_ > state_.cfg.max_errors)
        return evict(eviction_reason::error_limit, protocol::close_code::policy_violation,
                     protocol::close_reason::too_many_errors);
    log_debug("protocol_error", kv("id", id()), kv("code", protocol::to_string(error.code)),
              kv("message", error.message));
    reply(make_frame(protocol::make_error(error)));
}

template <class Stream>
void websocket_session<Stream>::reply(shared_frame frame) {
    // Replies are never dropped, but a client that sends without reading cannot grow the queue without
    // bound: past twice --max-queue it is closed as a slow consumer.
    if (queue_.size() >= 2 * state_.cfg.max_queue)
        return evict(eviction_reason::slow_consumer, protocol::close_code::policy_violation,
                     protocol::close_reason::slow_consumer);
    enqueue(std::move(frame));
}

template <class Stream>
bool websocket_session<Stream>::over_rate_limit(steady_clock::time_point now) noexcept {
    auto const ms = millis_since_epoch(now);
    auto& oldest = recent_[recent_next_]; // the arrival time rate_limit_messages messages ago
    bool const over = recent_count_ == recent_.size() && ms - oldest < 1000;
    oldest = ms;
    recent_next_ = (recent_next_ + 1) % recent_.size();
    if (recent_count_ < recent_.size()) ++recent_count_;
    return over;
}

template <class Stream>
void websocket_session<Stream>::evict(eviction_reason reason, std::uint16_t code, std::string_view text) {
    if (closing_) return;
    state_.stats.count(reason);
    log_info("evict", kv("id", id()), kv("reason", to_string(reason)));
    close(code, text);
}

template <class Stream>
void websocket_session<Stream>::close(std::uint16_t code, std::string_view reason) {
    if (closing_ || ended_) return;
    closing_ = true;
    state_.connections.begin_close(*this);
    // Frames not yet on the wire would only delay the close frame.
    drop_unsent();
    // Beast may already be closing on its own (it answers bad UTF-8 with 1007, oversize with 1009, protocol
    // violations with 1002); then only the deadline below is needed.
    if (ws_.is_open())
        ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason),
                        [self = this->shared_from_this()](beast::error_code) {});
    // A peer that never answers the close (or never reads) is dropped after the handshake timeout.
    close_deadline_.emplace(ws_.get_executor());
    close_deadline_->expires_after(state_.cfg.handshake_timeout);
    close_deadline_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
        if (!ec) self->abort();
    });
}

template <class Stream>
void websocket_session<Stream>::write_front() {
    write_began(steady_clock::now());
    ws_.async_write(
        net::buffer(*queue_.front()),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec); });
}

template <class Stream>
void websocket_session<Stream>::on_write(beast::error_code ec) {
    write_ended();
    queue_.pop_front();
    if (ec) {
        log_debug("write_failed", kv("id", id()), kv("error", ec.message()));
        drop_unsent();
        return abort();
    }
    if (!queue_.empty() && !closing_) write_front();
}

template <class Stream>
void websocket_session<Stream>::drop_unsent() {
    // Keep the frame whose write is in flight: its buffer must live until the write completes.
    queue_.erase(queue_.begin() + (writing() ? 1 : 0), queue_.end());
}

template <class Stream>
void websocket_session<Stream>::log_end(beast::error_code ec) {
    if (ec == websocket::error::message_too_big) {
        state_.stats.count(eviction_reason::too_big);
        log_info("evict", kv("id", id()), kv("reason", to_string(eviction_reason::too_big)),
                 kv("max_message_size", state_.cfg.max_message_size));
    } else if (ec == websocket::error::bad_frame_payload) {
        state_.stats.count(eviction_reason::bad_utf8);
        log_info("evict", kv("id", id()), kv("reason", to_string(eviction_reason::bad_utf8)));
    }
    auto const& reason = ws_.reason();
    auto const connections = state_.connections.connections();
    if (ec != websocket::error::closed)
        log_info("closed", kv("id", id()), kv("error", ec.message()), kv("connections", connections));
    else if (reason.reason.empty())
        log_info("closed", kv("id", id()), kv("code", reason.code), kv("connections", connections));
    else
        log_info("closed", kv("id", id()), kv("code", reason.code),
                 kv("reason", std::string_view(reason.reason.data(), reason.reason.size())),
                 kv("connections", connections));
}

} // namespace

template <class Stream>
net::awaitable<void> run_websocket_session(Stream stream, http::request<http::string_body> request,
                                           shared_state& state) {
    auto const session = std::make_shared<websocket_session<Stream>>(std::move(stream), state);
    co_await session->run(std::move(request));
}

template net::awaitable<void> run_websocket_session(beast::tcp_stream, http::request<http::string_body>,
                                                    shared_state&);
template net::awaitable<void> run_websocket_session(tls_stream, http::request<http::string_body>,
                                                    shared_state&);

} // namespace wolf
