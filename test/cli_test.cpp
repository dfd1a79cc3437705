#define BOOST_TEST_MODULE cli
// The real binary, as a user runs it: exit codes, one-line errors, startup and signal shutdown.
#include "common/binary.hpp"
#include "common/certificates.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"
#include "support/cpu_affinity.hpp"
#include "support/logger.hpp"
#include "version.hpp"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;

namespace {

std::string const binary = WOLF_BINARY;

/** Runs the binary with these arguments; checks exit code 2 and a single line naming `names`. */
void check_usage_error(std::vector<std::string> args, std::string_view names) {
    args.insert(args.begin(), binary);
    auto const result = run_command(args);
    BOOST_TEST(result.exit_code == 2, result.output);
    BOOST_TEST(result.output.find(names) != std::string::npos, result.output);
    BOOST_TEST(std::count(result.output.begin(), result.output.end(), '\n') == 1, result.output);
}

/** A WebSocket client connected to 127.0.0.1:port, with `initial` read; returns the stream and the id. */
std::pair<std::unique_ptr<websocket::stream<beast::tcp_stream>>, std::string>
open_client(net::io_context& ioc, std::uint16_t port) {
    auto ws = std::make_unique<websocket::stream<beast::tcp_stream>>(ioc);
    beast::get_lowest_layer(*ws).connect(net::ip::tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
    ws->handshake("127.0.0.1", "/ws");
    beast::flat_buffer buffer;
    ws->read(buffer);
    auto const initial = beast::buffers_to_string(buffer.data());
    BOOST_REQUIRE(initial.find(protocol::event::initial) != std::string::npos);
    return {std::move(ws), initial.substr(initial.find("\"id\":\"") + 6, 36)};
}

/** What a client sends that ends up in the log: its close reason. The newline must not start a line. */
constexpr std::string_view forged_close_reason = "bye\nforged line";

/**
 * Has a client connect, subscribe, send an invalid event, receive a broadcast and close with
 * `forged_close_reason`; then stops the server with SIGTERM and returns every line it wrote.
 */
std::vector<std::string> exercise_and_stop(child_process& server, std::uint16_t port) {
    {
        net::io_context ioc;
        auto [client, id] = open_client(ioc, port);
        auto& ws = *client;
        for (auto type : {"connect", "subscribe"})
            ws.write(
                net::buffer(std::string(R"({"type":")") + type + R"(","payload":{"id":")" + id + R"("}})"));
        ws.write(net::buffer(std::string(R"({"type":"subscribe"})"))); // bad_message: no payload
        beast::flat_buffer buffer;
        std::string frame;
        while (frame.find(protocol::event::wisdom_distribution) == std::string::npos) {
            buffer.clear();
            ws.read(buffer);
            frame = beast::buffers_to_string(buffer.data());
        }
        ws.close(websocket::close_reason(websocket::close_code::normal, forged_close_reason));
        for (;;) { // its closed line
            auto const line = server.wait_for_line(id, 5s);
            BOOST_REQUIRE_MESSAGE(line, server.output());
            if (line->text.find("closed") != std::string::npos) break;
        }
    }
    server.send_signal(SIGTERM);
    auto const status = server.wait(10s);
    BOOST_REQUIRE_MESSAGE(status.has_value(), "the server did not exit after SIGTERM");
    BOOST_TEST(*status == 0, server.output());
    std::vector<std::string> lines;
    for (auto& line : server.lines())
        lines.push_back(std::move(line.text));
    return lines;
}

std::string_view view(boost::json::string const& text) {
    return {text.data(), text.size()};
}

/** "2026-11-26T09:31:02.123Z". */
bool is_timestamp(std::string_view text) {
    return text.size() == 24 && text[4] == '-' && text[10] == 'T' && text[19] == '.' && text[23] == 'Z';
}

} // namespace

BOOST_AUTO_TEST_CASE(help_and_version_exit_0) {
    auto const help = run_command({binary, "--help"});
    BOOST_TEST(help.exit_code == 0);
    BOOST_TEST(help.output.find("--ping-timeout") != std::string::npos);
    auto const version = run_command({binary, "--version"});
    BOOST_TEST(version.exit_code == 0);
    BOOST_TEST(version.output == "wolf-wisdom " WOLF_VERSION "\n");
}

BOOST_AUTO_TEST_CASE(bad_command_lines_exit_2_with_one_line) {
    check_usage_error({"--port", "70000"}, "--port");
    check_usage_error({"--interval", "0"}, "--interval");
    check_usage_error({"--frobnicate"}, "--frobnicate");
    check_usage_error({"--quotes", "/nonexistent/quotes.txt"}, "/nonexistent/quotes.txt");
    check_usage_error({"--assets", "/nonexistent/ui"}, "--assets");
    check_usage_error({"--host", "no such host.invalid"}, "--host");
}

BOOST_AUTO_TEST_CASE(an_empty_quotes_file_exits_2) {
    temp_file const quotes("cli-empty-quotes.txt", "# nothing here\n\n   \n");
    check_usage_error({"--quotes", quotes.path}, "no quotes");
}

BOOST_AUTO_TEST_CASE(a_port_in_use_exits_1_naming_the_address) {
    net::io_context ioc;
    net::ip::tcp::acceptor taken(ioc, {net::ip::make_address("127.0.0.1"), 0});
    auto const port = std::to_string(taken.local_endpoint().port());
    auto const result = run_command({binary, "--host", "127.0.0.1", "--port", port});
    BOOST_TEST(result.exit_code == 1, result.output);
    BOOST_TEST(result.output.find("127.0.0.1:" + port) != std::string::npos, result.output);
    BOOST_TEST(std::count(result.output.begin(), result.output.end(), '\n') == 1, result.output);
}

BOOST_AUTO_TEST_CASE(a_port_another_server_listens_on_with_every_thread_is_in_use_too) {
    // Each thread has a listener with SO_REUSEPORT; a second server of the same user must not join them.
    child_process first({binary, "--host", "127.0.0.1", "--port", "0", "--threads", "2"});
    auto const port = std::to_string(wait_until_listening(first));
    auto const second = run_command({binary, "--host", "127.0.0.1", "--port", port, "--threads", "2"});
    BOOST_TEST(second.exit_code == 1, second.output);
    BOOST_TEST(second.output.find("cannot listen on 127.0.0.1:" + port) != std::string::npos, second.output);
    auto const single = run_command({binary, "--host", "127.0.0.1", "--port", port, "--threads", "1"});
    BOOST_TEST(single.exit_code == 1, single.output);
}

BOOST_AUTO_TEST_CASE(sigterm_closes_connections_with_1001_and_exits_0) {
    child_process server({binary, "--host", "127.0.0.1", "--port", "0", "--interval", "100ms"});
    auto const port = wait_until_listening(server);

    net::io_context ioc;
    auto [client, id] = open_client(ioc, port);
    auto& ws = *client;
    beast::flat_buffer buffer;

    BOOST_REQUIRE(server.wait_for_line("tick", 5s)); // the broadcaster runs with nobody subscribed
    server.send_signal(SIGTERM);
    beast::error_code ec;
    for (;;) {
        buffer.clear();
        ws.read(buffer, ec);
        if (ec) break;
    }
    BOOST_TEST((ec == websocket::error::closed), ec.message());
    BOOST_TEST(ws.reason().code == protocol::close_code::going_away);
    auto const status = server.wait(10s);
    BOOST_REQUIRE_MESSAGE(status.has_value(), "the server did not exit after SIGTERM");
    BOOST_TEST(*status == 0, server.output());
}

BOOST_AUTO_TEST_CASE(sigint_with_no_connections_exits_0_at_once) {
    child_process server({binary, "--host", "127.0.0.1", "--port", "0"});
    wait_until_listening(server);
    auto const started = std::chrono::steady_clock::now();
    server.send_signal(SIGINT);
    auto const status = server.wait(10s);
    BOOST_REQUIRE(status.has_value());
    BOOST_TEST(*status == 0);
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2s),
               "no grace period is spent with nobody to close");
}

// --threads 2 with --cpu-affinity (the default): the main thread and the server's own thread each keep a CPU
// of their own, two different ones (where the process may use two).
BOOST_AUTO_TEST_CASE(two_threads_keep_a_cpu_each) {
    auto const allowed = allowed_cpus();
    child_process server({binary, "--host", "127.0.0.1", "--port", "0", "--threads", "2"});
    wait_until_listening(server);
    // The main thread is placed after "listening" (start() has made the other thread by then).
    if (allowed.size() >= 2) BOOST_REQUIRE(server.wait_for_line("cpu_affinity", 5s));
    std::vector<std::string> placements;
    for (auto const& [tid, cpus] : cpus_of_threads(std::to_string(server.pid())))
        placements.push_back(cpus);
    BOOST_REQUIRE(placements.size() == 2u);
    if (allowed.size() >= 2) {
        std::set<std::string> const expected{std::to_string(allowed[0]), std::to_string(allowed[1])};
        BOOST_TEST((std::set<std::string>(placements.begin(), placements.end()) == expected),
                   placements[0] << " and " << placements[1]);
    }
    server.send_signal(SIGTERM);
    BOOST_TEST(server.wait(10s).value_or(-1) == 0);
}

BOOST_AUTO_TEST_CASE(a_custom_quotes_file_is_broadcast) {
    temp_file const quotes("cli-quotes.txt", "# one quote only\nThe only wolf in this file.\n");
    child_process server(
        {binary, "--host", "127.0.0.1", "--port", "0", "--interval", "50ms", "--quotes", quotes.path});
    auto const port = wait_until_listening(server);

    net::io_context ioc;
    auto [client, id] = open_client(ioc, port);
    auto& ws = *client;
    beast::flat_buffer buffer;
    for (auto type : {"connect", "subscribe"})
        ws.write(net::buffer(std::string(R"({"type":")") + type + R"(","payload":{"id":")" + id + R"("}})"));
    std::string wisdom;
    while (wisdom.find(protocol::event::wisdom_distribution) == std::string::npos) {
        buffer.clear();
        ws.read(buffer);
        wisdom = beast::buffers_to_string(buffer.data());
    }
    BOOST_TEST(wisdom.find("The only wolf in this file.") != std::string::npos, wisdom);
}

BOOST_AUTO_TEST_CASE(unusable_tls_files_exit_2_with_one_line_before_listening) {
    test_certificate const cert;
    auto const cert_file = cert.cert().string();
    auto const key_file = cert.key().string();
    auto const missing = (cert.dir() / "missing.pem").string();
    auto const garbage = (cert.dir() / "garbage.pem").string();
    std::ofstream(garbage) << "not a PEM file\n";
    auto const other_key = (cert.dir() / "other-key.pem").string();
    run_openssl(
        {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", other_key});

    check_usage_error({"--tls-cert", missing, "--tls-key", key_file},
                      "--tls-cert: cannot load '" + missing + "': ");
    check_usage_error({"--tls-cert", garbage, "--tls-key", key_file},
                      "--tls-cert: cannot load '" + garbage + "': ");
    check_usage_error({"--tls-cert", cert_file, "--tls-key", missing},
                      "--tls-key: cannot load '" + missing + "': ");
    check_usage_error({"--tls-cert", cert_file, "--tls-key", garbage},
                      "--tls-key: cannot load '" + garbage + "': ");
    check_usage_error({"--tls-cert", cert_file, "--tls-key", other_key},
                      "--tls-key: does not match --tls-cert");
    check_usage_error({"--tls-cert", cert_file}, "--tls-key");
}

BOOST_AUTO_TEST_CASE(unusable_redis_tls_files_exit_2_with_one_line_before_listening) {
    test_certificate const cert;
    auto const missing = (cert.dir() / "missing.pem").string();
    auto const garbage = (cert.dir() / "garbage.pem").string();
    std::ofstream(garbage) << "not a PEM file\n";
    std::string const tls_redis = "rediss://127.0.0.1:6390";
    check_usage_error({"--redis", tls_redis, "--redis-tls-ca", missing},
                      "--redis-tls-ca: cannot load '" + missing + "': ");
    check_usage_error({"--redis", tls_redis, "--redis-tls-ca", garbage},
                      "--redis-tls-ca: cannot load '" + garbage + "': ");
    check_usage_error(
        {"--redis", tls_redis, "--redis-tls-cert", cert.cert().string(), "--redis-tls-key", missing},
        "--redis-tls-key: cannot load '" + missing + "': ");
    check_usage_error({"--redis", "redis://127.0.0.1:6390", "--redis-tls-ca", cert.cert().string()},
                      "--redis-tls-ca is for a TLS Redis (--redis rediss://...)");
}

BOOST_AUTO_TEST_CASE(tls_flags_make_the_port_serve_https) {
    test_certificate const cert;
    child_process server({binary, "--host", "127.0.0.1", "--port", "0", "--tls-cert", cert.cert().string(),
                          "--tls-key", cert.key().string()});
    auto const port = wait_until_listening(server, "https");

    net::io_context ioc;
    auto client_context = cert.client_context();
    auto const get_healthz = [&]() -> net::awaitable<void> {
        auto const res = co_await https_request(port, client_context, http::verb::get, "/healthz");
        BOOST_TEST(res.result_int() == 200u);
    };
    run_to_completion(ioc, get_healthz(), 10s);
}

BOOST_AUTO_TEST_CASE(text_logs_are_one_event_per_line_even_with_a_newline_in_a_client_value) {
    child_process server({binary, "--host", "127.0.0.1", "--port", "0", "--interval", "50ms", "--log-level",
                          "debug", "--log-format", "text"});
    auto const port = wait_until_listening(server);
    auto const lines = exercise_and_stop(server, port);

    std::set<std::string> events;
    bool saw_forged_reason = false;
    for (auto const& line : lines) {
        BOOST_REQUIRE_MESSAGE(line.size() > 25 && is_timestamp(std::string_view(line).substr(0, 24)), line);
        auto const event_at = line.find_first_not_of(' ', line.find(' ', 25));
        auto const event = line.substr(event_at, line.find(' ', event_at) - event_at);
        events.insert(event);
        if (event == "closed" && line.find(" reason=") != std::string::npos) {
            BOOST_TEST(line.find(R"( reason="bye\nforged line" )") != std::string::npos, line);
            saw_forged_reason = true;
        }
    }
    BOOST_TEST(saw_forged_reason);
    for (auto event : {"listening", "open", "connect", "subscribe", "protocol_error", "tick", "closed",
                       "signal", "shutting_down", "shutdown_complete"})
        BOOST_TEST(events.contains(event), event);
}

BOOST_AUTO_TEST_CASE(json_logs_are_one_object_per_line_with_typed_fields) {
    child_process server({binary, "--host", "127.0.0.1", "--port", "0", "--interval", "50ms", "--log-level",
                          "debug", "--log-format", "json"});
    auto const listening = server.wait_for_line(R"("event":"listening")", 10s);
    BOOST_REQUIRE_MESSAGE(listening, "the server did not start: " << server.output());
    auto const announced = boost::json::parse(listening->text).as_object();
    BOOST_REQUIRE(announced.at("port").is_int64() || announced.at("port").is_uint64());
    auto const port = announced.at("port").to_number<std::uint16_t>();
    BOOST_TEST(std::string(view(announced.at("url").as_string())) ==
               "http://127.0.0.1:" + std::to_string(port));
    BOOST_TEST(announced.at("max_queue").is_number());
    auto const lines = exercise_and_stop(server, port);

    std::set<std::string> events;
    bool saw_forged_reason = false;
    for (auto const& line : lines) {
        boost::system::error_code ec;
        auto const parsed = boost::json::parse(line, ec);
        BOOST_REQUIRE_MESSAGE(!ec && parsed.is_object(), "not a JSON object: " << line);
        auto const& object = parsed.as_object();
        auto const* ts = object.if_contains("ts");
        auto const* level = object.if_contains("level");
        auto const* event = object.if_contains("event");
        BOOST_REQUIRE_MESSAGE(ts && ts->is_string() && is_timestamp(view(ts->as_string())), line);
        BOOST_REQUIRE_MESSAGE(level && level->is_string() && parse_log_level(view(level->as_string())), line);
        BOOST_REQUIRE_MESSAGE(event && event->is_string(), line);
        auto const name = std::string(view(event->as_string()));
        events.insert(name);
        if (name == "tick") {
            BOOST_TEST(object.at("number").is_number(), line);
            BOOST_TEST(object.at("recipients").is_number(), line);
            BOOST_TEST(object.at("fanout_us").is_number(), line);
        }
        if (auto const* reason = object.if_contains("reason"); name == "closed" && reason) {
            BOOST_TEST(view(reason->as_string()) == forged_close_reason, line);
            saw_forged_reason = true;
        }
    }
    BOOST_TEST(saw_forged_reason);
    for (auto event : {"listening", "open", "connect", "subscribe", "protocol_error", "tick", "closed",
                       "signal", "shutting_down", "shutdown_complete"})
        BOOST_TEST(events.contains(event), event);
}
