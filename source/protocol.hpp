#pragma once

// The wire contract (docs/protocol.md) in one place: every event name, error code, close code and
// close reason is spelled here and used by name everywhere else, tests included. Nothing in here
// knows about sockets.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace wolf::protocol {

/** Event type names, exactly as they appear in "type". */
namespace event {
// server -> client
inline constexpr std::string_view initial = "initial";
inline constexpr std::string_view subscribe_confirmation = "subscribe_confirmation";
inline constexpr std::string_view wisdom_distribution = "wisdom_distribution";
inline constexpr std::string_view error = "error";
// client -> server
inline constexpr std::string_view connect = "connect";
inline constexpr std::string_view subscribe = "subscribe";
inline constexpr std::string_view unsubscribe = "unsubscribe";
inline constexpr std::string_view ping = "ping";
inline constexpr std::string_view disconnect = "disconnect";
} // namespace event

enum class client_event_type { connect, subscribe, unsubscribe, ping, disconnect };
std::string_view to_string(client_event_type type) noexcept;

/** Errors answered with an `error` event; the connection stays open. Declared in checking order. */
enum class error_code { bad_message, unknown_type, id_mismatch, not_connected };
inline constexpr std::size_t error_code_count = 4;
std::string_view to_string(error_code code) noexcept;

/** WebSocket close codes the server sends. */
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t unsupported_data = 1003; // a binary frame
inline constexpr std::uint16_t bad_payload = 1007;      // invalid UTF-8
inline constexpr std::uint16_t policy_violation = 1008; // rate limit, slow consumer, too many errors
inline constexpr std::uint16_t too_big = 1009;          // over --max-message-size
inline constexpr std::uint16_t ping_timeout = 4000;     // the watchdog
} // namespace close_code

/** Close reasons; the contract fixes `ping timeout` and `rate limit` literally. */
namespace close_reason {
inline constexpr std::string_view ping_timeout = "ping timeout";
inline constexpr std::string_view rate_limit = "rate limit";
inline constexpr std::string_view binary = "binary frames are not supported";
inline constexpr std::string_view slow_consumer = "slow consumer";
inline constexpr std::string_view too_many_errors = "too many errors";
inline constexpr std::string_view going_away = "server shutting down";
} // namespace close_reason

/** At most this many client messages in any one-second window; one more closes with 1008. */
inline constexpr std::size_t rate_limit_messages = 50;

/** Where a broadcast stands in the sequence of broadcasts (protocol.md section 13): `offset` grows by exactly
 * 1 per broadcast within one `epoch`, the name of the sequence. Offset 0 is before the first broadcast. */
struct position {
    std::string epoch;
    std::uint64_t offset = 0;

    bool operator==(position const&) const = default;
};

/** A structurally valid client event. */
struct client_event {
    client_event_type type;
    std::string id;
    std::optional<position> since{}; // `subscribe` only: where the client stopped (lossless reconnect)
};

struct protocol_error {
    error_code code;
    std::string message; // human text for the `error` event
};

/** Checks shape and type (bad_message, unknown_type): what can be known from the text alone. A `subscribe`'s
 * `since`, when present, must be an object with a string `epoch` and a non-negative integer `offset`. */
std::variant<client_event, protocol_error> parse_client_event(std::string_view text);

/** Checks identity and state (id_mismatch, not_connected) for an event that parsed. */
std::optional<protocol_error> check_client_event(client_event const& event, std::string_view own_id,
                                                 bool connected);

// Frame builders: compact JSON text of one server event each.
/** `{"id": ..., "epoch": ..., "offset": N}`: the connection's id and the latest broadcast's position. */
std::string make_initial(std::string_view id, position const& latest);
/** `{"status": "ok"}`: the reply to a `subscribe` without `since`. */
std::string make_subscribe_confirmation();
/** `{"status": "ok", "recovered": B, "epoch": ..., "offset": N}`: the reply to a `subscribe` with `since`;
 * `latest` is the latest broadcast's position. */
std::string make_subscribe_confirmation(bool recovered, position const& latest);
/** `{"message": ..., "offset": N}`; with `tick`, the cluster's tick number as the extension field
 * `"tick": N`. */
std::string make_wisdom_distribution(std::string_view message, std::uint64_t offset,
                                     std::optional<std::uint64_t> tick = {});
std::string make_error(protocol_error const& error);

} // namespace wolf::protocol
