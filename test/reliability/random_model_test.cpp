#define BOOST_TEST_MODULE random_model
// Thousands of random valid and invalid events from twenty clients against an in-process server. A simple
// model predicts, for every step, the reply (an error code, a confirmation or nothing), whether the
// connection closes (1000 on disconnect, 1008 past --max-errors), and every connection's pools; after each
// step the server's registry and counters must agree with it.
//
// The seed is printed; WOLF_MODEL_SEED=<n> repeats a run and WOLF_MODEL_STEPS=<n> changes its length.
#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;
using std::chrono::steady_clock;
using error_code = wolf::protocol::error_code;

namespace {

constexpr std::size_t slots = 20;
constexpr std::size_t max_errors = 10; // low enough that random sequences reach it
// Client messages per connection per second. The server closes past 50; a step's round trip keeps
// arrivals in the order and nearly the spacing they were sent with, so 40 leaves room.
constexpr std::size_t messages_per_second = 40;
constexpr auto step_limit = 2s; // how long any one expected reply, close or pong may take

using ws_stream = websocket::stream<beast::tcp_stream>;

std::uint64_t from_environment(char const* name, std::uint64_t fallback) {
    char const* text = std::getenv(name);
    return text && *text ? std::strtoull(text, nullptr, 10) : fallback;
}

/** One WebSocket connection: what its reader received, and what the model says of it. */
struct connection {
    explicit connection(net::any_io_executor executor)
        : ws(std::move(executor)) {}

    ws_stream ws;
    std::string id;
    // Written by the reader.
    std::deque<boost::json::object> inbox;
    std::string last_pong;
    std::optional<close_info> closed;
    bool reader_done = false;
    // The model.
    bool open = true;
    bool ready = false;
    bool subscribed = false;
    std::size_t errors = 0;
    std::deque<steady_clock::time_point> sent; // client messages of the last second, for pacing
};

/**
 * Reads every frame into the inbox until the connection ends. Pongs are seen by the control callback.
 * Every arrival wakes the driver through `activity`.
 */
net::awaitable<void> read_frames(std::shared_ptr<connection> c, std::shared_ptr<notifier> activity) {
    beast::flat_buffer buffer;
    for (;;) {
        auto [ec, n] = co_await c->ws.async_read(buffer, use_nothrow);
        if (ec) {
            if (ec == websocket::error::closed)
                c->closed = close_info{c->ws.reason().code, std::string(c->ws.reason().reason.c_str())};
            break;
        }
        boost::json::error_code parse_ec;
        auto value = boost::json::parse(beast::buffers_to_string(buffer.data()), parse_ec);
        c->inbox.push_back(!parse_ec && value.is_object()
                               ? std::move(value.get_object())
                               : boost::json::object{{"type", "<not a JSON object>"}});
        buffer.consume(buffer.size());
        activity->notify();
    }
    c->reader_done = true;
    activity->notify();
}

/** What the model expects a step to produce. */
struct expectation {
    std::optional<error_code> error{};
    bool confirmation = false;
    std::optional<std::uint16_t> close_code{}; // the server closes the connection
    std::string close_reason{};
};

/** The kinds of step, with their weights. */
enum class action {
    connect,
    subscribe,
    unsubscribe,
    ping,
    disconnect,
    valid_with_extra_fields,
    foreign_id,
    unknown_type,
    unknown_type_with_foreign_id,
    uppercase_type,
    not_json,
    missing_id,
    bad_shape,
    drop_connection,
    close_connection,
};
constexpr std::array<std::pair<action, int>, 15> weights{{
    {action::connect, 10},
    {action::subscribe, 12},
    {action::unsubscribe, 8},
    {action::ping, 8},
    {action::disconnect, 1},
    {action::valid_with_extra_fields, 4},
    {action::foreign_id, 8},
    {action::unknown_type, 3},
    {action::unknown_type_with_foreign_id, 2},
    {action::uppercase_type, 3},
    {action::not_json, 2},
    {action::missing_id, 2},
    {action::bad_shape, 3},
    {action::drop_connection, 1},
    {action::close_connection, 1},
}};

std::string event_text(std::string_view type, std::string_view id) {
    return boost::json::serialize(boost::json::object{{"type", type}, {"payload", {{"id", id}}}});
}

/** The test: slots of connections, the model's totals, and the random source. */
class random_run {
public:
    random_run(server& srv, std::uint64_t seed, std::shared_ptr<notifier> activity)
        : srv_(srv)
        , random_(seed)
        , seed_(seed)
        , activity_(std::move(activity)) {}

    net::awaitable<void> run(std::uint64_t steps);

private:
    net::awaitable<std::shared_ptr<connection>> open();
    net::awaitable<void> step(std::size_t slot);
    net::awaitable<void> send_and_check(connection& c, std::string const& text, expectation const& expected);
    net::awaitable<void> barrier(connection& c);
    expectation apply(connection& c, protocol::client_event_type type);
    expectation apply_error(connection& c, error_code code);
    void check_server();
    std::string where() const;

    std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(random_); }
    template <typename T, std::size_t N>
    T const& pick(std::array<T, N> const& options) {
        return options[pick(N)];
    }
    action pick_action();
    std::string other_id(connection const& c);
    bool can_send(connection& c, steady_clock::time_point now);

    server& srv_;
    std::mt19937_64 random_;
    std::uint64_t seed_;
    std::shared_ptr<notifier> activity_;
    std::array<std::shared_ptr<connection>, slots> slots_;
    std::vector<std::string> ids_; // every id ever handed out
    std::uint64_t step_ = 0;
    std::string last_action_;
    // The model's counters, compared with the server's.
    std::uint64_t opened_ = 0;
    std::uint64_t error_limit_closes_ = 0;
    std::array<std::uint64_t, protocol::error_code_count> errors_{};
    std::map<std::string, std::uint64_t> seen_; // how often each outcome happened, for the coverage check
};

std::string random_run::where() const {
    std::ostringstream out;
    out << "seed " << seed_ << ", step " << step_ << " (" << last_action_ << ")";
    return std::move(out).str();
}

net::awaitable<std::shared_ptr<connection>> random_run::open() {
    auto c = std::make_shared<connection>(co_await net::this_coro::executor);
    auto& tcp = beast::get_lowest_layer(c->ws);
    auto [connect_ec] =
        co_await tcp.async_connect({net::ip::make_address("127.0.0.1"), srv_.port()}, use_nothrow);
    BOOST_REQUIRE_MESSAGE(!connect_ec, where() << ": connect: " << connect_ec.message());
    tcp.socket().set_option(net::ip::tcp::no_delay(true));
    auto [handshake_ec] = co_await c->ws.async_handshake("127.0.0.1", "/ws", use_nothrow);
    BOOST_REQUIRE_MESSAGE(!handshake_ec, where() << ": handshake: " << handshake_ec.message());
    c->ws.text(true);
    // Raw pointers: the stream owns the callback, and the reader keeps both alive while it can run.
    c->ws.control_callback(
        [raw = c.get(), activity = activity_.get()](websocket::frame_type kind, beast::string_view payload) {
            if (kind == websocket::frame_type::pong) raw->last_pong = std::string(payload);
            activity->notify();
        });
    net::co_spawn(co_await net::this_coro::executor, read_frames(c, activity_), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });

    BOOST_REQUIRE(co_await activity_->until([&] { return !c->inbox.empty() || c->reader_done; }, step_limit));
    BOOST_REQUIRE_MESSAGE(!c->inbox.empty(), where() << ": no initial");
    auto const initial = std::move(c->inbox.front());
    c->inbox.pop_front();
    BOOST_REQUIRE_EQUAL(event_type(initial), event::initial);
    c->id = payload_string(initial, "id");
    ids_.push_back(c->id);
    ++opened_;
    co_return c;
}

action random_run::pick_action() {
    int total = 0;
    for (auto const& [kind, weight] : weights)
        total += weight;
    auto roll = static_cast<int>(pick(static_cast<std::size_t>(total)));
    for (auto const& [kind, weight] : weights) {
        if (roll < weight) return kind;
        roll -= weight;
    }
    return action::ping;
}

std::string random_run::other_id(connection const& c) {
    // Another connection's id (current or gone: ids are never reused), or one nobody ever had.
    if (ids_.size() > 1 && pick(4) != 0) {
        for (;;) {
            auto const& id = ids_[pick(ids_.size())];
            if (id != c.id) return id;
        }
    }
    return "00000000-0000-4000-8000-" + std::to_string(100000000000 + pick(900000000000));
}

bool random_run::can_send(connection& c, steady_clock::time_point now) {
    while (!c.sent.empty() && now - c.sent.front() > 1s)
        c.sent.pop_front();
    return c.sent.size() < messages_per_second;
}

expectation random_run::apply_error(connection& c, error_code code) {
    // The server counts the error, then closes instead of answering once the connection is past the limit.
    ++errors_[static_cast<std::size_t>(code)];
    ++seen_[std::string("error ") + std::string(protocol::to_string(code))];
    if (++c.errors > max_errors) {
        ++error_limit_closes_;
        ++seen_["closed past --max-errors"];
        c.open = c.ready = c.subscribed = false;
        return {.close_code = protocol::close_code::policy_violation,
                .close_reason = std::string(protocol::close_reason::too_many_errors)};
    }
    return {.error = code};
}

expectation random_run::apply(connection& c, protocol::client_event_type type) {
    using type_t = protocol::client_event_type;
    if ((type == type_t::subscribe || type == type_t::unsubscribe) && !c.ready)
        return apply_error(c, error_code::not_connected);
    ++seen_[std::string("applied ") + std::string(protocol::to_string(type))];
    switch (type) {
    case type_t::connect:
        c.ready = true;
        return {};
    case type_t::subscribe:
        c.subscribed = true;
        return {.confirmation = true};
    case type_t::unsubscribe:
        c.subscribed = false;
        return {};
    case type_t::ping:
        return {};
    case type_t::disconnect:
        c.open = c.ready = c.subscribed = false;
        return {.close_code = protocol::close_code::normal};
    }
    return {};
}

net::awaitable<void> random_run::barrier(connection& c) {
    // A WebSocket ping is answered by the server's read loop after it has handled every message before
    // it, and it is neither a client event nor a message: no error, no rate-limit slot, no liveness.
    auto const token = "b" + std::to_string(step_);
    auto [ec] = co_await c.ws.async_ping(websocket::ping_data(token.c_str()), use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, where() << ": ping: " << ec.message());
    BOOST_REQUIRE_MESSAGE(
        co_await activity_->until([&] { return c.last_pong == token || c.reader_done; }, step_limit),
        where() << ": no pong");
    BOOST_REQUIRE_MESSAGE(!c.reader_done, where() << ": the connection ended");
}

net::awaitable<void> random_run::send_and_check(connection& c, std::string const& text,
                                                expectation const& expected) {
    // (The message of a BOOST_REQUIRE_MESSAGE is evaluated even when the check passes.)
    if (!c.inbox.empty())
        BOOST_FAIL(where() << ": unexpected frame before the step: "
                           << boost::json::serialize(c.inbox.front()));
    c.sent.push_back(steady_clock::now());
    auto [ec, n] = co_await c.ws.async_write(net::buffer(text), use_nothrow);
    BOOST_REQUIRE_MESSAGE(!ec, where() << ": write: " << ec.message());

    if (expected.close_code) {
        BOOST_REQUIRE_MESSAGE(co_await activity_->until([&] { return c.reader_done; }, step_limit),
                              where() << ": the connection was not closed");
        BOOST_REQUIRE_MESSAGE(c.closed, where() << ": no close frame");
        BOOST_TEST(c.closed->code == *expected.close_code, where());
        BOOST_TEST(c.closed->reason == expected.close_reason, where());
        BOOST_TEST(c.inbox.empty(), where() << ": a frame before the close");
    } else if (expected.error || expected.confirmation) {
        BOOST_REQUIRE_MESSAGE(
            co_await activity_->until([&] { return !c.inbox.empty() || c.reader_done; }, step_limit),
            where() << ": no reply");
        BOOST_REQUIRE_MESSAGE(!c.inbox.empty(), where() << ": closed instead of replying, code "
                                                        << (c.closed ? c.closed->code : 0));
        auto const reply = std::move(c.inbox.front());
        c.inbox.pop_front();
        if (expected.error) {
            BOOST_TEST(event_type(reply) == event::error, where());
            BOOST_TEST(payload_string(reply, "code") == protocol::to_string(*expected.error), where());
        } else {
            BOOST_TEST(event_type(reply) == event::subscribe_confirmation, where());
            BOOST_TEST(payload_string(reply, "status") == "ok", where());
        }
    } else {
        co_await barrier(c);
        BOOST_TEST(c.inbox.empty(), where() << ": an unexpected reply");
    }
}

net::awaitable<void> random_run::step(std::size_t slot) {
    auto& held = slots_[slot];
    if (!held || !held->open) {
        last_action_ = "open a new connection";
        held = co_await open();
        co_return;
    }
    auto& c = *held;
    using type_t = protocol::client_event_type;
    constexpr std::array<type_t, 5> all_types{type_t::connect, type_t::subscribe, type_t::unsubscribe,
                                              type_t::ping, type_t::disconnect};
    auto const kind = pick_action();
    switch (kind) {
    case action::connect:
    case action::subscribe:
    case action::unsubscribe:
    case action::ping:
    case action::disconnect: {
        auto const type = static_cast<type_t>(static_cast<int>(kind) - static_cast<int>(action::connect));
        last_action_ = std::string(protocol::to_string(type));
        auto const expected = apply(c, type);
        co_await send_and_check(c, event_text(protocol::to_string(type), c.id), expected);
        break;
    }
    case action::valid_with_extra_fields: {
        auto const type =
            pick(std::array{type_t::connect, type_t::subscribe, type_t::unsubscribe, type_t::ping});
        last_action_ = std::string(protocol::to_string(type)) + " with extra fields";
        boost::json::object message{{"extra", {1, 2}},
                                    {"payload", {{"id", c.id}, {"also", nullptr}}},
                                    {"type", protocol::to_string(type)}};
        auto const expected = apply(c, type);
        co_await send_and_check(c, boost::json::serialize(message), expected);
        break;
    }
    case action::foreign_id: {
        // Identity is checked before state: even `subscribe` before `connect` is id_mismatch.
        auto const type = pick(all_types);
        last_action_ = std::string(protocol::to_string(type)) + " with another id";
        auto const text = event_text(protocol::to_string(type), other_id(c));
        co_await send_and_check(c, text, apply_error(c, error_code::id_mismatch));
        break;
    }
    case action::unknown_type:
    case action::unknown_type_with_foreign_id: {
        // The type is checked before the id.
        auto const type = pick(std::array<std::string_view, 5>{"howl", "subscribed", "", "ping ", "wisdom"});
        last_action_ = "unknown type \"" + std::string(type) + "\"";
        auto const id = kind == action::unknown_type ? c.id : other_id(c);
        co_await send_and_check(c, event_text(type, id), apply_error(c, error_code::unknown_type));
        break;
    }
    case action::uppercase_type: {
        auto const type = pick(
            std::array<std::string_view, 5>{"CONNECT", "Subscribe", "UNSUBSCRIBE", "Ping", "DISCONNECT"});
        last_action_ = "type \"" + std::string(type) + "\"";
        co_await send_and_check(c, event_text(type, c.id), apply_error(c, error_code::unknown_type));
        break;
    }
    case action::not_json: {
        auto const text =
            pick(std::array<std::string_view, 5>{"not json", "{", "", "{\"type\":\"ping\"", "[1,2"});
        last_action_ = "not JSON: " + std::string(text);
        co_await send_and_check(c, std::string(text), apply_error(c, error_code::bad_message));
        break;
    }
    case action::missing_id: {
        auto const type = pick(all_types);
        last_action_ = std::string(protocol::to_string(type)) + " without payload.id";
        auto const text = R"({"type":")" + std::string(protocol::to_string(type)) + R"(","payload":{}})";
        co_await send_and_check(c, text, apply_error(c, error_code::bad_message));
        break;
    }
    case action::bad_shape: {
        auto const id = c.id;
        std::array<std::string, 6> const shapes{
            "[]",
            "null",
            R"({"type":5,"payload":{"id":")" + id + R"("}})",
            R"({"type":"ping","payload":")" + id + R"("})",
            R"({"type":"ping","payload":{"id":7}})",
            R"({"type":"ping"})",
        };
        auto const& text = pick(shapes);
        last_action_ = "bad shape: " + text;
        co_await send_and_check(c, text, apply_error(c, error_code::bad_message));
        break;
    }
    case action::drop_connection:
    case action::close_connection: {
        bool const drop = kind == action::drop_connection;
        last_action_ = drop ? "drop the TCP connection" : "close the WebSocket with 1000";
        ++seen_[last_action_];
        c.open = c.ready = c.subscribed = false;
        if (drop) {
            beast::get_lowest_layer(c.ws).close();
        } else {
            auto [ec] = co_await c.ws.async_close(websocket::close_code::normal, use_nothrow);
            BOOST_REQUIRE_MESSAGE(!ec, where() << ": close: " << ec.message());
        }
        BOOST_REQUIRE(co_await activity_->until([&] { return c.reader_done; }, step_limit));
        // No reply can tell when the server noticed: watch its registry.
        auto const gone = [&] {
            for (peer* p : srv_.connections().open_peers())
                if (p->id() == c.id) return false;
            return true;
        };
        BOOST_REQUIRE_MESSAGE(co_await eventually(gone, step_limit), where() << ": the server kept it open");
        break;
    }
    }
}

void random_run::check_server() {
    auto const& pools = srv_.connections();
    std::size_t open = 0, ready = 0, subscribed = 0;
    for (auto const& c : slots_) {
        if (!c || !c->open) continue;
        ++open;
        ready += c->ready;
        subscribed += c->subscribed;
    }
    BOOST_REQUIRE_MESSAGE(pools.connections() == open,
                          where() << ": " << pools.connections() << " open, model " << open);
    BOOST_REQUIRE_MESSAGE(pools.ready() == ready, where()
                                                      << ": " << pools.ready() << " ready, model " << ready);
    BOOST_REQUIRE_MESSAGE(pools.subscribers() == subscribed,
                          where() << ": " << pools.subscribers() << " subscribers, model " << subscribed);
    for (peer* p : pools.open_peers()) {
        auto const it = std::find_if(slots_.begin(), slots_.end(),
                                     [&](auto const& c) { return c && c->open && c->id == p->id(); });
        BOOST_REQUIRE_MESSAGE(it != slots_.end(), where() << ": " << p->id() << " is open, not in the model");
        BOOST_REQUIRE_MESSAGE(pools.is_ready(*p) == (*it)->ready, where() << ": ready of " << p->id());
        BOOST_REQUIRE_MESSAGE(pools.is_subscribed(*p) == (*it)->subscribed,
                              where() << ": subscribed of " << p->id());
    }
    auto const& stats = srv_.stats();
    for (std::size_t i = 0; i < protocol::error_code_count; ++i) {
        auto const code = static_cast<error_code>(i);
        BOOST_REQUIRE_MESSAGE(stats.errors_for(code) == errors_[i],
                              where() << ": " << protocol::to_string(code) << " counted "
                                      << stats.errors_for(code) << ", model " << errors_[i]);
    }
    BOOST_REQUIRE_MESSAGE(stats.evictions_for(eviction_reason::error_limit) == error_limit_closes_,
                          where() << ": error_limit evictions");
    BOOST_REQUIRE_MESSAGE(stats.connections_total == opened_, where() << ": connections_total");
}

net::awaitable<void> random_run::run(std::uint64_t steps) {
    for (auto& slot : slots_)
        slot = co_await open();
    check_server();

    std::vector<std::size_t> ready_slots;
    for (step_ = 1; step_ <= steps; ++step_) {
        // Any slot whose connection has room under the rate limit (a closed slot reopens, no message).
        auto const now = steady_clock::now();
        ready_slots.clear();
        for (std::size_t i = 0; i < slots; ++i)
            if (!slots_[i]->open || can_send(*slots_[i], now)) ready_slots.push_back(i);
        if (ready_slots.empty()) {
            --step_;
            co_await pause(5ms); // pacing, not waiting for an event
            continue;
        }
        co_await step(ready_slots[pick(ready_slots.size())]);
        check_server();
    }

    // Nothing is left in flight: every open connection answers a last barrier with no stray frame.
    last_action_ = "final barrier";
    for (auto& c : slots_) {
        if (!c->open) continue;
        co_await barrier(*c);
        BOOST_TEST(c->inbox.empty(), where() << ": a stray frame on " << c->id);
    }
    check_server();

    std::ostringstream summary;
    for (auto const& [outcome, count] : seen_)
        summary << "\n  " << outcome << ": " << count;
    BOOST_TEST_MESSAGE("outcomes over " << steps << " steps:" << summary.str());
    // The sequence exercised what the test is about.
    if (steps >= 2000)
        for (auto const* outcome :
             {"error bad_message", "error unknown_type", "error id_mismatch", "error not_connected",
              "closed past --max-errors", "applied disconnect", "applied subscribe", "applied unsubscribe",
              "drop the TCP connection", "close the WebSocket with 1000"})
            BOOST_TEST(seen_[outcome] > 0u, "never happened: " << outcome);

    for (auto& c : slots_)
        if (c->open) beast::get_lowest_layer(c->ws).close();
    BOOST_TEST(co_await eventually([&] { return srv_.connections().live() == 0; }, 5s));
}

} // namespace

BOOST_AUTO_TEST_CASE(random_valid_and_invalid_events_leave_the_pools_as_the_model_predicts) {
    auto const seed = from_environment("WOLF_MODEL_SEED", std::random_device{}());
    auto const steps = from_environment("WOLF_MODEL_STEPS", 10000);
    std::cout << "random_model: seed " << seed << ", " << steps << " steps (WOLF_MODEL_SEED=" << seed
              << " repeats this run)" << std::endl;

    auto cfg = fast_config();
    cfg.max_errors = max_errors;
    cfg.ping_timeout = 1h; // liveness is not what this test is about
    run_with_server(
        cfg,
        [&](server& srv) -> net::awaitable<void> {
            auto activity = std::make_shared<notifier>();
            random_run run(srv, seed, activity);
            co_await run.run(steps);
        },
        60s);
}
