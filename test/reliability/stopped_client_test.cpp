#define BOOST_TEST_MODULE stopped_client
// A client process frozen with SIGSTOP keeps its TCP connection open but sends nothing: the watchdog
// evicts it within --ping-timeout (plus one sweep) of its last ping, while a client that keeps pinging
// stays connected.
#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"

#include <boost/beast/http.hpp>
#include <boost/test/unit_test.hpp>
#include <csignal>

using namespace wolf;
using namespace wolf::test;

namespace {

constexpr auto ping_timeout = 2s;

/** Starts a stub client and waits until it has subscribed; returns its id. */
std::string start_subscribed(child_process& stub) {
    auto const id_line = stub.wait_for_line("id ", 10s);
    BOOST_REQUIRE_MESSAGE(id_line, "the stub client did not connect:\n" << stub.tail());
    BOOST_REQUIRE_MESSAGE(stub.wait_for_line("subscribed", 10s), "the stub did not subscribe:\n"
                                                                     << stub.tail());
    return id_line->text.substr(3);
}

/** /healthz's open connections, from a test that has no io_context of its own. */
std::int64_t connections_of(std::uint16_t port) {
    health got;
    run_coro([&]() -> net::awaitable<void> { got = co_await healthz(port); });
    return got.connections;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_sigstopped_client_is_evicted_within_the_ping_timeout_and_a_live_one_stays) {
    child_process server(server_command(WOLF_BINARY, {"--interval", "200ms", "--ping-timeout", "2s"}));
    auto const port = wait_until_listening(server);

    child_process frozen({WOLF_STUB_CLIENT, std::to_string(port)});
    child_process live({WOLF_STUB_CLIENT, std::to_string(port)});
    auto const frozen_id = start_subscribed(frozen);
    auto const live_id = start_subscribed(live);
    auto const live_since = std::chrono::steady_clock::now();

    frozen.send_signal(SIGSTOP);
    auto const stopped_at = std::chrono::steady_clock::now();
    // Its last ping was at most 1 s before the stop; the watchdog sweeps every ping_timeout / 4.
    auto const evicted = server.wait_for_line(" evict id=" + frozen_id, ping_timeout + 1s);
    BOOST_REQUIRE_MESSAGE(evicted, "not evicted within ping-timeout + 1 s of the SIGSTOP:\n"
                                       << server.tail());
    BOOST_TEST(std::string(logged_field(evicted->text, "reason").value_or("")) == "ping_timeout",
               evicted->text);
    BOOST_TEST_MESSAGE(
        "evicted "
        << std::chrono::duration_cast<std::chrono::milliseconds>(evicted->arrived - stopped_at).count()
        << " ms after the SIGSTOP");

    // The close frame (4000) is waiting in the frozen client's socket; resumed, it reads it.
    frozen.send_signal(SIGCONT);
    auto const closed = frozen.wait_for_line("closed ", 5s);
    BOOST_REQUIRE_MESSAGE(closed, "the resumed client saw no close frame:\n" << frozen.tail());
    BOOST_TEST(closed->text == "closed 4000 " + std::string(protocol::close_reason::ping_timeout));
    BOOST_TEST(frozen.wait(5s).value_or(-1) == 0, "the resumed client exits after the close");

    // The live client keeps receiving for two more ping timeouts: it was never evicted.
    while (std::chrono::steady_clock::now() - live_since < 2 * ping_timeout)
        BOOST_REQUIRE_MESSAGE(live.wait_for_line("wisdom", 2s), "the live client stopped receiving:\n"
                                                                    << live.tail());
    BOOST_TEST(connections_of(port) == 1);
    std::string evictions;
    for (auto const& line : server.lines())
        if (logged_event(line.text) == "evict") evictions += line.text + '\n';
    BOOST_TEST(evictions.find(live_id) == std::string::npos, evictions);
    BOOST_TEST(live.running());
}
