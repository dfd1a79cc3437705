#define BOOST_TEST_MODULE cli
// The real binary, as a user runs it: exit codes, one-line errors, startup and signal shutdown.
#include "async.hpp"
#include "protocol.hpp"
#include "support/certificates.hpp"
#include "support/child_process.hpp"
#include "support/clients.hpp"
#include "support/test_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>

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

/** Starts the server on a free port and returns the port it logged (with its scheme, http or https). */
std::uint16_t wait_until_listening(child_process& server, std::string_view scheme = "http") {
    auto const line = server.wait_for_line("listening on", 10s);
    BOOST_REQUIRE_MESSAGE(line, "the server did not start: " << server.output());
    auto const prefix = std::string(scheme) + "://127.0.0.1:";
    auto const at = line->find(prefix);
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, *line);
    return static_cast<std::uint16_t>(std::stoi(line->substr(at + prefix.size())));
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

std::filesystem::path write_temp(std::string const& name, std::string const& contents) {
    auto const path = std::filesystem::temp_directory_path() / name;
    std::ofstream(path) << contents;
    return path;
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
    auto const path = write_temp("wolf-cli-empty-quotes.txt", "# nothing here\n\n   \n");
    check_usage_error({"--quotes", path.string()}, "no quotes");
    std::filesystem::remove(path);
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

BOOST_AUTO_TEST_CASE(a_custom_quotes_file_is_broadcast) {
    auto const path = write_temp("wolf-cli-quotes.txt", "# one quote only\nThe only wolf in this file.\n");
    child_process server(
        {binary, "--host", "127.0.0.1", "--port", "0", "--interval", "50ms", "--quotes", path.string()});
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
    std::filesystem::remove(path);
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
