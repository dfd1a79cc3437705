#pragma once

// A WebSocket client that speaks the wire contract (docs/protocol.md) from start to end, for the
// benchmarks: one session per connection, on Asio coroutines, on whatever io_context it is given.

#include "client_stream.hpp"
#include "support/net.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace wolf::bench {

using steady_clock = std::chrono::steady_clock;
using system_clock = std::chrono::system_clock;
using milliseconds = std::chrono::milliseconds;

/** How a session connects and when it leaves. */
struct session_options {
    net::ip::tcp::endpoint endpoint{net::ip::make_address_v4("127.0.0.1"), 8000};
    std::string host = "127.0.0.1:8000"; // the Host header of the upgrade
    std::string target = "/ws";
    bool subscribe = true;
    milliseconds ping_period{5000}; // the contract's client duty: a `ping` at least this often
    // The first `ping` this long after joining (default: ping_period). Thousands of sessions that join
    // together should spread it over a period, or they ping in bursts forever after.
    std::optional<milliseconds> first_ping;
    // Time each wisdom by the kernel's receive timestamp (SO_TIMESTAMPNS) instead of when it is processed.
    bool kernel_timestamps = false;
    // TCP connect, the upgrade and the closing handshake each; also how long to wait, after `disconnect`,
    // for the server to close.
    milliseconds handshake_timeout{10000};
    // Nothing received for this long (a WebSocket ping goes out half way) fails the session. nullopt: no
    // limit, for a server that is meant to be silent; the session still ends when asked to leave, its close
    // bounded by handshake_timeout. Keep it well above any expected silence: Beast's idle timer can fire
    // while a close is under way and time the close out.
    std::optional<milliseconds> idle_timeout{milliseconds{30000}};
    std::uint64_t leave_after_wisdom = 0; // leave on the Nth wisdom_distribution; 0: not on its own
    std::optional<milliseconds> hold;     // leave this long after joining (subscribed, or connected)
    // Subscribe with `since` (lossless reconnect, protocol section 13): this epoch and offset.
    std::optional<std::pair<std::string, std::uint64_t>> since;
    // wss://: TLS after the TCP connect, the server's certificate checked against the client's CA and the
    // endpoint's address. Shared by the sessions of a run.
    std::shared_ptr<tls_client> tls;
};

/** Callbacks a session makes, on its own executor. */
struct session_hooks {
    using wisdom_hook = std::function<void(std::string_view frame, system_clock::time_point received)>;
    std::function<void()> on_joined; // subscribed (or connected, if not subscribing)
    // With `since`: what the confirmation said, and the latest position it gave; before any wisdom.
    std::function<void(bool recovered, std::uint64_t latest)> on_confirmed;
    // Each wisdom_distribution frame and when it was received: the kernel's receive time of the read that
    // completed it with kernel_timestamps (CLOCK_REALTIME), else the time it is processed. The frame is
    // only valid during the call.
    wisdom_hook on_wisdom;
};

/** How a session ended. Only `completed` is a success. */
enum class session_status {
    running,
    completed,        // we sent `disconnect` and the server closed with 1000
    connect_failed,   // TCP connect
    handshake_failed, // the WebSocket upgrade (the server may have refused it, e.g. 503 at capacity)
    protocol_failed,  // a frame outside the contract, or an `error` event for something we sent
    closed_by_server, // the server closed before we asked (an eviction, a shutdown)
    io_failed,        // a read or write failed or timed out, or the server did not close after `disconnect`
};
inline constexpr std::size_t session_status_count = 7;
std::string_view to_string(session_status status) noexcept;

/** What one session saw. Times are zero until reached. */
struct session_report {
    session_status status = session_status::running;
    std::string detail; // why it failed, in words
    std::string id;     // from `initial`
    std::uint16_t close_code = 0;
    std::string close_reason;
    std::uint64_t frames = 0; // every server event received
    std::uint64_t wisdom = 0; // wisdom_distribution events received
    std::uint64_t errors = 0; // `error` events received
    std::string epoch;        // the latest position, from `initial`
    std::uint64_t initial_offset = 0;
    std::optional<bool> recovered;      // with `since`: what the confirmation said
    std::uint64_t confirmed_offset = 0; // with `since`: the latest position the confirmation gave
    bool tls_resumed = false;           // wss://: the TLS handshake resumed an earlier session
    steady_clock::time_point started{};
    steady_clock::time_point joined{}; // `subscribe_confirmation` read (or `connect` sent, without subscribe)
    steady_clock::time_point leaving{}; // `disconnect` sent
    steady_clock::time_point ended{};
};

/**
 * One client connection through its whole life: TCP connect, upgrade, read `initial`, send `connect`,
 * `subscribe` and read `subscribe_confirmation`; then a reader that counts `wisdom_distribution` events
 * and a writer that sends `ping` every ping_period, until the session leaves: `disconnect`, then the
 * closing handshake the server starts (close 1000).
 *
 * Event types are classified cheaply: a frame that starts with `{"type":"` (the compact form the server
 * emits) is classified by the string that follows, with no parse; any other frame, and every event
 * whose payload matters (`initial`, `subscribe_confirmation`, `error`), goes through boost::json, so a
 * server that formats differently is still understood. Payloads of `wisdom_distribution` are not checked.
 *
 * Shared because two parties reach it: its own coroutines, and an owner on another thread that asks it
 * to leave. Every member is touched on the session's executor only; leave() posts there.
 */
class client_session : public std::enable_shared_from_this<client_session> {
public:
    client_session(net::any_io_executor executor, session_options options, session_hooks hooks = {});

    /** Runs the whole session; returns when it has ended, however it ended. Never throws for I/O. The
     * caller must hold a shared_ptr to the session. */
    net::awaitable<session_report> run();

    /** Asks the session to leave: `disconnect` and the closing handshake. From any thread; idempotent. */
    void leave();

    /** Drops the connection without a word, as a lost network would; the session counts as completed. From
     * any thread. */
    void drop();

private:
    net::awaitable<bool> open();
    /** Awaits `step` against the handshake timeout; false, with the session failed as `failure` and `what`
     * named, if it failed or timed out. */
    net::awaitable<bool> within_deadline(net::awaitable<std::tuple<beast::error_code>> step,
                                         session_status failure, std::string_view what);
    net::awaitable<void> read_loop();
    net::awaitable<void> write_loop();
    net::awaitable<bool> send(std::string const& text);
    void request_leave();
    void fail(session_status status, std::string detail);
    void abort();

    session_options options_;
    session_hooks hooks_;
    websocket::stream<client_stream> ws_;
    net::steady_timer timer_; // the connect deadline, then the writer's: next ping, hold, or the close
    beast::flat_buffer buffer_;
    session_report report_;
    std::string ping_; // the serialized `ping` and `disconnect` for this session's id
    std::string disconnect_;
    bool leave_requested_ = false;
    bool reader_done_ = false;
    bool dropped_ = false;
};

/** The `offset` of a wisdom_distribution frame in the server's compact form, without a parse; 0 if none. */
std::uint64_t quick_offset(std::string_view frame) noexcept;

/** Spawns `session->run()` on the session's executor and hands its report to `done` there. */
void spawn_session(net::any_io_executor executor, std::shared_ptr<client_session> session,
                   std::function<void(session_report const&)> done);

/**
 * The `type` of a server event without parsing it, when the frame starts with `{"type":"` and the value
 * has no escapes (the server's own compact form); nullopt otherwise, and the caller should parse.
 */
std::optional<std::string_view> quick_event_type(std::string_view frame) noexcept;

} // namespace wolf::bench
