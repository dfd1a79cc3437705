#include "protocol.hpp"

#include <array>
#include <boost/json.hpp>

namespace wolf::protocol {
namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, 5> client_event_names{
    event::connect, event::subscribe, event::unsubscribe, event::ping, event::disconnect};
constexpr std::array<std::string_view, error_code_count> error_code_names{"bad_message", "unknown_type",
                                                                          "id_mismatch", "not_connected"};

protocol_error bad_message(std::string message) {
    return {error_code::bad_message, std::move(message)};
}

/** `{"type": type, "payload": {...}}`, built on the stack: a server event is a few hundred bytes at most
 * beyond its message, and one goes out on every connection's open. */
std::string make_event(std::string_view type,
                       std::initializer_list<std::pair<json::string_view, json::value_ref>> payload) {
    unsigned char stack[1024];
    json::monotonic_resource resource(stack, sizeof stack);
    json::storage_ptr const storage(&resource);
    json::object event(storage);
    event.reserve(2);
    event.emplace("type", type);
    event.emplace("payload", json::object(payload, storage));
    return json::serialize(event);
}

} // namespace

std::string_view to_string(client_event_type type) noexcept {
    return client_event_names[static_cast<std::size_t>(type)];
}

std::string_view to_string(error_code code) noexcept {
    return error_code_names[static_cast<std::size_t>(code)];
}

namespace {

/**
 * The event if `text` is exactly the compact form clients send (`{"type":"ping","payload":{"id":"..."}}`,
 * as JSON.stringify writes it) with a type of section 3 and an id of plain printable ASCII; nullopt for
 * anything else. It decides nothing the full parse would decide differently: any other spelling, spacing or
 * escape goes through Boost.JSON. Every idle client sends one such ping every 5 s.
 */
std::optional<client_event> parse_compact_event(std::string_view text) {
    constexpr std::string_view type_prefix = R"({"type":")";
    constexpr std::string_view id_prefix = R"(","payload":{"id":")";
    constexpr std::string_view suffix = R"("}})";
    // The prefix and the suffix must not overlap (`{"type":"}}` has both).
    if (text.size() < type_prefix.size() + suffix.size() || !text.starts_with(type_prefix) ||
        !text.ends_with(suffix))
        return std::nullopt;
    text.remove_prefix(type_prefix.size());
    text.remove_suffix(suffix.size());
    auto const split = text.find(id_prefix);
    if (split == std::string_view::npos) return std::nullopt;
    auto const type = text.substr(0, split);
    auto const id = text.substr(split + id_prefix.size());
    for (char const c : id)
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return std::nullopt;
    for (std::size_t i = 0; i < client_event_names.size(); ++i)
        if (type == client_event_names[i])
            return client_event{static_cast<client_event_type>(i), std::string(id)};
    return std::nullopt;
}

/** A `since`: an object with a string `epoch` and a non-negative integer `offset`; nullopt otherwise. */
std::optional<position> read_position(json::value const& value) {
    auto const* object = value.if_object();
    if (!object) return std::nullopt;
    auto const* epoch = object->if_contains("epoch");
    auto const* offset = object->if_contains("offset");
    if (!epoch || !epoch->is_string() || !offset) return std::nullopt;
    position read{std::string(epoch->get_string()), 0};
    if (offset->is_uint64())
        read.offset = offset->get_uint64();
    else if (offset->is_int64() && offset->get_int64() >= 0)
        read.offset = static_cast<std::uint64_t>(offset->get_int64());
    else
        return std::nullopt;
    return read;
}

} // namespace

std::variant<client_event, protocol_error> parse_client_event(std::string_view text) {
    if (auto event = parse_compact_event(text)) return std::move(*event);
    // Client messages are small (bounded by --max-message-size): parse them on the stack.
    unsigned char stack[4096];
    json::monotonic_resource resource(stack, sizeof stack);
    json::parse_options options;
    options.max_depth = 16;
    json::error_code ec;
    auto const value = json::parse(text, ec, &resource, options);
    if (ec) return bad_message("message is not valid JSON");

    auto const* object = value.if_object();
    if (!object) return bad_message("message is not a JSON object");
    auto const* type = object->if_contains("type");
    if (!type || !type->is_string()) return bad_message("\"type\" must be a string");
    auto const* payload = object->if_contains("payload");
    if (!payload || !payload->is_object()) return bad_message("\"payload\" must be an object");
    auto const* id = payload->get_object().if_contains("id");
    if (!id || !id->is_string()) return bad_message("\"payload.id\" must be a string");

    auto const name = std::string_view(type->get_string());
    for (std::size_t i = 0; i < client_event_names.size(); ++i) {
        if (name != client_event_names[i]) continue;
        client_event parsed{static_cast<client_event_type>(i), std::string(id->get_string())};
        if (parsed.type == client_event_type::subscribe)
            if (auto const* since = payload->get_object().if_contains("since")) {
                auto read = read_position(*since);
                if (!read)
                    return bad_message(
                        R"("payload.since" must be {"epoch": string, "offset": integer >= 0})");
                parsed.since = std::move(*read);
            }
        return parsed;
    }

    // Echo at most 64 bytes of the client's type, cut on a UTF-8 character boundary.
    auto shown = name.substr(0, 64);
    if (shown.size() < name.size())
        while (!shown.empty() && (static_cast<unsigned char>(name[shown.size()]) & 0xC0) == 0x80)
            shown.remove_suffix(1);
    // Quoted and escaped as a JSON string, so control characters never reach a log line raw.
    return protocol_error{error_code::unknown_type, "unknown event type " + json::serialize(shown)};
}

std::optional<protocol_error> check_client_event(client_event const& event, std::string_view own_id,
                                                 bool connected) {
    if (event.id != own_id)
        return protocol_error{error_code::id_mismatch, "payload.id is not this connection's id"};
    if (!connected &&
        (event.type == client_event_type::subscribe || event.type == client_event_type::unsubscribe))
        return protocol_error{error_code::not_connected,
                              "send \"connect\" before \"" + std::string(to_string(event.type)) + "\""};
    return std::nullopt;
}

std::string make_initial(std::string_view id, position const& latest) {
    return make_event(event::initial, {{"id", id}, {"epoch", latest.epoch}, {"offset", latest.offset}});
}

std::string make_subscribe_confirmation() {
    return make_event(event::subscribe_confirmation, {{"status", "ok"}});
}

std::string make_subscribe_confirmation(bool recovered, position const& latest) {
    return make_event(
        event::subscribe_confirmation,
        {{"status", "ok"}, {"recovered", recovered}, {"epoch", latest.epoch}, {"offset", latest.offset}});
}

std::string make_wisdom_distribution(std::string_view message, std::uint64_t offset,
                                     std::optional<std::uint64_t> tick) {
    if (!tick) return make_event(event::wisdom_distribution, {{"message", message}, {"offset", offset}});
    return make_event(event::wisdom_distribution,
                      {{"message", message}, {"offset", offset}, {"tick", *tick}});
}

std::string make_error(protocol_error const& error) {
    return make_event(event::error, {{"code", to_string(error.code)}, {"message", error.message}});
}

} // namespace wolf::protocol
