#define BOOST_TEST_MODULE protocol
#include "protocol.hpp"

#include <boost/json.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <string>

using namespace wolf::protocol;
namespace json = boost::json;
namespace data = boost::unit_test::data;

namespace {

constexpr std::string_view own_id = "6f1c2b9e-3a4d-4e5f-8a7b-1c2d3e4f5a6b";

std::string event_text(std::string_view type, std::string_view id = own_id) {
    return json::serialize(json::object{{"type", type}, {"payload", {{"id", id}}}});
}

/** The error code parse_client_event answers with, or nullopt if it parsed. */
std::optional<error_code> parse_error_of(std::string_view text) {
    auto const result = parse_client_event(text);
    if (auto const* error = std::get_if<protocol_error>(&result)) return error->code;
    return std::nullopt;
}

json::object parse_object(std::string const& text) {
    return json::parse(text).as_object();
}

} // namespace

BOOST_AUTO_TEST_SUITE(parsing)

// The compact form browsers send is read without a JSON parse; every other spelling of the same event
// parses alike, and nothing the full parser rejects is accepted.
BOOST_AUTO_TEST_CASE(the_compact_form_and_every_other_spelling_of_an_event_parse_alike) {
    std::string const id(own_id);
    for (std::string const& text :
         {R"({"type":"ping","payload":{"id":")" + id + R"("}})",
          R"({ "type" : "ping" , "payload" : { "id" : ")" + id + R"(" } })",
          R"({"type":"ping","payload":{"id":")" + id.substr(0, 4) + R"(\u0032)" + id.substr(5) +
              R"("}})", // id[4] is '2'
          R"({"payload":{"id":")" + id + R"("},"type":"ping"})",
          R"({"type":"ping","payload":{"id":")" + id + R"(","extra":1},"more":[]})"}) {
        auto const result = parse_client_event(text);
        auto const* event = std::get_if<client_event>(&result);
        BOOST_REQUIRE_MESSAGE(event, text);
        BOOST_TEST((event->type == client_event_type::ping), text);
        BOOST_TEST(event->id == id, text);
    }
    BOOST_TEST((parse_error_of(R"({"type":"PING","payload":{"id":"x"}})") == error_code::unknown_type));
    BOOST_TEST((parse_error_of(R"({"type":"}})") == error_code::bad_message),
               "the compact form's ends overlap");
    BOOST_TEST((parse_error_of(R"({"type":"ping","payload":{"id":"a"b"}})") == error_code::bad_message));
    BOOST_TEST((parse_error_of(R"({"type":"ping","payload":{"id":"x"}}})") == error_code::bad_message));
    BOOST_TEST(
        (parse_error_of("{\"type\":\"ping\",\"payload\":{\"id\":\"a\x01b\"}}") == error_code::bad_message),
        "a raw control character is not JSON");
    auto const escaped = parse_client_event(R"({"type":"ping","payload":{"id":"a\"b"}})");
    BOOST_REQUIRE(std::holds_alternative<client_event>(escaped));
    BOOST_TEST(std::get<client_event>(escaped).id == "a\"b", "an escape is decoded, as JSON says");
}

BOOST_AUTO_TEST_CASE(every_client_event_type_parses_with_its_id) {
    for (auto type :
         {client_event_type::connect, client_event_type::subscribe, client_event_type::unsubscribe,
          client_event_type::ping, client_event_type::disconnect}) {
        auto const result = parse_client_event(event_text(to_string(type)));
        auto const* event = std::get_if<client_event>(&result);
        BOOST_REQUIRE(event);
        BOOST_TEST(static_cast<int>(event->type) == static_cast<int>(type));
        BOOST_TEST(event->id == own_id);
    }
}

// Each of these breaks the envelope: not JSON, not an object, type not a string, payload not an object,
// payload.id missing or not a string.
static char const* const malformed[] = {
    "",
    "not json",
    "{\"type\":\"ping\",\"payload\":{\"id\":\"x\"}",
    "[]",
    "\"ping\"",
    "42",
    "null",
    "{}",
    "{\"payload\":{\"id\":\"x\"}}",
    "{\"type\":1,\"payload\":{\"id\":\"x\"}}",
    "{\"type\":null,\"payload\":{\"id\":\"x\"}}",
    "{\"type\":[\"ping\"],\"payload\":{\"id\":\"x\"}}",
    "{\"type\":\"ping\"}",
    "{\"type\":\"ping\",\"payload\":null}",
    "{\"type\":\"ping\",\"payload\":\"x\"}",
    "{\"type\":\"ping\",\"payload\":[\"x\"]}",
    "{\"type\":\"ping\",\"payload\":{}}",
    "{\"type\":\"ping\",\"payload\":{\"id\":null}}",
    "{\"type\":\"ping\",\"payload\":{\"id\":7}}",
    "{\"type\":\"ping\",\"payload\":{\"id\":{\"v\":\"x\"}}}",
    "{\"type\":\"nope\",\"payload\":{}}", // bad_message wins over unknown_type
    "{\"type\":\"ping\",\"payload\":{\"id\":\"x\"}} trailing",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
};

BOOST_DATA_TEST_CASE(malformed_envelopes_are_bad_message, data::make(malformed), text) {
    auto const code = parse_error_of(text);
    BOOST_REQUIRE(code.has_value());
    BOOST_TEST(to_string(*code) == "bad_message");
}

BOOST_AUTO_TEST_CASE(unknown_and_wrongly_cased_types_are_unknown_type) {
    for (auto type :
         {"SUBSCRIBE", "Subscribe", "subscribe ", "", "initial", "wisdom_distribution", "barrier"}) {
        auto const code = parse_error_of(event_text(type));
        BOOST_REQUIRE(code.has_value());
        BOOST_TEST(to_string(*code) == "unknown_type", "type '" << type << "'");
    }
}

BOOST_AUTO_TEST_CASE(extra_fields_are_ignored) {
    auto const result = parse_client_event(
        R"({"type":"subscribe","extra":[1,2],"payload":{"id":"abc","more":{"x":true}},"z":null})");
    auto const* event = std::get_if<client_event>(&result);
    BOOST_REQUIRE(event);
    BOOST_TEST(event->id == "abc");
}

BOOST_AUTO_TEST_CASE(unknown_type_echo_is_cut_on_a_character_boundary) {
    std::string type(63, 'a');
    type += "\xD0\x96tail"; // a two-byte character straddling the 64-byte cut
    auto const result = parse_client_event(event_text(type));
    auto const* error = std::get_if<protocol_error>(&result);
    BOOST_REQUIRE(error);
    BOOST_TEST(error->message.find("\xD0") == std::string::npos);
    BOOST_TEST(error->message.find(std::string(63, 'a')) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(unknown_type_echo_is_escaped_so_it_stays_one_line) {
    // Found by reading the fuzzer's output: the decoded type once reached the debug log raw.
    auto const result =
        parse_client_event(R"({"type":"howl\n2026-01-01 info  forged\"","payload":{"id":"x"}})");
    auto const* error = std::get_if<protocol_error>(&result);
    BOOST_REQUIRE(error);
    BOOST_TEST(error->message == R"(unknown event type "howl\n2026-01-01 info  forged\"")");
}

BOOST_AUTO_TEST_CASE(a_subscribe_carries_since_and_other_events_ignore_it) {
    auto const text = R"({"type":"subscribe","payload":{"id":"x","since":{"epoch":"5f3a","offset":41}}})";
    auto const result = parse_client_event(text);
    auto const* event = std::get_if<client_event>(&result);
    BOOST_REQUIRE(event);
    BOOST_REQUIRE(event->since.has_value());
    BOOST_TEST(event->since->epoch == "5f3a");
    BOOST_TEST(event->since->offset == 41u);
    auto const zero =
        parse_client_event(R"({"type":"subscribe","payload":{"id":"x","since":{"epoch":"","offset":0}}})");
    BOOST_TEST(std::get<client_event>(zero).since->offset == 0u);
    auto const plain = parse_client_event(R"({"type":"subscribe","payload":{"id":"x"}})");
    BOOST_TEST(!std::get<client_event>(plain).since.has_value());
    auto const ping = parse_client_event(R"({"type":"ping","payload":{"id":"x","since":"anything"}})");
    BOOST_TEST(!std::get<client_event>(ping).since.has_value(), "an unknown extra field elsewhere");
}

static char const* const malformed_since[] = {
    R"("since":null)",
    R"("since":41)",
    R"("since":"41")",
    R"("since":[])",
    R"("since":{})",
    R"("since":{"epoch":"e"})",
    R"("since":{"offset":1})",
    R"("since":{"epoch":7,"offset":1})",
    R"("since":{"epoch":"e","offset":-1})",
    R"("since":{"epoch":"e","offset":1.5})",
    R"("since":{"epoch":"e","offset":"1"})",
    R"("since":{"epoch":"e","offset":18446744073709551616})",
};

BOOST_DATA_TEST_CASE(a_malformed_since_is_bad_message, data::make(malformed_since), since) {
    std::string const text = std::string(R"({"type":"subscribe","payload":{"id":"x",)") + since + "}}";
    BOOST_REQUIRE(json::parse(text).is_object()); // well-formed JSON: only the since is wrong
    BOOST_TEST((parse_error_of(text) == error_code::bad_message), text);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(checking)

BOOST_AUTO_TEST_CASE(another_connections_id_is_id_mismatch) {
    client_event const event{client_event_type::ping, "someone-else"};
    auto const error = check_client_event(event, own_id, true);
    BOOST_REQUIRE(error.has_value());
    BOOST_TEST(to_string(error->code) == "id_mismatch");
}

BOOST_AUTO_TEST_CASE(subscribe_or_unsubscribe_before_connect_is_not_connected) {
    for (auto type : {client_event_type::subscribe, client_event_type::unsubscribe}) {
        auto const error = check_client_event({type, std::string(own_id)}, own_id, false);
        BOOST_REQUIRE(error.has_value());
        BOOST_TEST(to_string(error->code) == "not_connected");
    }
}

BOOST_AUTO_TEST_CASE(connect_ping_and_disconnect_need_no_connect) {
    for (auto type : {client_event_type::connect, client_event_type::ping, client_event_type::disconnect})
        BOOST_TEST(!check_client_event({type, std::string(own_id)}, own_id, false).has_value());
}

BOOST_AUTO_TEST_CASE(id_mismatch_is_checked_before_not_connected) {
    auto const error = check_client_event({client_event_type::subscribe, "someone-else"}, own_id, false);
    BOOST_REQUIRE(error.has_value());
    BOOST_TEST(to_string(error->code) == "id_mismatch");
}

BOOST_AUTO_TEST_CASE(a_connected_clients_own_events_pass) {
    for (auto type : {client_event_type::connect, client_event_type::subscribe,
                      client_event_type::unsubscribe, client_event_type::ping, client_event_type::disconnect})
        BOOST_TEST(!check_client_event({type, std::string(own_id)}, own_id, true).has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(frames)

BOOST_AUTO_TEST_CASE(server_events_have_the_contract_shape) {
    auto const initial = parse_object(make_initial(own_id, {"5f3a", 7}));
    BOOST_TEST(initial.at("type").as_string() == event::initial);
    BOOST_TEST(initial.at("payload").at("id").as_string() == own_id);
    BOOST_TEST(initial.at("payload").at("epoch").as_string() == "5f3a");
    BOOST_TEST(initial.at("payload").at("offset").to_number<int>() == 7);

    auto const confirmation = parse_object(make_subscribe_confirmation());
    BOOST_TEST(confirmation.at("type").as_string() == event::subscribe_confirmation);
    BOOST_TEST(confirmation.at("payload").at("status").as_string() == "ok");
    auto const recovery = parse_object(make_subscribe_confirmation(false, {"5f3a", 9}));
    BOOST_TEST(recovery.at("type").as_string() == event::subscribe_confirmation);
    BOOST_TEST(recovery.at("payload").at("status").as_string() == "ok");
    BOOST_TEST(recovery.at("payload").at("recovered").as_bool() == false);
    BOOST_TEST(recovery.at("payload").at("epoch").as_string() == "5f3a");
    BOOST_TEST(recovery.at("payload").at("offset").to_number<int>() == 9);

    auto const wisdom = parse_object(make_wisdom_distribution("Волк \"в\" цирке\n", 3));
    BOOST_TEST(wisdom.at("type").as_string() == event::wisdom_distribution);
    BOOST_TEST(wisdom.at("payload").at("message").as_string() == "Волк \"в\" цирке\n");
    BOOST_TEST(wisdom.at("payload").at("offset").to_number<int>() == 3);

    auto const error = parse_object(make_error({error_code::not_connected, "send connect first"}));
    BOOST_TEST(error.at("type").as_string() == event::error);
    BOOST_TEST(error.at("payload").at("code").as_string() == "not_connected");
    BOOST_TEST(error.at("payload").at("message").as_string() == "send connect first");
}

BOOST_AUTO_TEST_CASE(frames_are_compact_json) {
    BOOST_TEST(make_subscribe_confirmation() ==
               R"({"type":"subscribe_confirmation","payload":{"status":"ok"}})");
    BOOST_TEST(make_initial("abc", {"e", 0}) ==
               R"({"type":"initial","payload":{"id":"abc","epoch":"e","offset":0}})");
    BOOST_TEST(
        make_subscribe_confirmation(true, {"e", 12}) ==
        R"({"type":"subscribe_confirmation","payload":{"status":"ok","recovered":true,"epoch":"e","offset":12}})");
}

BOOST_AUTO_TEST_CASE(a_cluster_tick_adds_the_tick_extension_field) {
    BOOST_TEST(make_wisdom_distribution("Howl.", 5) ==
               R"({"type":"wisdom_distribution","payload":{"message":"Howl.","offset":5}})");
    BOOST_TEST(make_wisdom_distribution("Howl.", 5, 42) ==
               R"({"type":"wisdom_distribution","payload":{"message":"Howl.","offset":5,"tick":42}})");
}

BOOST_AUTO_TEST_CASE(names_and_codes_are_the_contracts) {
    BOOST_TEST(to_string(error_code::bad_message) == "bad_message");
    BOOST_TEST(to_string(error_code::unknown_type) == "unknown_type");
    BOOST_TEST(to_string(error_code::id_mismatch) == "id_mismatch");
    BOOST_TEST(to_string(error_code::not_connected) == "not_connected");
    BOOST_TEST(close_code::ping_timeout == 4000);
    BOOST_TEST(close_reason::ping_timeout == "ping timeout");
    BOOST_TEST(close_reason::rate_limit == "rate limit");
}

BOOST_AUTO_TEST_SUITE_END()
