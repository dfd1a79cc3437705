#include "websocket_session.hpp"

#include "frame_stream.hpp"
#include "message_rate.hpp"
#include "protocol.hpp"
#include "support/async.hpp"
#include "support/logger.hpp"
#include "tls_socket.hpp"
#include "version.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/uuid/detail/random_provider.hpp>
#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <memory>

namespace wolf {
namespace {

using namespace std::chrono_literals;

/**
 * A fresh version-4 UUID from operating-system entropy: ids are the only thing that proves who a client
 * is. The entropy is drawn 4 KiB at a time, so a new connection does not cost a getrandom call of its own.
 */
std::string make_connection_id() {
    struct entropy_pool {
        std::array<std::uint8_t, 4096> bytes;
        std::size_t used = sizeof bytes;
    };
    thread_local entropy_pool pool;
    if (pool.used + 16 > pool.bytes.size()) {
        boost::uuids::detail::random_provider().get_random_bytes(pool.bytes.data(), pool.bytes.size());
        pool.used = 0;
    }
    boost::uuids::uuid id;
    std::copy_n(pool.bytes.begin() + static_cast<std::ptrdiff_t>(pool.used), id.size(), id.begin());
    // The bytes of this id are wiped, so they stay nowhere but in the id.
    std::fill_n(pool.bytes.begin() + static_cast<std::ptrdiff_t>(pool.used), id.size(), std::uint8_t{0});
    pool.used += id.size();
    id.data[6] = static_cast<std::uint8_t>((id.data[6] & 0x0F) | 0x40); // version 4
    id.data[8] = static_cast<std::uint8_t>((id.data[8] & 0x3F) | 0x80); // variant RFC 4122
    return boost::uuids::to_string(id);
}

shared_frame const& subscribe_confirmation_frame() {
    static shared_frame const frame = make_text_frame(protocol::make_subscribe_confirmation());
    return frame;
}

/**
 * One WebSocket connection over `Transport` (a tcp_socket for ws://, a tls_socket for wss://). The reader
 * coroutine (run) owns the session through a shared_ptr; the registry reaches it through its `peer` base
 * to queue frames and to close it, and a wait on a busy socket holds a shared_ptr so the stream outlives
 * it.
 *
 * Writes: every frame, the broadcaster's shared one included, goes through the frame_stream under the
 * WebSocket layer, which writes it at once when the socket takes it and otherwise queues it (at most
 * --max-queue broadcasts) until the socket is writable. An idle connection holds no write state at all.
 */
template <class Transport>
class websocket_session final : public peer,
                                public std::enable_shared_from_this<websocket_session<Transport>> {
public:
    websocket_session(Transport transport, shard& connection_shard)
        : peer(make_connection_id())
        , shard_(connection_shard)
        , max_queue_(connection_shard.server.cfg.max_queue)
        , frames_(std::move(transport))
        , ws_(frames_) {}

    /** The session's one coroutine; it holds `self`, so the session lives until the connection ends. */
    static loop_awaitable<> run(std::shared_ptr<websocket_session> self,
                                std::unique_ptr<http::request<http::string_body>> request) {
        auto& session = *self;
        return session.run_impl(std::move(self), std::move(request));
    }

    bool offer(shared_frame const& frame) override {
        if (closing_) return false;
        // A subscriber that recovered past this shard's latest broadcast (it came from a node further on)
        // has had every broadcast up to its `since`: those arrive here live, and are not sent again.
        if (frame->offset() <= recovered_through_) return true;
        if (frames_.resent_queued() != 0) return offer_behind_replay(frame);
        if (frames_.queued() >= max_queue_) return false;
        frames_.send(frame);
        return true;
    }

    void close(std::uint16_t code, std::string_view reason) override;

    void epoch_changed() noexcept override { recovered_through_ = 0; }

    // The TCP socket under any TLS layer: no close_notify, the peer sees the connection end.
    void abort() override { beast::close_socket(beast::get_lowest_layer(ws_)); }

    // Read from this object's own leading cache lines, not from the WebSocket layer's state: the watchdog
    // asks every connection at every sweep.
    bool transport_closing() const noexcept override {
        return !closing_ && !ended_ && frames_.close_written();
    }

    std::optional<steady_clock::time_point> write_pending_since() const noexcept override {
        return frames_.blocked_since();
    }

private:
    loop_awaitable<> run_impl(std::shared_ptr<websocket_session> self,
                              std::unique_ptr<http::request<http::string_body>> request);
    loop_awaitable<bool> open(std::unique_ptr<http::request<http::string_body>> request);
    /** The reader: reads and applies client events while the client speaks; it ends with the connection, or
     * when the client falls quiet, and a read-ahead starts the next one. */
    loop_awaitable<> read_messages(std::shared_ptr<websocket_session> self);
    void wait_quietly(std::shared_ptr<websocket_session> self);
    /** Applies a whole message. */
    void on_message(std::string_view text);
    void finish(beast::error_code ec);
    void reply(shared_frame const& frame);

    void handle_message(std::string_view text, steady_clock::time_point now);
    void reply_error(protocol::protocol_error const& error);
    /** `subscribe` with `since`, on a connection not yet subscribed (protocol section 10). */
    void recover(protocol::position const& since);
    /** A live broadcast for a subscriber whose replay is still going out. */
    bool offer_behind_replay(shared_frame const& frame);
    void evict(eviction_reason reason, std::uint16_t code, std::string_view text);
    void log_end(beast::error_code ec);

    // A broadcast's delivery touches only this object, and its first members: the flags, the queue bound
    // and the frame stream (whose socket and queue pointer lead it) sit together right after the peer's.
    // The WebSocket layer refers to the frame stream. No permessage-deflate: frames are tiny, and it would
    // cost state on every connection.
    bool closing_ = false;
    bool ended_ = false;
    bool reading_ = true;      // a reader coroutine runs (false: a quiet connection, between its messages)
    std::uint32_t errors_ = 0; // protocol errors so far, against --max-errors
    shard& shard_;             // this connection's event-loop thread
    std::size_t const max_queue_;
    std::uint64_t recovered_through_ = 0; // the offset its recovery reached (0: none)
    frame_stream<Transport> frames_;
    websocket::stream<frame_stream<Transport>&, false> ws_;
    std::unique_ptr<loop_timer> close_deadline_; // made only for a close Beast began on its own
    message_rate rate_;
    steady_clock::time_point opened_{}; // the handshake completed
};

template <class Transport>
loop_awaitable<bool>
websocket_session<Transport>::open(std::unique_ptr<http::request<http::string_body>> request) {
    auto const& cfg = shard_.server.cfg;
    // The handshake timeout covers the opening and the closing handshake; liveness after the opening is
    // the watchdog's job (client events), not WebSocket pings, which browsers cannot send.
    ws_.set_option(
        websocket::stream_base::timeout{cfg.handshake_timeout, websocket::stream_base::none(), false});
    // A handshake the WebSocket layer refuses (400, or 426 for another version) has a text body, labelled
    // like the server's other error answers.
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
        res.set(http::field::server, "wolf-wisdom/" WOLF_VERSION);
        if (res.result() != http::status::switching_protocols) {
            res.set(http::field::content_type, "text/plain; charset=utf-8");
            res.set("X-Content-Type-Options", "nosniff");
        }
    }));
    ws_.read_message_max(cfg.max_message_size);
    ws_.auto_fragment(false);
    ws_.text(true);

    // The handshake holds a place among --max-connections from the moment the HTTP session accepted the
    // upgrade; an open connection keeps it until its close begins (the registry gives it back).
    // The 101 response waits for `initial`, and both leave together.
    frames_.cork();
    auto const [accept_ec] = co_await ws_.async_accept(*request, loop_nothrow);
    if (accept_ec) {
        shard_.server.pools.release(); // the place the HTTP session took for this upgrade
        frames_.uncork();              // Beast's refusal, if it wrote one
        log_debug("handshake_failed", kv("error", accept_ec.message()));
        co_return false;
    }

    auto& connections = shard_.connections;
    connections.add(*this);
    ++shard_.server.stats.connections_total;
    opened_ = steady_clock::now();
    touch(opened_);
    frames_.send(make_text_frame(protocol::make_initial(id(), shard_.record.latest())));
    frames_.uncork();
    if (log_enabled(log_level::info)) { // the peer's address costs a system call
        beast::error_code endpoint_ec;
        log_info("open", kv("id", id()),
                 kv("remote", beast::get_lowest_layer(ws_).remote_endpoint(endpoint_ec)),
                 kv("connections", shard_.server.pools.connections()));
    }
    if (shard_.server.shutting_down)
        close(protocol::close_code::going_away, protocol::close_reason::going_away);
    co_return true;
}

template <class Transport>
loop_awaitable<>
websocket_session<Transport>::run_impl(std::shared_ptr<websocket_session> self,
                                       std::unique_ptr<http::request<http::string_body>> request) {
    frames_.keep_alive_with(self);
    // The handshake in a coroutine of its own: its frame, and the request, are gone once it is done.
    auto opening = open(std::move(request)); // named: GCC 12 mishandles argument temporaries in co_await
    if (!co_await std::move(opening)) co_return;

    auto reader = read_messages(std::move(self)); // named: GCC 12 mishandles argument temporaries in co_await
    co_await std::move(reader);
}

template <class Transport>
loop_awaitable<> websocket_session<Transport>::read_messages(std::shared_ptr<websocket_session> self) {
    // Client events are a few dozen bytes: they are read into a small buffer, and only a message that does
    // not fit in one read is gathered in `message`.
    std::array<char, 128> chunk;
    std::string message;
    for (;;) {
        auto const [ec, size] = co_await ws_.async_read_some(net::buffer(chunk), loop_nothrow);
        if (ec) co_return finish(ec);
        std::string_view text(chunk.data(), size);
        if (!ws_.is_message_done() || !message.empty()) {
            message.append(text);
            if (!ws_.is_message_done()) continue;
            text = message;
        }
        bool const nothing_unread = frames_.message_taken();
        on_message(text);
        if (!message.empty()) std::string().swap(message);
        // Between messages, with nothing read left unread, this coroutine ends: a quiet client (an idle
        // subscriber spends its life between pings) costs no coroutine and no parked WebSocket read, only
        // the read-ahead that starts the next reader. While closing it reads on, to the closing handshake.
        if (nothing_unread && !closing_) co_return wait_quietly(std::move(self));
    }
}

template <class Transport>
void websocket_session<Transport>::wait_quietly(std::shared_ptr<websocket_session> self) {
    reading_ = false;
    frames_.async_read_ahead([self = std::move(self)](beast::error_code ec) mutable {
        auto& session = *self;
        // A close began meanwhile: the WebSocket layer reads from here on (what this wait took first), and
        // the close's own completion ends the session.
        if (session.closing_) return;
        if (ec) return session.finish(ec);
        session.reading_ = true;
        auto const executor = session.ws_.get_executor();
        auto reader = session.read_messages(std::move(self));
        net::co_spawn(executor, std::move(reader), log_and_contain{"websocket_session"});
    });
}

template <class Transport>
void websocket_session<Transport>::on_message(std::string_view text) {
    // After a close begins, what the client still sends is read (to finish the handshake) and ignored.
    if (closing_) return;
    auto const now = steady_clock::now();
    if (rate_.over_limit(now))
        return evict(eviction_reason::rate_limit, protocol::close_code::policy_violation,
                     protocol::close_reason::rate_limit);
    if (!ws_.got_text())
        return evict(eviction_reason::binary, protocol::close_code::unsupported_data,
                     protocol::close_reason::binary);
    handle_message(text, now);
}

template <class Transport>
void websocket_session<Transport>::finish(beast::error_code ec) {
    if (ended_) return; // a reader, a close's completion or its deadline: whichever comes first
    ended_ = true;
    shard_.connections.remove(*this);
    if (close_deadline_) close_deadline_->cancel();
    frames_.drop_unsent();
    abort(); // the read failed: make sure a pending write ends too
    log_end(ec);
    shard_.server.stats.session_duration.observe(
        std::chrono::duration<double>(steady_clock::now() - opened_).count());
    if (shard_.on_peer_removed) shard_.on_peer_removed();
}

template <class Transport>
void websocket_session<Transport>::handle_message(std::string_view text, steady_clock::time_point now) {
    auto parsed = protocol::parse_client_event(text);
    if (auto const* error = std::get_if<protocol::protocol_error>(&parsed)) return reply_error(*error);
    auto const& event = std::get<protocol::client_event>(parsed);

    auto& connections = shard_.connections;
    if (auto const error = protocol::check_client_event(event, id(), connections.is_ready(*this)))
        return reply_error(*error);

    touch(now); // only applied events count as liveness
    switch (event.type) {
    case protocol::client_event_type::connect:
        if (connections.mark_ready(*this))
            log_info("connect", kv("id", id()), kv("ready", shard_.server.pools.ready()));
        break;
    case protocol::client_event_type::subscribe:
        if (event.since && !connections.is_subscribed(*this)) return recover(*event.since);
        if (connections.subscribe(*this))
            log_info("subscribe", kv("id", id()), kv("subscribers", shard_.server.pools.subscribers()));
        reply(subscribe_confirmation_frame());
        break;
    case protocol::client_event_type::unsubscribe:
        recovered_through_ = 0; // a later subscribe starts afresh
        if (connections.unsubscribe(*this))
            log_info("unsubscribe", kv("id", id()), kv("subscribers", shard_.server.pools.subscribers()));
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

template <class Transport>
void websocket_session<Transport>::reply_error(protocol::protocol_error const& error) {
    shard_.server.stats.count(error.code);
    if (++errors_ > shard_.server.cfg.max_errors)
        return evict(eviction_reason::error_limit, protocol::close_code::policy_violation,
                     protocol::close_reason::too_many_errors);
    log_debug("protocol_error", kv("id", id()), kv("code", protocol::to_string(error.code)),
              kv("message", error.message));
    reply(make_text_frame(protocol::make_error(error)));
}

template <class Transport>
void websocket_session<Transport>::recover(protocol::position const& since) {
    // On this shard's thread, its history holds every broadcast offered here so far and no later one: the
    // confirmation, then those after `since`, then the subscription, and every later broadcast arrives live,
    // after them. Nothing can come between.
    auto const& record = shard_.record;
    auto const result = record.check(since);
    bool const recovered = result == history::outcome::recovered;
    reply(make_text_frame(protocol::make_subscribe_confirmation(recovered, record.latest())));
    if (closing_) return; // the confirmation found it a slow consumer
    std::uint64_t resent = 0;
    if (recovered) {
        record.replay_after(since.offset, [&](shared_frame const& frame) {
            frames_.resend(frame);
            ++resent;
        });
    }
    recovered_through_ = recovered ? since.offset : 0;
    shard_.connections.subscribe(*this);
    auto& stats = shard_.server.stats;
    stats.count_recovery(result);
    stats.resent_total += resent;
    log_debug("recovery", kv("id", id()), kv("result", to_string(result)), kv("since", since.offset),
              kv("latest", record.latest().offset), kv("resent", resent));
    log_info("subscribe", kv("id", id()), kv("subscribers", shard_.server.pools.subscribers()));
}

template <class Transport>
bool websocket_session<Transport>::offer_behind_replay(shared_frame const& frame) {
    // The broadcasts made while a replay goes out are owed as surely as the replay (protocol section 10):
    // they queue behind it uncounted too, so the drop rule never skips one. A client that lets --max-queue
    // of them pile up past a whole --history is closed as a slow consumer instead, once this broadcast's
    // walk over the shard is done (the walk must not change the registry); it may recover again.
    if (frames_.resent_queued() < shard_.server.cfg.history + max_queue_) {
        frames_.resend(frame);
        return true;
    }
    net::post(ws_.get_executor(), [self = this->shared_from_this()] {
        self->evict(eviction_reason::slow_consumer, protocol::close_code::policy_violation,
                    protocol::close_reason::slow_consumer);
    });
    return false;
}

template <class Transport>
void websocket_session<Transport>::reply(shared_frame const& frame) {
    // Replies are never dropped, but a client that sends without reading cannot grow the queue without
    // bound: past twice --max-queue it is closed as a slow consumer.
    if (frames_.queued() >= 2 * shard_.server.cfg.max_queue)
        return evict(eviction_reason::slow_consumer, protocol::close_code::policy_violation,
                     protocol::close_reason::slow_consumer);
    frames_.send(frame);
}

template <class Transport>
void websocket_session<Transport>::evict(eviction_reason reason, std::uint16_t code, std::string_view text) {
    if (closing_) return;
    shard_.server.stats.count(reason);
    log_info("evict", kv("id", id()), kv("reason", to_string(reason)));
    close(code, text);
}

template <class Transport>
void websocket_session<Transport>::close(std::uint16_t code, std::string_view reason) {
    if (closing_ || ended_) return;
    closing_ = true;
    shard_.connections.begin_close(*this);
    // Frames not yet on the wire would only delay the close frame.
    frames_.drop_unsent();
    // A quiet connection has no reader: the close reads the client's answer itself, and ends the session
    // (a read-ahead is pending only then).
    frames_.cancel_read_ahead();
    // A peer that never answers the close (or never reads) is dropped after the handshake timeout: Beast's
    // closing handshake has that deadline (the stream's handshake_timeout, set in open()), and ends with
    // `timeout` when it passes.
    if (ws_.is_open())
        return ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason),
                               [self = this->shared_from_this()](beast::error_code ec) {
                                   if (!self->reading_) self->finish(ec);
                               });
    // Beast is already closing on its own (it answers bad UTF-8 with 1007, oversize with 1009, protocol
    // violations with 1002): a deadline of ours bounds what is left.
    close_deadline_ = std::make_unique<loop_timer>(ws_.get_executor());
    close_deadline_->expires_after(shard_.server.cfg.handshake_timeout);
    close_deadline_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return;
        self->abort();
        if (!self->reading_) self->finish(net::error::timed_out);
    });
}

template <class Transport>
void websocket_session<Transport>::log_end(beast::error_code ec) {
    if (ec == websocket::error::message_too_big) {
        shard_.server.stats.count(eviction_reason::too_big);
        log_info("evict", kv("id", id()), kv("reason", to_string(eviction_reason::too_big)),
                 kv("max_message_size", shard_.server.cfg.max_message_size));
    } else if (ec == websocket::error::bad_frame_payload) {
        shard_.server.stats.count(eviction_reason::bad_utf8);
        log_info("evict", kv("id", id()), kv("reason", to_string(eviction_reason::bad_utf8)));
    }
    if (!log_enabled(log_level::info)) return; // the error's text costs an allocation
    auto const& reason = ws_.reason();
    auto const connections = shard_.server.pools.connections();
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

template <class Transport>
loop_awaitable<> run_websocket_session(Transport transport,
                                       std::unique_ptr<http::request<http::string_body>> request,
                                       shard& connection_shard) {
    using session_type = websocket_session<Transport>;
    auto session = std::make_shared<session_type>(std::move(transport), connection_shard);
    return session_type::run(std::move(session), std::move(request));
}

template loop_awaitable<> run_websocket_session(tcp_socket, std::unique_ptr<http::request<http::string_body>>,
                                                shard&);
template loop_awaitable<> run_websocket_session(tls_socket, std::unique_ptr<http::request<http::string_body>>,
                                                shard&);

} // namespace wolf
