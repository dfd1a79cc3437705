// libFuzzer target over the client message parser and validator (protocol::parse_client_event,
// protocol::check_client_event) and the frames answered to it. Any invariant that fails aborts, so
// libFuzzer keeps the input as a crash artifact.

#include "protocol.hpp"

#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

namespace {

namespace json = boost::json;
namespace protocol = wolf::protocol;

void require(bool condition, char const* what) {
    if (condition) return;
    std::fprintf(stderr, "fuzz_protocol: invariant failed: %s\n", what);
    std::abort();
}

/** The frame as JSON; aborts unless it is valid JSON, and valid UTF-8 (a WebSocket text frame must be). */
json::object parse_frame(std::string const& frame) {
    json::error_code ec;
    auto value = json::parse(frame, ec);
    require(!ec, "a frame builder produced invalid JSON");
    require(value.is_object(), "a frame is not a JSON object");
    return std::move(value.as_object());
}

/** {"type": type, "payload": {...}}: returns the payload. */
json::object payload_of(std::string const& frame, std::string_view type) {
    auto object = parse_frame(frame);
    require(object.size() == 2, "a frame has other members than type and payload");
    require(object.at("type").is_string() && object.at("type").as_string() == type, "a frame's type");
    require(object.at("payload").is_object(), "a frame's payload is not an object");
    return std::move(object.at("payload").as_object());
}

void check_error_frame(protocol::protocol_error const& error) {
    require(static_cast<std::size_t>(error.code) < protocol::error_code_count, "error code out of range");
    require(!error.message.empty(), "an error without a message");
    auto const payload = payload_of(protocol::make_error(error), protocol::event::error);
    require(payload.at("code").as_string() == protocol::to_string(error.code), "error frame: code");
    require(payload.at("message").as_string() == error.message, "error frame: message");
}

bool is_client_event_name(std::string_view name) {
    return name == protocol::event::connect || name == protocol::event::subscribe ||
           name == protocol::event::unsubscribe || name == protocol::event::ping ||
           name == protocol::event::disconnect;
}

bool needs_connect(protocol::client_event_type type) {
    return type == protocol::client_event_type::subscribe || type == protocol::client_event_type::unsubscribe;
}

/** The identity and state checks, against a fixed id and against the event's own id. */
void check_event(protocol::client_event const& event) {
    constexpr std::string_view own_id = "3f2b8c1e-0000-4000-8000-000000000000";
    for (bool const connected : {false, true}) {
        auto const foreign = protocol::check_client_event(event, own_id, connected);
        if (event.id != own_id) {
            require(foreign && foreign->code == protocol::error_code::id_mismatch,
                    "a foreign id is accepted");
            check_error_frame(*foreign);
        }
        auto const own = protocol::check_client_event(event, event.id, connected);
        if (!connected && needs_connect(event.type)) {
            require(own && own->code == protocol::error_code::not_connected, "subscribe before connect");
            check_error_frame(*own);
        } else {
            require(!own, "a valid event in a valid state is refused");
        }
    }
    // The id comes back in `initial` verbatim, whatever its bytes; so does an epoch in a confirmation.
    auto const initial = payload_of(protocol::make_initial(event.id, {"e", 1}), protocol::event::initial);
    require(initial.at("id").as_string() == event.id, "initial frame: id");
    if (event.since) {
        auto const confirmation = payload_of(protocol::make_subscribe_confirmation(true, *event.since),
                                             protocol::event::subscribe_confirmation);
        require(confirmation.at("epoch").as_string() == event.since->epoch, "confirmation frame: epoch");
        require(confirmation.at("offset").to_number<std::uint64_t>() == event.since->offset,
                "confirmation frame: offset");
    }
}

/**
 * A second, independent parse (heap allocated, same depth limit) must agree with the parser's result:
 * an event's type and id are the message's, an unknown type is echoed as a prefix of the real one.
 */
void check_against_plain_parse(std::string_view text,
                               std::variant<protocol::client_event, protocol::protocol_error> const& parsed) {
    json::parse_options options;
    options.max_depth = 16;
    json::error_code ec;
    auto const value = json::parse(text, ec, {}, options);
    if (auto const* event = std::get_if<protocol::client_event>(&parsed)) {
        require(!ec && value.is_object(), "an event was parsed from text that is not a JSON object");
        auto const& object = value.as_object();
        auto const type = std::string_view(object.at("type").as_string());
        require(is_client_event_name(type) && type == protocol::to_string(event->type), "event type");
        auto const& payload = object.at("payload").as_object();
        require(payload.at("id").as_string() == event->id, "event id");
        // `since` is read from a subscribe only, and then exactly as written.
        auto const* since = payload.if_contains("since");
        require(event->since.has_value() == (since && type == protocol::event::subscribe), "event since");
        if (event->since) {
            require(since->as_object().at("epoch").as_string() == event->since->epoch, "since epoch");
            require(since->as_object().at("offset").to_number<std::uint64_t>() == event->since->offset,
                    "since offset");
        }
        return;
    }
    auto const& error = std::get<protocol::protocol_error>(parsed);
    require(error.code == protocol::error_code::bad_message ||
                error.code == protocol::error_code::unknown_type,
            "the parser returned an error only the state check may return");
    if (error.code == protocol::error_code::unknown_type) {
        require(!ec && value.is_object(), "unknown_type for text that is not a JSON object");
        auto const type = std::string_view(value.as_object().at("type").as_string());
        require(!is_client_event_name(type), "a known type reported as unknown");
        std::string_view const prefix = "unknown event type ";
        std::string_view message = error.message;
        require(message.starts_with(prefix), "unknown_type message shape");
        // The type is echoed as a JSON string (escaped, so a log line stays one line).
        json::error_code quoted_ec;
        auto const quoted = json::parse(message.substr(prefix.size()), quoted_ec);
        require(!quoted_ec && quoted.is_string(), "unknown_type echoes the type as a JSON string");
        auto const shown = std::string_view(quoted.as_string());
        require(shown.size() <= 64 && type.starts_with(shown),
                "unknown_type echoes at most 64 bytes of type");
        require(message.find_first_of("\r\n") == std::string_view::npos, "an error message is one line");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view const text(reinterpret_cast<char const*>(data), size);
    auto const parsed = protocol::parse_client_event(text);
    check_against_plain_parse(text, parsed);
    if (auto const* event = std::get_if<protocol::client_event>(&parsed))
        check_event(*event);
    else
        check_error_frame(std::get<protocol::protocol_error>(parsed));
    return 0;
}
