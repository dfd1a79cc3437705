#define BOOST_TEST_MODULE descriptor_exhaustion
// The real binary under `ulimit -n 256` and 400 simultaneous WebSocket connection attempts: it stays up,
// serves what its descriptors allow, leaves the excess waiting in the listen backlog while its accept loop
// backs off (logging at most once a second), and serves the waiting clients once others leave. And the
// softer limit, --max-connections, answers 503. At startup the soft descriptor limit is raised to the hard
// one, and a hard one short of --max-connections is named in one warning. (Here, not in cli_test: a process
// under Valgrind, as scripts/memcheck runs cli_test, cannot lower its children's descriptor limit.)
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
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <memory>

using namespace wolf;
using namespace wolf::test;

namespace {

constexpr unsigned long server_files = 256;
constexpr int attempts = 400;
constexpr int leaving = 100; // clients closed at a time to free descriptors

using ws_stream = websocket::stream<beast::tcp_stream>;

/** One connection attempt: still waiting, served (handshake done and `initial` read), or failed. */
struct attempt {
    enum class state { pending, served, failed, closed };
    state now = state::pending;
    std::string error;
    std::unique_ptr<ws_stream> ws;
};

/** Every attempt's change from pending to served or failed: what the test's waits wake on. */
notifier attempts_changed;

/** Connects, upgrades and reads `initial`, all within `limit`. */
net::awaitable<void> try_open(attempt& a, std::uint16_t port, std::chrono::seconds limit) {
    a.ws = std::make_unique<ws_stream>(co_await net::this_coro::executor);
    auto& tcp = beast::get_lowest_layer(*a.ws);
    tcp.expires_after(limit);
    auto const fail = [&](std::string_view what, beast::error_code ec) {
        a.now = attempt::state::failed;
        a.error = std::string(what) + ": " + ec.message();
        attempts_changed.notify();
    };
    if (auto [ec] = co_await tcp.async_connect({net::ip::make_address("127.0.0.1"), port}, use_nothrow); ec)
        co_return fail("connect", ec);
    if (auto [ec] = co_await a.ws->async_handshake("127.0.0.1", "/ws", use_nothrow); ec)
        co_return fail("handshake", ec);
    beast::flat_buffer buffer;
    if (auto [ec, n] = co_await a.ws->async_read(buffer, use_nothrow); ec) co_return fail("read", ec);
    if (beast::buffers_to_string(buffer.data()).find(protocol::event::initial) == std::string::npos)
        co_return fail("first frame", {});
    tcp.expires_never();
    a.now = attempt::state::served;
    attempts_changed.notify();
}

std::size_t count(std::vector<attempt> const& all, attempt::state state) {
    return std::count_if(all.begin(), all.end(), [&](attempt const& a) { return a.now == state; });
}

/** Closes the first `n` served connections (at the TCP level: the server sees the end of the stream). */
void close_served(std::vector<attempt>& all, int n) {
    for (auto& a : all) {
        if (n == 0) break;
        if (a.now != attempt::state::served) continue;
        beast::get_lowest_layer(*a.ws).close();
        a.now = attempt::state::closed;
        --n;
    }
}

/**
 * Out of descriptors, a sanitizer build of the server fails in the sanitizer, not in the server: UBSan's
 * vptr check probes memory with pipe(2) (sanitizer_common's IsAccessibleMemoryRange) and, given no
 * descriptor, reports the first type it has not cached as an "invalid vptr". The asan preset makes every
 * UBSan report fatal (-fno-sanitize-recover), and fatal reports ignore suppressions, so the case is skipped
 * there.
 */
boost::test_tools::assertion_result not_sanitized(boost::unit_test::test_unit_id) {
#if defined(__SANITIZE_ADDRESS__)
    boost::test_tools::assertion_result result(false);
    result.message() << "UBSan's vptr check needs free descriptors (see not_sanitized)";
    return result;
#else
    return true;
#endif
}

std::size_t lines_with(child_process const& p, std::string_view needle) {
    auto const lines = p.lines();
    return std::count_if(lines.begin(), lines.end(),
                         [&](output_line const& l) { return l.text.find(needle) != std::string::npos; });
}

} // namespace

BOOST_AUTO_TEST_CASE(
    out_of_descriptors_the_server_stays_up_backs_off_and_serves_the_excess_once_clients_leave,
    *boost::unit_test::precondition(not_sanitized)) {
    BOOST_REQUIRE_GE(raise_open_file_limit(), 2u * attempts); // this process holds every client socket
    child_process server(server_command(WOLF_BINARY, {"--ping-timeout", "1m", "--interval", "1h"}),
                         {.max_open_files = server_files});
    auto const port = wait_until_listening(server);
    auto const pid = server.pid();
    auto const spare = server_files - open_descriptors(pid); // what is left for connections
    BOOST_TEST_MESSAGE("descriptors in use before any connection: " << server_files - spare);

    run_coro(
        [&]() -> net::awaitable<void> {
            auto const executor = co_await net::this_coro::executor;
            std::vector<attempt> all(attempts);
            for (auto& a : all)
                net::co_spawn(executor, try_open(a, port, 30s), [](std::exception_ptr e) {
                    if (e) std::rethrow_exception(e);
                });

            // Out of descriptors: a first warning, then a second one no sooner than a second later, after
            // retries that all failed.
            auto const first = co_await server.async_wait_for_line(" accept_failed ", 10s);
            BOOST_REQUIRE_MESSAGE(first, "the server never ran out of descriptors:\n" << server.tail());
            auto const second = co_await server.async_wait_for_line(" accept_failed ", 5s);
            BOOST_REQUIRE_MESSAGE(second, "no second warning:\n" << server.tail());
            BOOST_TEST(first->text.find("Too many open files") != std::string::npos, first->text);
            auto const gap = log_ms_between(first->text, second->text).value_or(0);
            BOOST_TEST(gap >= 990, "accept warnings " << gap << " ms apart");
            // The retries back off (10 ms doubling to 1 s): about eight in the first second. A loop that
            // retried at once would fail thousands of times.
            auto const retries = number_after(second->text, " failures=").value_or(0);
            BOOST_TEST(retries <= 15u, second->text);

            // Everything the descriptors allow is served; the rest wait in the backlog, none refused.
            auto const opened = lines_with(server, " info  open id=");
            BOOST_TEST(co_await attempts_changed.until(
                [&] { return count(all, attempt::state::served) == opened; }, 5s));
            auto const served = count(all, attempt::state::served);
            BOOST_TEST_MESSAGE("served " << served << " of " << attempts << " with " << spare
                                         << " descriptors to spare");
            BOOST_TEST(served <= spare);
            BOOST_TEST(served + 3 >= spare, "served " << served << ", descriptors to spare " << spare);
            BOOST_TEST(count(all, attempt::state::failed) == 0u);
            BOOST_TEST(count(all, attempt::state::pending) == attempts - served);
            BOOST_TEST(open_descriptors(pid) == server_files);
            BOOST_TEST(server.running());

            // Clients leave: as many waiting ones are served, within the back-off's one second.
            close_served(all, leaving);
            BOOST_TEST(co_await attempts_changed.until(
                           [&] { return count(all, attempt::state::served) == served; }, 5s),
                       count(all, attempt::state::served) << " served, expected " << served);
            BOOST_TEST(count(all, attempt::state::pending) == attempts - served - leaving);

            // More leave than are waiting: everyone is served, and there is room for HTTP and new clients.
            close_served(all, leaving);
            BOOST_TEST(co_await attempts_changed.until(
                           [&] { return count(all, attempt::state::pending) == 0u; }, 5s),
                       count(all, attempt::state::pending) << " still waiting");
            BOOST_TEST(count(all, attempt::state::failed) == 0u);
            for (auto const& a : all)
                if (a.now == attempt::state::failed) BOOST_TEST_MESSAGE(a.error);
            auto const open_now = count(all, attempt::state::served);
            BOOST_TEST(open_now == attempts - 2u * leaving);
            auto const health = co_await http_request(port, http::verb::get, "/healthz");
            BOOST_TEST(health.result_int() == 200u);
            BOOST_TEST(health.body().find("\"connections\":" + std::to_string(open_now) + ",") !=
                           std::string::npos,
                       health.body());
            auto newcomer = co_await ws_client::open(port);
            co_await newcomer.connect_and_subscribe();
            BOOST_TEST(server.running());

            // Over the whole run, the accept warnings never came closer than a second apart.
            std::optional<std::string> previous;
            std::size_t warnings = 0;
            for (auto const& line : server.lines()) {
                if (logged_event(line.text) != "accept_failed") continue;
                if (previous) {
                    auto const apart = log_ms_between(*previous, line.text);
                    BOOST_TEST(apart.value_or(0) >= 990, line.text);
                }
                previous = line.text;
                ++warnings;
            }
            BOOST_TEST_MESSAGE(warnings << " accept warnings");

            co_await newcomer.close();
            close_served(all, attempts);
        },
        90s);

    server.send_signal(SIGTERM);
    BOOST_TEST(server.wait(10s).value_or(-1) == 0, server.tail());
}

BOOST_AUTO_TEST_CASE(past_max_connections_upgrades_get_503_and_a_freed_slot_is_served) {
    child_process server(server_command(WOLF_BINARY, {"--max-connections", "50"}));
    auto const port = wait_until_listening(server);

    run_coro([&]() -> net::awaitable<void> {
        std::vector<ws_client> clients;
        for (int i = 0; i < 50; ++i)
            clients.push_back(co_await ws_client::open(port));
        BOOST_TEST(co_await ws_client::try_handshake(port) == 503u);
        BOOST_TEST(co_await ws_client::try_handshake(port) == 503u);
        auto const health = co_await http_request(port, http::verb::get, "/healthz");
        BOOST_TEST(health.body().find("\"connections\":50,") != std::string::npos, health.body());

        co_await clients.back().send_event(protocol::event::disconnect);
        BOOST_TEST((co_await clients.back().read_close()).code == protocol::close_code::normal);
        auto replacement = co_await ws_client::open(port);
        co_await replacement.connect_and_subscribe();
        BOOST_TEST(co_await ws_client::try_handshake(port) == 503u);
    });
}

// Shells start programs with a low soft descriptor limit: the server takes the hard one, and warns when even
// that is short of what --max-connections needs (`ulimit -n 256` with a hard 4096, then `ulimit -Hn 256`).
BOOST_AUTO_TEST_CASE(the_soft_descriptor_limit_is_raised_to_the_hard_one_and_a_short_one_is_named) {
    auto const max_fds = [](std::uint16_t port) {
        double limit = 0;
        run_coro([&]() -> net::awaitable<void> {
            limit = metric(co_await scrape_metrics(port), "process_max_fds");
        });
        return limit;
    };
    auto const warned = [](child_process const& server) {
        auto const lines = server.lines();
        auto const line = std::find_if(lines.begin(), lines.end(), [](output_line const& l) {
            return logged_event(l.text) == "descriptor_limit";
        });
        return line == lines.end() ? std::string() : line->text;
    };
    {
        child_process server({WOLF_BINARY, "--host", "127.0.0.1", "--port", "0", "--max-connections", "1000"},
                             {.max_open_files = 256, .max_open_files_hard = 4096});
        auto const port = wait_until_listening(server);
        BOOST_TEST(max_fds(port) == 4096, "the soft limit was raised to the hard one");
        BOOST_TEST(warned(server).empty(), warned(server));
        server.send_signal(SIGTERM);
        BOOST_TEST(server.wait(10s).value_or(-1) == 0);
    }
    {
        child_process server({WOLF_BINARY, "--host", "127.0.0.1", "--port", "0"}, {.max_open_files = 256});
        auto const port = wait_until_listening(server);
        BOOST_TEST(max_fds(port) == 256);
        auto const line = warned(server);
        BOOST_TEST(line.find(" warn ") != std::string::npos, line);
        BOOST_TEST(logged_field(line, "limit").value_or("") == "256", line);
        BOOST_TEST(logged_field(line, "needed").value_or("") == "10064", line);
        BOOST_TEST(logged_field(line, "max_connections").value_or("") == "10000", line);
        BOOST_TEST(line.find("ulimit -Hn") != std::string::npos, line);
        server.send_signal(SIGTERM);
        BOOST_TEST(server.wait(10s).value_or(-1) == 0);
    }
}
