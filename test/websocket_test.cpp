#define BOOST_TEST_MODULE websocket
#include "broadcaster.hpp"
#include "common/clients.hpp"
#include "common/process.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"
#include "support/cpu_affinity.hpp"

#include <algorithm>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <numeric>
#include <optional>
#include <set>
#include <sys/socket.h>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;
namespace close_code = wolf::protocol::close_code;

namespace {

/** `count` clients, each connected and subscribed. */
net::awaitable<std::vector<ws_client>> subscribed_clients(server& srv, int count) {
    std::vector<ws_client> clients;
    for (int i = 0; i < count; ++i) {
        clients.push_back(co_await ws_client::open(srv.port()));
        co_await clients.back().connect_and_subscribe();
    }
    co_return clients;
}

/** Shuts the server down while every client reads until its close; returns each client's close. */
net::awaitable<std::vector<close_info>> closes_during_shutdown(server& srv, std::vector<ws_client>& clients) {
    using namespace net::experimental::awaitable_operators;
    auto const read_all_closes = [&]() -> net::awaitable<std::vector<close_info>> {
        std::vector<close_info> closes;
        for (auto& client : clients)
            closes.push_back(co_await client.read_close());
        co_return closes;
    };
    auto const shut_down = [&]() -> net::awaitable<bool> {
        co_await srv.shutdown();
        co_return true;
    };
    auto const [closes, done] = co_await (read_all_closes() && shut_down());
    BOOST_TEST(done);
    co_return closes;
}

/**
 * A client frame written byte by byte, bypassing the client's WebSocket layer: `first` is FIN/RSV/opcode,
 * then the payload length in the shortest form (or `length` forced to the 64-bit form), the mask bit as
 * asked, a zero masking key (the payload goes out as is) and the payload.
 */
std::string raw_frame(std::uint8_t first, std::string_view payload, bool masked = true,
                      std::optional<std::uint64_t> length = std::nullopt) {
    std::string frame(1, static_cast<char>(first));
    auto const mask_bit = static_cast<std::uint8_t>(masked ? 0x80 : 0);
    auto const size = length.value_or(payload.size());
    if (!length && size < 126) {
        frame += static_cast<char>(mask_bit | size);
    } else if (!length && size < 65536) {
        frame += static_cast<char>(mask_bit | 126);
        frame += static_cast<char>(size >> 8);
        frame += static_cast<char>(size & 0xff);
    } else {
        frame += static_cast<char>(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            frame += static_cast<char>((size >> shift) & 0xff);
    }
    if (masked) frame.append(4, '\0');
    frame += payload;
    return frame;
}

/** Writes bytes under the client's WebSocket layer, as a broken or hostile client would. */
net::awaitable<void> send_raw(ws_client& client, std::string bytes) {
    auto [ec, n] =
        co_await net::async_write(beast::get_lowest_layer(client.stream()), net::buffer(bytes), use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, "raw write: " << ec.message());
}

std::string error_code_of(boost::json::object const& event) {
    return payload_string(event, "code");
}

/** Lowercase RFC 4122 version 4: xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx. */
bool is_uuid_v4(std::string const& id) {
    if (id.size() != 36) return false;
    for (std::size_t i = 0; i < id.size(); ++i) {
        bool const dash = i == 8 || i == 13 || i == 18 || i == 23;
        bool const hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
        if (dash ? id[i] != '-' : !hex) return false;
    }
    return id[14] == '4' && std::string_view("89ab").find(id[19]) != std::string_view::npos;
}

} // namespace

BOOST_AUTO_TEST_SUITE(lifecycle)

BOOST_AUTO_TEST_CASE(full_lifecycle_from_initial_to_close_1000) {
    auto cfg = fast_config();
    cfg.interval = 50ms; // real ticks
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        BOOST_TEST(is_uuid_v4(client.id()), client.id());
        BOOST_TEST(srv.connections().connections() == 1u);

        co_await client.send_event(event::connect);
        co_await client.connect_and_subscribe();
        BOOST_TEST(srv.connections().subscribers() == 1u);
        BOOST_TEST(srv.connections().ready() == 1u);

        auto const wisdom = co_await client.read_until(event::wisdom_distribution);
        auto const quotes = test_quotes();
        BOOST_TEST(
            (std::find(quotes.begin(), quotes.end(), payload_string(wisdom, "message")) != quotes.end()));

        co_await client.send_event(event::unsubscribe);
        co_await client.barrier();
        BOOST_TEST(srv.connections().subscribers() == 0u);

        co_await client.send_event(event::disconnect);
        auto const closed = co_await client.read_close();
        BOOST_TEST(closed.code == close_code::normal);
        BOOST_TEST(srv.connections().connections() == 0u);
    });
}

BOOST_AUTO_TEST_CASE(ids_are_unique_lowercase_uuid_v4_sent_only_to_their_connection) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        std::set<std::string> ids;
        for (int i = 0; i < 20; ++i) {
            auto client = co_await ws_client::open(srv.port());
            BOOST_TEST(is_uuid_v4(client.id()));
            BOOST_TEST(ids.insert(client.id()).second, "id reused: " << client.id());
        }
    });
}

// Pushes are small and must leave at once: every accepted connection has Nagle's algorithm off, which it
// inherits from its listener.
BOOST_AUTO_TEST_CASE(accepted_connections_send_without_delay) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        auto const client_port = beast::get_lowest_layer(client.stream()).socket().local_endpoint().port();
        // The server runs in this process: its end of the connection is one of our descriptors.
        int server_end = -1;
        for (auto const& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
            int const fd = std::stoi(entry.path().filename().string());
            sockaddr_in local{}, peer{};
            socklen_t size = sizeof local;
            if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) != 0 ||
                local.sin_family != AF_INET)
                continue;
            size = sizeof peer;
            if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &size) != 0) continue;
            if (ntohs(local.sin_port) == srv.port() && ntohs(peer.sin_port) == client_port) server_end = fd;
        }
        BOOST_TEST_REQUIRE(server_end >= 0, "the server's end of the connection is found");
        int nodelay = 0;
        socklen_t size = sizeof nodelay;
        BOOST_TEST_REQUIRE(::getsockopt(server_end, IPPROTO_TCP, TCP_NODELAY, &nodelay, &size) == 0);
        BOOST_TEST(nodelay == 1, "TCP_NODELAY on the server's end");
    });
}

BOOST_AUTO_TEST_CASE(the_bare_origin_upgrades_too) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port(), "/");
        co_await client.connect_and_subscribe();
    });
}

BOOST_AUTO_TEST_CASE(repeated_connect_is_harmless_and_repeated_subscribe_reconfirms) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        co_await client.send_event(event::connect);
        co_await client.send_event(event::connect);
        co_await client.send_event(event::subscribe);
        co_await client.send_event(event::subscribe);
        auto const frames = co_await client.barrier();
        BOOST_REQUIRE(frames.size() == 2u);
        for (auto const& frame : frames)
            BOOST_TEST(event_type(frame) == event::subscribe_confirmation);
        BOOST_TEST(srv.connections().ready() == 1u);
        BOOST_TEST(srv.connections().subscribers() == 1u);
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(broadcast)

BOOST_AUTO_TEST_CASE(one_hundred_subscribers_get_the_same_quote_in_the_same_tick) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto clients = co_await subscribed_clients(srv, 100);
        BOOST_TEST(srv.connections().subscribers() == 100u);
        auto const ticks_before = srv.stats().broadcast_ticks_total.load();
        co_await publish(srv, "The same moon for every wolf.");
        for (auto& client : clients) {
            auto const wisdom = co_await client.read_event();
            BOOST_TEST(event_type(wisdom) == event::wisdom_distribution);
            BOOST_TEST(payload_string(wisdom, "message") == "The same moon for every wolf.");
        }
        BOOST_TEST(srv.stats().broadcast_ticks_total == ticks_before + 1);
        BOOST_TEST(srv.stats().wisdom_sent_total >= 100u);
    });
}

BOOST_AUTO_TEST_CASE(ticks_deliver_the_same_sequence_to_every_subscriber) {
    auto cfg = fast_config();
    cfg.interval = 30ms;
    std::vector<std::string> quotes;
    for (int i = 0; i < 1000; ++i)
        quotes.push_back("quote #" + std::to_string(i)); // none repeats in this test
    run_with_server(cfg, quotes, [](server& srv) -> net::awaitable<void> {
        auto early = co_await ws_client::open(srv.port());
        auto late = co_await ws_client::open(srv.port());
        co_await early.connect_and_subscribe();
        co_await late.connect_and_subscribe();
        // Every tick `late` receives, `early` (subscribed before it) receives too: align on late's first.
        auto const first = payload_string(co_await late.read_until(event::wisdom_distribution), "message");
        std::string seen;
        while (seen != first)
            seen = payload_string(co_await early.read_until(event::wisdom_distribution), "message");
        for (int i = 0; i < 6; ++i) {
            auto const from_early =
                payload_string(co_await early.read_until(event::wisdom_distribution), "message");
            auto const from_late =
                payload_string(co_await late.read_until(event::wisdom_distribution), "message");
            BOOST_TEST(from_early == from_late);
        }
    });
}

BOOST_AUTO_TEST_CASE(unsubscribe_stops_delivery_while_others_keep_receiving) {
    auto cfg = fast_config();
    cfg.interval = 20ms;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto leaving = co_await ws_client::open(srv.port());
        auto staying = co_await ws_client::open(srv.port());
        co_await leaving.connect_and_subscribe();
        co_await staying.connect_and_subscribe();
        co_await leaving.read_until(event::wisdom_distribution);

        co_await leaving.send_event(event::unsubscribe);
        co_await leaving.barrier(); // the server has applied the unsubscribe
        for (int i = 0; i < 5; ++i)
            co_await staying.read_until(event::wisdom_distribution);
        // Five ticks were fanned out after the unsubscribe; none of them was queued for `leaving`.
        for (auto const& frame : co_await leaving.barrier())
            BOOST_TEST(event_type(frame) != event::wisdom_distribution);
    });
}

BOOST_AUTO_TEST_CASE(connected_but_unsubscribed_clients_get_nothing) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto idle = co_await ws_client::open(srv.port());
        co_await idle.send_event(event::connect);
        auto subscriber = co_await ws_client::open(srv.port());
        co_await subscriber.connect_and_subscribe();
        co_await publish(srv, "only for subscribers");
        co_await subscriber.read_until(event::wisdom_distribution);
        BOOST_TEST((co_await idle.barrier()).empty());
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(errors)

BOOST_AUTO_TEST_CASE(each_error_code_is_answered_and_the_connection_stays_open) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());

        co_await client.send_text("not json");
        BOOST_TEST(error_code_of(co_await client.read_event()) == "bad_message");
        co_await client.send_text(R"({"type":"subscribe","payload":{}})");
        BOOST_TEST(error_code_of(co_await client.read_event()) == "bad_message");
        co_await client.send_event("SUBSCRIBE");
        BOOST_TEST(error_code_of(co_await client.read_event()) == "unknown_type");
        co_await client.send_event(event::subscribe);
        BOOST_TEST(error_code_of(co_await client.read_event()) == "not_connected");
        co_await client.send_event(event::connect, "00000000-0000-4000-8000-000000000000");
        BOOST_TEST(error_code_of(co_await client.read_event()) == "id_mismatch");
        BOOST_TEST(!srv.connections().is_ready(*srv.connections().open_peers()[0]),
                   "a rejected connect is not applied");

        co_await client.connect_and_subscribe(); // still open and fully usable
        BOOST_TEST(srv.stats().errors_for(protocol::error_code::bad_message) == 2u);
        BOOST_TEST(srv.stats().errors_for(protocol::error_code::unknown_type) == 1u);
        BOOST_TEST(srv.stats().errors_for(protocol::error_code::not_connected) == 1u);
        BOOST_TEST(srv.stats().errors_for(protocol::error_code::id_mismatch) == 1u);
    });
}

BOOST_AUTO_TEST_CASE(id_mismatch_leaves_the_other_session_untouched) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto attacker = co_await ws_client::open(srv.port());
        auto victim = co_await ws_client::open(srv.port());
        co_await attacker.connect_and_subscribe();
        co_await victim.connect_and_subscribe();

        for (auto type : {event::unsubscribe, event::disconnect, event::subscribe, event::ping})
            co_await attacker.send_event(type, victim.id());
        for (int i = 0; i < 4; ++i)
            BOOST_TEST(error_code_of(co_await attacker.read_event()) == "id_mismatch");

        BOOST_TEST(srv.connections().subscribers() == 2u);
        co_await publish(srv, "still subscribed");
        BOOST_TEST(payload_string(co_await victim.read_event(), "message") == "still subscribed");
        BOOST_TEST(payload_string(co_await attacker.read_event(), "message") == "still subscribed");
        BOOST_TEST((co_await victim.barrier()).empty(), "the victim saw nothing of the attack");
    });
}

BOOST_AUTO_TEST_CASE(the_error_after_max_errors_closes_with_1008_and_nobody_else_notices) {
    auto cfg = fast_config();
    cfg.max_errors = 5;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        auto bystander = co_await ws_client::open(srv.port());
        co_await bystander.connect_and_subscribe();
        co_await client.connect_and_subscribe(); // applied events in between do not reset the count
        for (int i = 0; i < 5; ++i) {
            co_await client.send_text(i % 2 ? "not json" : R"({"type":"howl","payload":{}})");
            BOOST_TEST(event_type(co_await client.read_event()) == event::error, "error " << i + 1);
            co_await client.send_event(event::ping);
        }
        co_await client.send_text("not json");
        auto const closed = co_await client.read_close();
        BOOST_TEST(closed.code == close_code::policy_violation);
        BOOST_TEST(closed.reason == protocol::close_reason::too_many_errors);
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::error_limit) == 1u);
        BOOST_TEST(srv.stats().errors_for(protocol::error_code::bad_message) == 6u,
                   "the last one is counted too");

        co_await publish(srv, "still here");
        BOOST_TEST(payload_string(co_await bystander.read_event(), "message") == "still here");
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(slow_consumers)

BOOST_AUTO_TEST_CASE(a_client_that_sends_without_reading_its_replies_is_closed_as_a_slow_consumer) {
    auto cfg = fast_config();
    cfg.max_queue = 2;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto deaf = co_await ws_client::open(srv.port());
        co_await deaf.connect_and_subscribe();
        // Broadcasts it never reads fill its socket, then its queue: once one is dropped, two wait.
        std::string const large(64 * 1024, 'w');
        while (srv.stats().wisdom_dropped_total == 0)
            co_await publish(srv, large);
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::slow_consumer) == 0u);
        // Replies are never dropped: two more fit under twice --max-queue, the third closes it.
        for (int i = 0; i < 3; ++i)
            co_await deaf.send_event(event::subscribe);
        // It reads nothing, so no close frame can tell it: the server's counter does.
        BOOST_TEST(co_await eventually(
            [&] { return srv.stats().evictions_for(eviction_reason::slow_consumer) == 1u; }, 5s));
        BOOST_TEST(srv.connections().connections() == 0u, "its close has begun");
    });
}

BOOST_AUTO_TEST_CASE(a_subscriber_that_stops_reading_is_dropped_after_the_write_timeout) {
    auto cfg = fast_config();
    cfg.write_timeout = 1s;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto deaf = co_await ws_client::open(srv.port()); // subscribes, then never reads again
        auto reader = co_await ws_client::open(srv.port());
        co_await deaf.connect_and_subscribe();
        co_await reader.connect_and_subscribe();

        // 48 MiB: more than the loopback socket buffers of both ends can ever hold (tcp_rmem and
        // tcp_wmem maxima are 32 and 4 MiB by default), so the deaf connection's write stalls. The
        // reader takes each frame before the next is published: its writes never wait on it, even
        // when this thread (server and clients alike) runs slowly under valgrind.
        constexpr int messages = 48;
        std::string const big(1 << 20, 'w');
        beast::flat_buffer buffer;
        for (int i = 0; i < messages; ++i) {
            co_await publish(srv, big);
            auto [ec, size] = co_await reader.stream().async_read(buffer, use_nothrow);
            BOOST_REQUIRE_MESSAGE(!ec, "reader, frame " << i << ": " << ec.message());
            BOOST_TEST(size > big.size());
            buffer.consume(size);
        }

        bool const dropped = co_await eventually(
            [&] { return srv.stats().evictions_for(eviction_reason::write_timeout) == 1u; }, 10s);
        BOOST_TEST(dropped, "the stalled connection was dropped");
        BOOST_TEST(srv.connections().connections() == 1u);
        BOOST_TEST(srv.connections().subscribers() == 1u);
        co_await publish(srv, "after");
        BOOST_TEST(payload_string(co_await reader.read_event(), "message") == "after");
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(closing_errors)

BOOST_AUTO_TEST_CASE(a_binary_frame_closes_with_1003) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        client.stream().binary(true);
        co_await client.send_text("{}");
        BOOST_TEST((co_await client.read_close()).code == close_code::unsupported_data);
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::binary) == 1u);
    });
}

BOOST_AUTO_TEST_CASE(a_message_over_the_size_limit_closes_with_1009) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        co_await client.send_text(std::string(4097, 'x'));
        BOOST_TEST((co_await client.read_close()).code == close_code::too_big);
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::too_big) == 1u);
    });
}

BOOST_AUTO_TEST_CASE(a_message_at_the_size_limit_is_read) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        std::string text = R"({"type":"ping","payload":{"id":")" + client.id() + R"("},"pad":")";
        text += std::string(4096 - text.size() - 2, 'x') + "\"}";
        BOOST_REQUIRE(text.size() == 4096u);
        co_await client.send_text(text);
        co_await client.barrier(); // answered normally: still open
    });
}

BOOST_AUTO_TEST_CASE(fragments_adding_up_past_the_limit_close_with_1009) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        client.stream().auto_fragment(true);
        client.stream().write_buffer_bytes(512); // every fragment is far below the limit
        co_await client.send_text(std::string(6000, 'x'));
        BOOST_TEST((co_await client.read_close()).code == close_code::too_big);
    });
}

BOOST_AUTO_TEST_CASE(invalid_utf8_closes_with_1007) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        co_await client.send_text("{\"type\":\"ping\",\"payload\":{\"id\":\"\xC3\x28\"}}");
        BOOST_TEST((co_await client.read_close()).code == close_code::bad_payload);
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::bad_utf8) == 1u);
    });
}

BOOST_AUTO_TEST_CASE(more_than_50_messages_in_a_second_close_with_1008_rate_limit) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        for (int i = 0; i < 51; ++i)
            co_await client.send_event(event::ping);
        auto const closed = co_await client.read_close();
        BOOST_TEST(closed.code == close_code::policy_violation);
        BOOST_TEST(closed.reason == protocol::close_reason::rate_limit);
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::rate_limit) == 1u);
    });
}

BOOST_AUTO_TEST_CASE(fifty_messages_in_a_second_are_allowed) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        for (int i = 0; i < 49; ++i)
            co_await client.send_event(event::ping);
        co_await client.barrier(); // the 50th message is answered, not punished
        BOOST_TEST(srv.connections().connections() == 1u);
    });
}

BOOST_AUTO_TEST_CASE(invalid_messages_count_towards_the_rate_limit) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        for (int i = 0; i < 60; ++i)
            co_await client.send_text("garbage");
        BOOST_TEST((co_await client.read_close()).code == close_code::policy_violation);
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(malformed_frames)

// Beast rejects each of these while reading; the server must answer with the right close code, keep
// everyone else served and take the connection out of its books.
void check_rejected_frame(std::string bytes, std::uint16_t expected_code) {
    run_with_server(fast_config(), [&](server& srv) -> net::awaitable<void> {
        auto bystander = co_await ws_client::open(srv.port());
        co_await bystander.connect_and_subscribe();
        auto client = co_await ws_client::open(srv.port());
        co_await client.connect_and_subscribe();

        co_await send_raw(client, bytes);
        BOOST_TEST((co_await client.read_close()).code == expected_code);
        BOOST_TEST(co_await eventually([&] { return srv.connections().live() == 1u; }, 5s),
                   "the session ended and left the registry");
        BOOST_TEST(srv.connections().subscribers() == 1u);
        co_await publish(srv, "unharmed");
        BOOST_TEST(payload_string(co_await bystander.read_event(), "message") == "unharmed");
    });
}

BOOST_AUTO_TEST_CASE(a_control_frame_over_125_bytes_closes_with_1002) {
    check_rejected_frame(raw_frame(0x89, std::string(126, 'p')), 1002); // ping, FIN
}

BOOST_AUTO_TEST_CASE(a_fragmented_control_frame_closes_with_1002) {
    check_rejected_frame(raw_frame(0x09, "ping"), 1002); // ping without FIN
}

BOOST_AUTO_TEST_CASE(an_unmasked_client_frame_closes_with_1002) {
    check_rejected_frame(raw_frame(0x81, R"({"type":"ping"})", false), 1002);
}

BOOST_AUTO_TEST_CASE(reserved_bits_without_an_extension_close_with_1002) {
    check_rejected_frame(raw_frame(0xC1, "{}"), 1002); // RSV1: no permessage-deflate was agreed
}

BOOST_AUTO_TEST_CASE(an_unknown_opcode_closes_with_1002) {
    check_rejected_frame(raw_frame(0x83, "{}"), 1002);
}

BOOST_AUTO_TEST_CASE(a_continuation_without_a_first_fragment_closes_with_1002) {
    check_rejected_frame(raw_frame(0x80, "{}"), 1002);
}

BOOST_AUTO_TEST_CASE(a_close_frame_with_a_one_byte_payload_closes_with_1002) {
    check_rejected_frame(raw_frame(0x88, "x"), 1002);
}

BOOST_AUTO_TEST_CASE(a_declared_length_of_2_to_the_62_closes_with_1009_before_any_payload) {
    check_rejected_frame(raw_frame(0x81, "", true, std::uint64_t{1} << 62), close_code::too_big);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(liveness)

BOOST_AUTO_TEST_CASE(a_silent_client_is_evicted_with_4000_while_a_pinging_one_survives) {
    auto cfg = fast_config();
    cfg.ping_timeout = 300ms;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto silent = co_await ws_client::open(srv.port());
        auto pinging = co_await ws_client::open(srv.port());
        co_await silent.send_event(event::connect);
        co_await pinging.connect_and_subscribe();

        using namespace net::experimental::awaitable_operators;
        auto const keep_pinging = [&]() -> net::awaitable<void> {
            for (int i = 0; i < 12; ++i) { // 1.2 s, four timeouts
                co_await pinging.send_event(event::ping);
                co_await pause(100ms);
            }
        };
        auto const closed = co_await (silent.read_close() && keep_pinging());
        BOOST_TEST(closed.code == close_code::ping_timeout);
        BOOST_TEST(closed.reason == protocol::close_reason::ping_timeout);
        BOOST_TEST(srv.connections().connections() == 1u);
        co_await pinging.send_event(event::subscribe);
        co_await pinging.read_until(event::subscribe_confirmation);
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::ping_timeout) == 1u);
    });
}

// Between messages a connection has no reader (the quiet reader): a close must still end it, whether or not
// the client answers.
BOOST_AUTO_TEST_CASE(a_quiet_client_that_never_answers_the_close_is_dropped_after_the_handshake_timeout) {
    auto cfg = fast_config();
    cfg.ping_timeout = 300ms;
    cfg.handshake_timeout = 500ms;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto mute = co_await ws_client::open(srv.port());
        co_await mute.connect_and_subscribe(); // then neither reads nor writes: no ping, no close answer
        auto const started = std::chrono::steady_clock::now();
        BOOST_TEST(co_await eventually([&] { return srv.pools().live() == 0u; }, 3s),
                   "evicted (4000) after 300 ms, then dropped 500 ms later for not answering");
        BOOST_TEST((std::chrono::steady_clock::now() - started >= 500ms));
        BOOST_TEST(srv.stats().evictions_for(eviction_reason::ping_timeout) == 1u);
    });
}

BOOST_AUTO_TEST_CASE(a_quiet_client_speaks_again_and_is_served) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        co_await client.connect_and_subscribe();
        for (int i = 0; i < 3; ++i) { // each time the reader has ended, and the read-ahead starts another
            co_await pause(50ms);
            co_await client.send_event(event::subscribe);
            co_await client.read_until(event::subscribe_confirmation);
        }
        co_await publish(srv, "Still listening.");
        BOOST_TEST(payload_string(co_await client.read_until(event::wisdom_distribution), "message") ==
                   "Still listening.");
        co_await client.send_event(event::disconnect);
        auto const closed = co_await client.read_close();
        BOOST_TEST(closed.code == close_code::normal);
    });
}

BOOST_AUTO_TEST_CASE(a_client_that_never_sends_connect_is_evicted_too) {
    auto cfg = fast_config();
    cfg.ping_timeout = 200ms;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        BOOST_TEST((co_await client.read_close()).code == close_code::ping_timeout);
    });
}

BOOST_AUTO_TEST_CASE(rejected_events_do_not_count_as_liveness) {
    auto cfg = fast_config();
    cfg.ping_timeout = 300ms;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto client = co_await ws_client::open(srv.port());
        using namespace net::experimental::awaitable_operators;
        auto const send_garbage = [&]() -> net::awaitable<void> {
            for (int i = 0; i < 10; ++i) {
                if (!co_await client.try_send_event(event::ping, "not-my-id")) co_return; // evicted
                co_await pause(100ms);
            }
        };
        auto const closed = co_await (client.read_close() && send_garbage());
        BOOST_TEST(closed.code == close_code::ping_timeout);
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(capacity)

BOOST_AUTO_TEST_CASE(upgrades_past_max_connections_get_503_and_nobody_is_disturbed) {
    auto cfg = fast_config();
    cfg.max_connections = 2;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto a = co_await ws_client::open(srv.port());
        auto b = co_await ws_client::open(srv.port());
        co_await a.connect_and_subscribe();
        co_await b.connect_and_subscribe();
        BOOST_TEST(co_await ws_client::try_handshake(srv.port()) == 503u);

        co_await publish(srv, "still here");
        BOOST_TEST(payload_string(co_await a.read_event(), "message") == "still here");
        BOOST_TEST(payload_string(co_await b.read_event(), "message") == "still here");

        co_await b.send_event(event::disconnect);
        co_await b.read_close();
        auto c = co_await ws_client::open(srv.port()); // the freed slot is usable again
        co_await c.connect_and_subscribe();
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(graceful_shutdown)

BOOST_AUTO_TEST_CASE(shutdown_sends_1001_to_everyone_and_refuses_new_connections) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto clients = co_await subscribed_clients(srv, 5);
        auto const port = srv.port();
        for (auto const& closed : co_await closes_during_shutdown(srv, clients))
            BOOST_TEST(closed.code == close_code::going_away);
        BOOST_TEST(srv.connections().live() == 0u);

        beast::tcp_stream probe(co_await net::this_coro::executor);
        auto [ec] = co_await probe.async_connect({net::ip::make_address("127.0.0.1"), port}, use_nothrow);
        BOOST_TEST((ec == net::error::connection_refused), ec.message());
    });
}

BOOST_AUTO_TEST_CASE(shutdown_drops_peers_that_never_answer_the_close_after_the_grace) {
    auto cfg = fast_config();
    cfg.shutdown_grace = 300ms;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto deaf = co_await ws_client::open(srv.port()); // never reads, so never answers the close
        co_await srv.shutdown();
        BOOST_TEST(srv.connections().connections() == 0u);
        // The server dropped it: reading now sees at most the close frame, then the end of the connection.
        beast::flat_buffer buffer;
        auto [ec, n] = co_await deaf.stream().async_read(buffer, use_nothrow);
        BOOST_TEST(ec.failed(), "the connection is gone");
        if (ec == websocket::error::closed) BOOST_TEST(deaf.stream().reason().code == close_code::going_away);
    });
}

BOOST_AUTO_TEST_SUITE_END()

// --threads: every thread accepts its own connections (a listener each, SO_REUSEPORT); the broadcast, the
// pool counts, the connection limit and the shutdown span them all.
BOOST_AUTO_TEST_SUITE(threads)

BOOST_AUTO_TEST_CASE(every_thread_accepts_connections_and_every_subscriber_gets_the_same_quote) {
    auto cfg = fast_config();
    cfg.threads = 3;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        BOOST_TEST(srv.threads() == 3u);
        // The kernel picks a listener by a hash of the client's port: new clients until every thread has one
        // (each misses a given thread with probability 2/3, so 100 leave one empty about once in 10^17).
        std::vector<ws_client> clients;
        auto per_thread = co_await srv.connections_per_thread();
        while (std::ranges::count(per_thread, 0u) > 0 && clients.size() < 100) {
            clients.push_back(co_await ws_client::open(srv.port()));
            co_await clients.back().connect_and_subscribe();
            per_thread = co_await srv.connections_per_thread();
        }
        BOOST_TEST(std::ranges::count(per_thread, 0u) == 0, "every thread accepted a connection");
        auto const count = clients.size();
        BOOST_TEST(std::accumulate(per_thread.begin(), per_thread.end(), std::size_t{0}) == count);
        BOOST_TEST(srv.pools().connections() == count);
        BOOST_TEST(srv.pools().subscribers() == count);
        BOOST_TEST(srv.pools().ready() == count);

        co_await publish(srv, "One howl, three threads.");
        for (auto& client : clients) {
            auto const wisdom = co_await client.read_until(event::wisdom_distribution);
            BOOST_TEST(payload_string(wisdom, "message") == "One howl, three threads.");
        }
        // Counted once every thread has reported its share, which can be after a client on another thread
        // has read the frame.
        BOOST_TEST(co_await eventually([&] { return srv.stats().broadcast_ticks_total == 1u; }, 5s));
        BOOST_TEST(srv.stats().wisdom_sent_total == count, "one tick, counted once per subscriber");

        auto const health = co_await http_request(srv.port(), http::verb::get, "/healthz");
        BOOST_TEST(health.body() == R"({"status":"ok","connections":)" + std::to_string(count) +
                                        R"(,"subscribers":)" + std::to_string(count) +
                                        R"(,"broker":"memory","broker_connected":true,"leader":true})");

        for (auto& client : clients)
            co_await client.close();
        BOOST_TEST(co_await eventually([&] { return srv.pools().live() == 0u; }, 5s));
        BOOST_TEST(srv.pools().connections() == 0u);
        BOOST_TEST(srv.pools().subscribers() == 0u);
    });
}

BOOST_AUTO_TEST_CASE(max_connections_counts_every_thread) {
    auto cfg = fast_config();
    cfg.threads = 2;
    cfg.max_connections = 3;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        std::vector<ws_client> clients;
        for (int i = 0; i < 3; ++i)
            clients.push_back(co_await ws_client::open(srv.port()));
        BOOST_TEST(co_await ws_client::try_handshake(srv.port()) == 503u);
        BOOST_TEST(co_await ws_client::try_handshake(srv.port()) == 503u, "on the other thread too");
        co_await clients.front().close();
        BOOST_TEST(co_await eventually([&] { return srv.pools().admitted() == 2u; }, 5s));
        clients.push_back(co_await ws_client::open(srv.port()));
        BOOST_TEST(srv.pools().connections() == 3u);
    });
}

BOOST_AUTO_TEST_CASE(shutdown_closes_every_thread_s_connections_with_1001) {
    auto cfg = fast_config();
    cfg.threads = 2;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        auto clients = co_await subscribed_clients(srv, 4);
        for (auto const& closed : co_await closes_during_shutdown(srv, clients))
            BOOST_TEST(closed.code == close_code::going_away);
        BOOST_TEST(srv.pools().live() == 0u);
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(threads_placement)

BOOST_AUTO_TEST_CASE(with_cpu_affinity_the_server_s_thread_keeps_a_cpu_of_its_own) {
    auto const allowed = allowed_cpus();
    auto const before = cpus_of_threads();
    auto cfg = fast_config();
    cfg.threads = 2;
    cfg.cpu_affinity = true;
    run_with_server(cfg, [&](server& srv) -> net::awaitable<void> {
        BOOST_TEST(srv.threads() == 2u);
        auto const during = cpus_of_threads();
        std::vector<std::string> started; // the server's own thread: a task that was not there before
        for (auto const& [tid, cpus] : during)
            if (!before.contains(tid)) started.push_back(cpus);
        BOOST_REQUIRE(started.size() == 1u);
        if (allowed.size() >= 2)
            BOOST_TEST(started.front() == std::to_string(allowed[1]),
                       "shard 1 runs on the second allowed CPU");
        else
            BOOST_TEST_MESSAGE("one allowed CPU: nothing to pin");
        co_return;
    });
}

BOOST_AUTO_TEST_CASE(without_it_the_scheduler_places_the_thread) {
    auto const before = cpus_of_threads();
    auto cfg = fast_config();
    cfg.threads = 2;
    cfg.cpu_affinity = false;
    run_with_server(cfg, [&](server&) -> net::awaitable<void> {
        for (auto const& [tid, cpus] : cpus_of_threads())
            if (!before.contains(tid)) BOOST_TEST(cpus == before.begin()->second, "the process's own set");
        co_return;
    });
}

BOOST_AUTO_TEST_SUITE_END()
