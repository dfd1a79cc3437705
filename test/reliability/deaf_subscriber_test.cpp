#define BOOST_TEST_MODULE deaf_subscriber
// A subscriber that never reads, beside 100 that do, against the real binary: the broadcaster never waits
// on it, its broadcasts are dropped (and counted) once its queue holds --max-queue frames, every other
// subscriber still gets every tick, and the server's memory stays flat.
#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <map>
#include <sstream>

using namespace wolf;
using namespace wolf::test;
namespace event = wolf::protocol::event;

namespace {

constexpr auto interval = 50ms;
constexpr std::size_t max_queue = 16;
// Long quotes fill the deaf connection's socket buffers (about 4 MiB on loopback) in a few seconds.
constexpr std::size_t quote_bytes = 64 * 1024;
constexpr int quote_count = 64;
constexpr int normal_count = 100;
constexpr int window_ticks = 60; // 3 s of ticks with all 101 subscribed
constexpr auto ping_timeout = 2s;

/** Long quotes, each starting with its number ("q07 www..."). */
std::string long_quotes() {
    std::string text;
    for (int i = 0; i < quote_count; ++i) {
        char head[16];
        std::snprintf(head, sizeof head, "q%02d ", i);
        text.append(head).append(quote_bytes - 4, 'w').push_back('\n');
    }
    return text;
}

/** What one normal subscriber read: the number of each quote ("q07") and when it arrived. */
struct delivery {
    std::string id;
    std::vector<std::string> quotes;
    std::vector<std::chrono::steady_clock::time_point> arrivals;
    std::string error; // why reading stopped before the test closed the connection
};

/** Every broadcast a normal subscriber reads, and every reader's or pinger's end: what the waits wake on. */
notifier progress;

/** Reads broadcasts until the test closes the connection. */
net::awaitable<void> read_broadcasts(ws_client& client, delivery& got, bool const& stopping, int& running) {
    ++running;
    beast::flat_buffer buffer;
    for (;;) {
        buffer.clear();
        auto [ec, n] = co_await client.stream().async_read(buffer, use_nothrow);
        if (ec) {
            if (!stopping) got.error = "read: " + ec.message();
            break;
        }
        auto const now = std::chrono::steady_clock::now();
        boost::json::error_code parse_ec;
        auto const value = boost::json::parse(beast::buffers_to_string(buffer.data()), parse_ec);
        auto const* event = value.if_object();
        if (parse_ec || !event || event_type(*event) != event::wisdom_distribution) {
            got.error = "unexpected frame: " + beast::buffers_to_string(buffer.data()).substr(0, 100);
            break;
        }
        auto const message = payload_string(*event, "message");
        if (message.size() != quote_bytes) {
            got.error = "a quote of " + std::to_string(message.size()) + " bytes";
            break;
        }
        got.quotes.push_back(message.substr(0, 3));
        got.arrivals.push_back(now);
        progress.notify();
    }
    --running;
    progress.notify();
}

/**
 * Pings every client every ping_timeout / 4 so the watchdog evicts nobody; for the deaf client that is a
 * send, not a read. `clients` may grow meanwhile. A failed send is recorded by id.
 */
net::awaitable<void> keep_pinging(std::vector<ws_client*> const& clients, bool const& stopping,
                                  std::string& failed, int& running) {
    ++running;
    while (!stopping) {
        for (std::size_t i = 0; i < clients.size() && !stopping; ++i) {
            bool const sent = co_await clients[i]->try_send_event(event::ping, clients[i]->id());
            if (!sent) failed += clients[i]->id() + ' ';
        }
        co_await pause(std::chrono::duration_cast<std::chrono::milliseconds>(ping_timeout) / 4);
    }
    --running;
    progress.notify();
}

/** One parsed "tick number=N recipients=R dropped=D ..." line. */
struct tick_line {
    std::uint64_t number, recipients, dropped;
};

std::optional<tick_line> parse_tick(std::string_view text) {
    if (logged_event(text) != "tick") return std::nullopt;
    auto const number = number_after(text, " number=");
    auto const recipients = number_after(text, " recipients=");
    auto const dropped = number_after(text, " dropped=");
    if (!number || !recipients || !dropped) return std::nullopt;
    return tick_line{*number, *recipients, *dropped};
}

} // namespace

BOOST_AUTO_TEST_CASE(a_subscriber_that_never_reads_loses_broadcasts_while_a_hundred_others_get_every_tick) {
    temp_file const quotes("deaf-subscriber-quotes.txt", long_quotes());
    // One event loop: this test replays the server's log in order, and only one thread's log lines are in
    // the order its events happened (with several, a subscribe applied just after a tick's fan-out on one
    // thread may be logged before that tick's line).
    child_process server(
        server_command(WOLF_BINARY,
                       {"--interval", "50ms", "--max-queue", std::to_string(max_queue), "--write-timeout",
                        "1h", "--ping-timeout", "2s", "--quotes", quotes.path, "--threads", "1"}),
        {.environment = sanitizer_environment()});
    auto const port = wait_until_listening(server);

    run_coro(
        [&]() -> net::awaitable<void> {
            bool stopping = false;
            int running = 0; // helper coroutines still running
            auto const executor = co_await net::this_coro::executor;
            auto const spawn_failed = [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            };

            auto const t_start = std::chrono::steady_clock::now();
            // The deaf client subscribes first and reads nothing after the confirmation; it only pings.
            auto deaf = co_await ws_client::open(port);
            co_await deaf.connect_and_subscribe();
            std::vector<ws_client*> pinged{&deaf};
            std::string ping_failures;
            net::co_spawn(executor, keep_pinging(pinged, stopping, ping_failures, running), spawn_failed);

            // Its socket buffers and then its queue fill; the first tick that finds the queue full says so.
            auto const first_drop = co_await server.async_wait_for_line(" dropped=1 ", 30s);
            BOOST_REQUIRE_MESSAGE(first_drop, "no broadcast was ever dropped for the deaf client:\n"
                                                  << server.tail());

            auto const t_drop = std::chrono::steady_clock::now();
            std::vector<ws_client> normal;
            normal.reserve(normal_count); // readers hold references: never reallocate
            std::vector<delivery> got(normal_count);
            for (int i = 0; i < normal_count; ++i) {
                normal.push_back(co_await ws_client::open(port));
                co_await normal.back().connect_and_subscribe();
                got[i].id = normal.back().id();
                pinged.push_back(&normal.back());
                net::co_spawn(executor, read_broadcasts(normal.back(), got[i], stopping, running),
                              spawn_failed);
            }

            auto const t_open = std::chrono::steady_clock::now();
            // The window: window_ticks ticks after the last subscription, counted in the server's log.
            auto const pid = server.pid();
            std::vector<std::size_t> rss{rss_kib(pid)};
            BOOST_TEST_REQUIRE(rss.front() > 0u, "cannot read VmRSS of " << pid);
            auto const before = co_await scrape_metrics(port);
            BOOST_REQUIRE(co_await server.async_wait_for_line(" subscribe id=" + normal.back().id(), 5s));
            std::optional<tick_line> last_tick;
            for (int i = 0; i < window_ticks; ++i) {
                auto const line = co_await server.async_wait_for_line(" tick number=", 5s);
                BOOST_REQUIRE_MESSAGE(line, "the ticks stopped:\n" << server.tail());
                last_tick = parse_tick(line->text);
                BOOST_REQUIRE_MESSAGE(last_tick, line->text);
                if (i % 2 == 0) rss.push_back(rss_kib(pid)); // sampled every 100 ms
            }
            auto const after = co_await scrape_metrics(port);
            auto const t_end = std::chrono::steady_clock::now();
            auto const ms = [](auto d) {
                return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
            };
            BOOST_TEST_MESSAGE("saturated after " << ms(t_drop - t_start) << " ms; opened 100 in "
                                                  << ms(t_open - t_drop) << " ms; window "
                                                  << ms(t_end - t_open) << " ms");
            auto const health = co_await http_request(port, http::verb::get, "/healthz");

            // Walk the log in order: which tick each client subscribed after, and what every tick did.
            std::map<std::string, std::uint64_t, std::less<>> subscribed_after;
            std::uint64_t subscribers = 0, current_tick = 0, checked_ticks = 0;
            bool deaf_full = false;
            std::string evictions;
            for (auto const& line : server.lines()) {
                auto const& text = line.text;
                if (logged_event(text) == "subscribe") {
                    subscribed_after[std::string(logged_field(text, "id").value_or(""))] = current_tick;
                    subscribers = number_after(text, " subscribers=").value_or(0);
                } else if (auto const tick = parse_tick(text)) {
                    current_tick = tick->number;
                    deaf_full = deaf_full || tick->dropped > 0;
                    if (!deaf_full || tick->number > last_tick->number) continue;
                    ++checked_ticks;
                    // Only the deaf connection ever has a full queue: one drop per tick, everyone else
                    // queued.
                    BOOST_TEST(tick->dropped == 1u, text);
                    BOOST_TEST(tick->recipients + 1 == subscribers, text);
                }
                if (logged_event(text) == "evict") evictions += text + '\n';
            }
            BOOST_TEST(evictions.empty(), evictions);
            BOOST_TEST(checked_ticks >= static_cast<std::uint64_t>(window_ticks));

            // Every normal subscriber receives every tick after its subscription, in order, without gaps.
            auto const all_delivered = [&] {
                for (auto const& d : got)
                    if (!d.error.empty() || d.quotes.size() < last_tick->number - subscribed_after[d.id])
                        return false;
                return true;
            };
            BOOST_TEST(co_await progress.until(all_delivered, 5s),
                       "every tick reached every normal subscriber");
            std::map<std::uint64_t, std::string> quote_of_tick;
            for (auto const& d : got) {
                BOOST_TEST_REQUIRE(d.error.empty(), d.id << ": " << d.error);
                BOOST_TEST_REQUIRE(subscribed_after.contains(d.id), "no subscribe line for " << d.id);
                auto const first = subscribed_after[d.id] + 1;
                auto const expected = last_tick->number - subscribed_after[d.id];
                BOOST_TEST_REQUIRE(d.quotes.size() >= expected, d.id);
                for (std::uint64_t k = 0; k < expected; ++k) {
                    auto const [known, added] = quote_of_tick.emplace(first + k, d.quotes[k]);
                    BOOST_TEST(known->second == d.quotes[k], d.id << " tick " << first + k);
                    // A broadcaster that waited on the deaf connection would stall for good; 1 s is 20 ticks.
                    if (k > 0)
                        BOOST_TEST((d.arrivals[k] - d.arrivals[k - 1] < 1s), d.id << " tick " << first + k);
                }
            }

            // The drops are counted, the deaf client is slow but not gone, and nobody was evicted.
            BOOST_TEST(metric(after, "wolf_wisdom_dropped_total") >=
                       metric(before, "wolf_wisdom_dropped_total") + window_ticks / 2);
            BOOST_TEST(metric(after, "wolf_connections") == normal_count + 1);
            BOOST_TEST(metric(after, "wolf_subscribers") == normal_count + 1);
            for (auto reason : {"ping_timeout", "write_timeout", "slow_consumer"})
                BOOST_TEST(metric(after, std::string("wolf_evictions_total{reason=\"") + reason + "\"}") ==
                           0);
            BOOST_TEST(health.body().find("\"connections\":101") != std::string::npos, health.body());
            BOOST_TEST(ping_failures.empty(), "pings failed for " << ping_failures);

            // Memory: the deaf queue was already full when the window began; what the window may add is
            // another queue's worth of frames in flight, twice over, plus allocator slack.
            std::size_t frames = 0;
            for (auto const& d : got)
                frames += d.quotes.size();
            std::ostringstream samples;
            for (auto kib : rss)
                samples << ' ' << kib;
            BOOST_TEST_MESSAGE("frames read by the normal subscribers: " << frames
                                                                         << "; RSS (KiB):" << samples.str());
            auto const bound = rss.front() + 2 * max_queue * quote_bytes / 1024 + 4096;
            auto const peak = *std::max_element(rss.begin(), rss.end());
            BOOST_TEST(peak <= bound,
                       "RSS peaked at " << peak << " KiB; started at " << rss.front() << " KiB");
            auto const third = rss.size() / 3;
            auto const early = *std::max_element(rss.begin(), rss.begin() + third);
            auto const late = *std::max_element(rss.end() - third, rss.end());
            BOOST_TEST(late <= early + 1024,
                       "RSS still growing: " << early << " KiB, then " << late << " KiB");

            stopping = true;
            beast::get_lowest_layer(deaf.stream()).close();
            for (auto& client : normal)
                beast::get_lowest_layer(client.stream()).close();
            BOOST_TEST(co_await progress.until([&] { return running == 0; }, 5s));
        },
        90s);
}
