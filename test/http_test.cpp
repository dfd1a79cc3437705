#define BOOST_TEST_MODULE http
#include "broadcaster.hpp"
#include "common/clients.hpp"
#include "common/process.hpp"
#include "common/test_server.hpp"
#include "http_session.hpp"
#include "protocol.hpp"
#include "shard.hpp"
#include "support/async.hpp"

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace wolf;
using namespace wolf::test;

namespace {

/** A request with the given method and target; returns the response. */
net::awaitable<http::response<http::string_body>> request(server& srv, http::verb method,
                                                          std::string target) {
    co_return co_await http_request(srv.port(), method, std::move(target));
}

std::string header(http::response<http::string_body> const& res, http::field field) {
    return std::string(res[field]);
}

} // namespace

BOOST_AUTO_TEST_SUITE(static_files)

BOOST_AUTO_TEST_CASE(the_ui_is_served_at_the_root_and_index_html) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        for (auto target : {"/", "/index.html", "/?utm=1"}) {
            auto const res = co_await request(srv, http::verb::get, target);
            BOOST_TEST(res.result_int() == 200u, target);
            BOOST_TEST(header(res, http::field::content_type) == "text/html; charset=utf-8");
            BOOST_TEST(res.body().find("<html") != std::string::npos);
            BOOST_TEST(res.body().find("/app.js") != std::string::npos);
        }
    });
}

BOOST_AUTO_TEST_CASE(the_uis_other_files_have_their_content_types) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        std::pair<char const*, char const*> const files[] = {{"/app.js", "text/javascript; charset=utf-8"},
                                                             {"/style.css", "text/css; charset=utf-8"},
                                                             {"/favicon.svg", "image/svg+xml"}};
        for (auto const& [target, type] : files) {
            auto const res = co_await request(srv, http::verb::get, target);
            BOOST_TEST(res.result_int() == 200u, target);
            BOOST_TEST(header(res, http::field::content_type) == type);
            BOOST_TEST(!res.body().empty());
        }
    });
}

BOOST_AUTO_TEST_CASE(head_has_the_same_headers_and_no_body) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        for (auto target : {"/", "/app.js", "/healthz", "/metrics"}) {
            auto const get = co_await request(srv, http::verb::get, target);
            auto const head = co_await request(srv, http::verb::head, target);
            BOOST_TEST(head.result_int() == 200u, target);
            BOOST_TEST(head.body().empty());
            BOOST_TEST(header(head, http::field::content_type) == header(get, http::field::content_type));
            if (std::string_view(target) == "/" || std::string_view(target) == "/app.js")
                BOOST_TEST(header(head, http::field::content_length) == std::to_string(get.body().size()));
        }
        // A raw HEAD: the server must not send body bytes after the headers.
        auto const raw =
            co_await raw_exchange(srv.port(), "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        BOOST_TEST(raw.substr(raw.find("\r\n\r\n") + 4).empty());
    });
}

BOOST_AUTO_TEST_CASE(assets_can_be_served_from_a_directory_without_following_symlinks) {
    namespace fs = std::filesystem;
    auto const dir = fs::temp_directory_path() / "wolf-assets-test";
    fs::remove_all(dir);
    fs::create_directories(dir / "sub");
    std::ofstream(dir / "index.html") << "<html>from disk</html>";
    std::ofstream(dir / "sub" / "hidden.js") << "nested";
    std::ofstream(dir / ".secret") << "dot file";
    fs::create_symlink("/etc/passwd", dir / "passwd.txt");

    auto cfg = fast_config();
    auto store = asset_store::from_directory(dir);
    BOOST_REQUIRE(std::holds_alternative<asset_store>(store));
    BOOST_TEST(std::get<asset_store>(store).contains("index.html"));
    BOOST_TEST(!std::get<asset_store>(store).contains("passwd.txt"));
    BOOST_TEST(!std::get<asset_store>(store).contains(".secret"));
    BOOST_TEST(!std::get<asset_store>(store).contains("sub"));
    auto const body = std::get<asset_store>(store).read("index.html");
    BOOST_REQUIRE(body.has_value());
    BOOST_TEST(*body == "<html>from disk</html>");
    BOOST_TEST(std::holds_alternative<std::string>(asset_store::from_directory(dir / "missing")));
    fs::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(routes)

BOOST_AUTO_TEST_CASE(healthz_reports_open_connections_and_subscribers) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto a = co_await ws_client::open(srv.port());
        auto b = co_await ws_client::open(srv.port());
        co_await a.connect_and_subscribe();
        auto const res = co_await request(srv, http::verb::get, "/healthz");
        BOOST_TEST(res.result_int() == 200u);
        BOOST_TEST(header(res, http::field::content_type) == "application/json");
        auto const body = boost::json::parse(res.body()).as_object();
        BOOST_TEST(body.at("status").as_string() == "ok");
        BOOST_TEST(body.at("connections").to_number<int>() == 2);
        BOOST_TEST(body.at("subscribers").to_number<int>() == 1);
    });
}

// RFC 9112 section 3.2.2: a server must accept a request target in absolute form, as a proxy sends it.
BOOST_AUTO_TEST_CASE(a_target_in_absolute_form_is_served_like_its_origin_form) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto const authority = "127.0.0.1:" + std::to_string(srv.port());
        auto const health = co_await request(srv, http::verb::get, "http://" + authority + "/healthz");
        BOOST_TEST(health.result_int() == 200u);
        BOOST_TEST(boost::json::parse(health.body()).at("status").as_string() == "ok");
        auto const ui = co_await request(srv, http::verb::get, "HTTP://" + authority);
        BOOST_TEST(ui.result_int() == 200u, "no path is the root");
        BOOST_TEST(header(ui, http::field::content_type).starts_with("text/html"));
        auto const query = co_await request(srv, http::verb::get, "https://" + authority + "?x=1");
        BOOST_TEST(query.result_int() == 200u);
        auto const missing = co_await request(srv, http::verb::get, "http://" + authority + "/nothing-here");
        BOOST_TEST(missing.result_int() == 404u);
        auto const other = co_await request(srv, http::verb::get, "ftp://" + authority + "/healthz");
        BOOST_TEST(other.result_int() == 404u, "only http and https name this server");
    });
}

BOOST_AUTO_TEST_CASE(metrics_are_prometheus_text) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto const res = co_await request(srv, http::verb::get, "/metrics");
        BOOST_TEST(res.result_int() == 200u);
        BOOST_TEST(header(res, http::field::content_type).starts_with("text/plain; version=0.0.4"));
        for (auto name : {"wolf_connections ", "wolf_subscribers ", "wolf_connections_total ",
                          "wolf_broadcast_ticks_total ", "wolf_wisdom_sent_total ",
                          "wolf_wisdom_dropped_total ", "wolf_evictions_total{reason=\"slow_consumer\"} ",
                          "wolf_protocol_errors_total{code=\"bad_message\"} "})
            BOOST_TEST(res.body().find(name) != std::string::npos, name);
    });
}

BOOST_AUTO_TEST_CASE(metrics_after_some_activity_pass_promtool_check_metrics) {
    auto const promtool = find_program("promtool");
    BOOST_REQUIRE_MESSAGE(!promtool.empty(), "promtool is not installed (Debian package prometheus): run "
                                             "scripts/install-deps --test");
    std::string body;
    run_with_server(fast_config(), [&](server& srv) -> net::awaitable<void> {
        auto stays = co_await ws_client::open(srv.port());
        co_await stays.connect_and_subscribe();
        auto leaves = co_await ws_client::open(srv.port());
        co_await leaves.send_text("not json"); // a protocol error
        co_await leaves.read_until(protocol::event::error);
        broadcast_message message{"A metric a day keeps the shepherd away.",
                                  broadcast_message::origin::publish};
        BOOST_REQUIRE(co_await srv.broadcast().publish(std::move(message)));
        co_await stays.read_until(protocol::event::wisdom_distribution);
        co_await leaves.close();
        std::function<bool()> const session_observed = [&] {
            return srv.stats().session_duration.count() == 1;
        };
        BOOST_REQUIRE(co_await eventually(session_observed, 5s));

        auto const res = co_await request(srv, http::verb::get, "/metrics");
        BOOST_TEST(res.result_int() == 200u);
        body = res.body();
    });
    BOOST_TEST(body.find("\nwolf_broadcast_duration_seconds_count 1\n") != std::string::npos, body);
    BOOST_TEST(body.find("\nwolf_session_duration_seconds_count 1\n") != std::string::npos, body);
    BOOST_TEST(body.find("\nprocess_resident_memory_bytes ") != std::string::npos, body);

    auto const path = std::filesystem::temp_directory_path() / ("wolf-metrics-" + std::to_string(::getpid()));
    std::ofstream(path, std::ios::binary) << body;
    auto const result = run_command({promtool, "check", "metrics"}, std::chrono::seconds(30), path.string());
    std::filesystem::remove(path);
    BOOST_TEST(result.exit_code == 0, "promtool check metrics: " << result.output);
    BOOST_TEST(result.output.empty(), "promtool check metrics: " << result.output);
}

BOOST_AUTO_TEST_CASE(ws_without_an_upgrade_is_426) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto const res = co_await request(srv, http::verb::get, "/ws");
        BOOST_TEST(res.result_int() == 426u);
        BOOST_TEST(header(res, http::field::upgrade) == "websocket");
    });
}

BOOST_AUTO_TEST_CASE(an_upgrade_on_another_path_is_404) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        BOOST_TEST(co_await ws_client::try_handshake(srv.port(), "/chat") == 404u);
        BOOST_TEST(co_await ws_client::try_handshake(srv.port(), "/index.html") == 404u);
        BOOST_TEST(co_await ws_client::try_handshake(srv.port(), "/ws?room=1") == 101u);
    });
}

BOOST_AUTO_TEST_CASE(unknown_paths_are_404_for_any_method) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        for (auto method : {http::verb::get, http::verb::head, http::verb::post, http::verb::delete_})
            BOOST_TEST((co_await request(srv, method, "/nope")).result_int() == 404u);
        BOOST_TEST((co_await request(srv, http::verb::get, "/quotes.txt")).result_int() == 404u,
                   "the quote deck is not a UI file");
    });
}

BOOST_AUTO_TEST_CASE(known_paths_with_another_method_are_405_with_allow) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        for (auto target : {"/", "/index.html", "/app.js", "/healthz", "/metrics", "/ws"}) {
            for (auto method :
                 {http::verb::post, http::verb::put, http::verb::delete_, http::verb::options}) {
                auto const res = co_await request(srv, method, target);
                BOOST_TEST(res.result_int() == 405u, target << ' ' << http::to_string(method));
                BOOST_TEST(header(res, http::field::allow) == "GET, HEAD");
            }
        }
    });
}

BOOST_AUTO_TEST_CASE(no_path_reaches_a_file_outside_the_ui) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        for (auto target : {"/../../../../etc/passwd", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd",
                            "//etc/passwd", "/./index.html", "/assets/index.html", "/index.html/..",
                            "/..\\..\\etc\\passwd", "/app.js%00.html", "/CMakeLists.txt", "/source/main.cpp",
                            "/.git/config", "/proc/self/environ"}) {
            auto const res =
                co_await raw_exchange(srv.port(), std::string("GET ") + target +
                                                      " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            BOOST_TEST((res.starts_with("HTTP/1.1 404") || res.starts_with("HTTP/1.1 400")),
                       target << ": " << res.substr(0, 20));
            BOOST_TEST(res.find("root:") == std::string::npos);
        }
    });
}

BOOST_AUTO_TEST_CASE(keep_alive_serves_several_requests_on_one_connection) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto const raw = co_await raw_exchange(
            srv.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        BOOST_TEST(raw.find("HTTP/1.1 200") == 0u);
        BOOST_TEST(raw.find("HTTP/1.1 404") != std::string::npos);
        BOOST_TEST(raw.rfind("HTTP/1.1 200") > raw.find("HTTP/1.1 404"));
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(malformed_requests)

BOOST_AUTO_TEST_CASE(garbage_gets_400_and_oversized_headers_431) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        BOOST_TEST((co_await raw_exchange(srv.port(), "HELLO\r\n\r\n")).starts_with("HTTP/1.1 400"));
        BOOST_TEST((co_await raw_exchange(srv.port(), "GET / HTTP/1.1\r\nNo colon here\r\n\r\n"))
                       .starts_with("HTTP/1.1 400"));
        std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
        BOOST_TEST((co_await raw_exchange(srv.port(), big)).starts_with("HTTP/1.1 431"));
        std::string body =
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n" + std::string(20000, 'b');
        BOOST_TEST((co_await raw_exchange(srv.port(), body)).starts_with("HTTP/1.1 413"));
    });
}

BOOST_AUTO_TEST_CASE(bad_upgrade_headers_are_refused_without_an_upgrade) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        // No Sec-WebSocket-Key: Beast answers 400 and no session is created.
        auto const res = co_await raw_exchange(
            srv.port(), "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n");
        BOOST_TEST(res.starts_with("HTTP/1.1 400"), res.substr(0, 30));
        BOOST_TEST(res.find("\r\nContent-Type: text/plain; charset=utf-8\r\n") != std::string::npos, res);
        BOOST_TEST(res.ends_with("Sec-WebSocket-Key field is missing"), res);
        // Another version: 426 naming the one the server speaks.
        auto const version = co_await raw_exchange(
            srv.port(), "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
        BOOST_TEST(version.starts_with("HTTP/1.1 426"), version.substr(0, 30));
        BOOST_TEST(version.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos, version);
        BOOST_TEST(srv.connections().connections() == 0u);
        BOOST_TEST(srv.stats().connections_total == 0u);
    });
}

BOOST_AUTO_TEST_CASE(a_slow_request_is_closed_after_the_handshake_timeout) {
    auto cfg = fast_config();
    cfg.handshake_timeout = 300ms;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        // An unfinished request: the server closes the connection without a response.
        auto const started = std::chrono::steady_clock::now();
        auto const res = co_await raw_exchange(srv.port(), "GET / HTTP/1.1\r\nHost: x\r\n");
        BOOST_TEST(res.empty());
        BOOST_TEST((std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(250)));
        BOOST_TEST(srv.stats().http_timeouts_total == 1u);
    });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(readiness)

BOOST_AUTO_TEST_CASE(readyz_is_200_while_serving) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto const res = co_await request(srv, http::verb::get, "/readyz");
        BOOST_TEST(res.result_int() == 200u);
        BOOST_TEST(header(res, http::field::content_type) == "application/json");
        BOOST_TEST(header(res, http::field::cache_control) == "no-store");
        BOOST_TEST(boost::json::parse(res.body()).at("status").as_string() == "ready");
        auto const wrong = co_await request(srv, http::verb::post, "/readyz");
        BOOST_TEST(wrong.result_int() == 405u);
    });
}

// Before the listener is up and once shutdown begins no new connection can ask, so the answer for those
// states is checked on the route itself (a request already being answered sees exactly this).
BOOST_AUTO_TEST_CASE(readyz_is_503_before_listening_and_while_shutting_down) {
    server_state state(fast_config(), asset_store::embedded());
    http::request<http::string_body> req{http::verb::get, "/readyz", 11};
    auto const status_of = [&] {
        auto generator = handle_request(req, state);
        std::string bytes;
        beast::error_code ec;
        while (!generator.is_done()) {
            auto const buffers = generator.prepare(ec);
            BOOST_REQUIRE(!ec);
            for (auto const& buffer : buffers)
                bytes.append(static_cast<char const*>(buffer.data()), buffer.size());
            generator.consume(beast::buffer_bytes(buffers));
        }
        http::response_parser<http::string_body> parser;
        parser.eager(true);
        parser.put(net::buffer(bytes), ec);
        BOOST_REQUIRE(!ec && parser.is_done());
        return std::pair{parser.get().result_int(),
                         std::string(boost::json::parse(parser.get().body()).at("status").as_string())};
    };
    BOOST_TEST((status_of() == std::pair{503u, std::string("starting")}));
    state.listening = true;
    BOOST_TEST((status_of() == std::pair{200u, std::string("ready")}));
    state.shutting_down = true;
    BOOST_TEST((status_of() == std::pair{503u, std::string("shutting_down")}));
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

constexpr char admin_token[] = "test-admin-token-0123456789";

config admin_config() {
    auto cfg = fast_config();
    cfg.admin_token = admin_token;
    return cfg;
}

header_list bearer(std::string token) {
    return {{http::field::authorization, "Bearer " + std::move(token)}};
}

net::awaitable<http::response<http::string_body>> post_wisdom(server& srv, std::string body,
                                                              header_list headers = bearer(admin_token)) {
    co_return co_await http_request(srv.port(), http::verb::post, "/api/wisdom", std::move(body),
                                    std::move(headers));
}

std::string error_of(http::response<http::string_body> const& res) {
    auto const body = boost::json::parse(res.body());
    auto const* error = body.as_object().if_contains("error");
    return error && error->is_string() ? std::string(error->as_string()) : std::string();
}

} // namespace

BOOST_AUTO_TEST_SUITE(admin_api)

BOOST_AUTO_TEST_CASE(without_a_token_the_api_does_not_exist) {
    run_with_server(fast_config(), [](server& srv) -> net::awaitable<void> {
        auto const publish = co_await post_wisdom(srv, R"({"message":"hello"})");
        BOOST_TEST(publish.result_int() == 404u);
        auto const stats = co_await http_request(srv.port(), http::verb::get, "/api/stats", {}, bearer(""));
        BOOST_TEST(stats.result_int() == 404u);
    });
}

BOOST_AUTO_TEST_CASE(a_published_message_reaches_every_subscriber_through_the_broadcaster) {
    run_with_server(admin_config(), [](server& srv) -> net::awaitable<void> {
        auto a = co_await ws_client::open(srv.port());
        auto b = co_await ws_client::open(srv.port());
        auto idle = co_await ws_client::open(srv.port());
        co_await a.connect_and_subscribe();
        co_await b.connect_and_subscribe();
        co_await idle.send_event("connect");

        auto const res =
            co_await post_wisdom(srv, R"({"message":"Operators howl too. \"Quoted\" and ünïcode."})");
        BOOST_TEST(res.result_int() == 202u);
        BOOST_TEST(header(res, http::field::content_type) == "application/json");
        auto const body = boost::json::parse(res.body());
        BOOST_TEST(body.at("status").as_string() == "accepted");
        BOOST_TEST(body.at("subscribers").to_number<int>() == 2);

        std::vector<ws_client*> const subscribers = {&a, &b};
        for (auto* client : subscribers) {
            auto const event = co_await client->read_until("wisdom_distribution");
            BOOST_TEST(payload_string(event, "message") == "Operators howl too. \"Quoted\" and ünïcode.");
        }
        BOOST_TEST(srv.stats().broadcast_ticks_total == 1u, "it went through the broadcaster");
        BOOST_TEST(srv.stats().wisdom_sent_total == 2u);
        auto const before_barrier = co_await idle.barrier();
        BOOST_TEST(before_barrier.empty(), "a connection that did not subscribe gets nothing");
    });
}

BOOST_AUTO_TEST_CASE(a_missing_or_wrong_token_is_401) {
    run_with_server(admin_config(), [](server& srv) -> net::awaitable<void> {
        std::string const token = admin_token;
        std::vector<header_list> const refused = {{},
                                                  bearer("wrong"),
                                                  bearer(token.substr(0, token.size() - 1)),
                                                  bearer(token + "x"),
                                                  bearer(""),
                                                  {{http::field::authorization, "Basic " + token}},
                                                  {{http::field::authorization, token}}};
        for (auto const& headers : refused) {
            auto const given = headers.empty() ? std::string("(none)") : headers.front().second;
            auto const res = co_await post_wisdom(srv, R"({"message":"nope"})", headers);
            BOOST_TEST(res.result_int() == 401u, given);
            // RFC 6750 section 3.1: invalid_token only for a wrong Bearer token; no header or another
            // scheme is only told which scheme to use.
            bool const bearer_given = given.size() > 7 && beast::iequals(given.substr(0, 7), "Bearer ");
            BOOST_TEST(header(res, http::field::www_authenticate) ==
                           (bearer_given ? R"(Bearer realm="wolf-wisdom", error="invalid_token")"
                                         : R"(Bearer realm="wolf-wisdom")"),
                       given);
            BOOST_TEST(
                error_of(res) ==
                    (bearer_given ? "invalid token" : "an Authorization: Bearer <token> header is required"),
                given);
            auto const stats = co_await http_request(srv.port(), http::verb::get, "/api/stats", {}, headers);
            BOOST_TEST(stats.result_int() == 401u);
        }
        BOOST_TEST(srv.stats().broadcast_ticks_total == 0u, "nothing was published");
        // The scheme is case-insensitive (RFC 9110).
        header_list const lowercase_scheme = {{http::field::authorization, "bearer " + token}};
        auto const lower = co_await post_wisdom(srv, R"({"message":"yes"})", lowercase_scheme);
        BOOST_TEST(lower.result_int() == 202u);
    });
}

BOOST_AUTO_TEST_CASE(bad_bodies_are_400_and_huge_ones_413) {
    auto cfg = admin_config();
    cfg.max_message_size = 100;
    run_with_server(cfg, [](server& srv) -> net::awaitable<void> {
        std::vector<std::pair<char const*, char const*>> const bad = {
            {"", "JSON object"},
            {"not json", "JSON object"},
            {R"(["message"])", "JSON object"},
            {R"({"message":"unterminated)", "JSON object"},
            {R"({"text":"wrong key"})", "must be a string"},
            {R"({"message":42})", "must be a string"},
            {R"({"message":null})", "must be a string"},
            {R"({"message":""})", "is empty"}};
        for (auto const& [body, error] : bad) {
            auto const res = co_await post_wisdom(srv, body);
            BOOST_TEST(res.result_int() == 400u, body);
            BOOST_TEST(error_of(res).find(error) != std::string::npos, body << " -> " << res.body());
        }
        auto const longest = co_await post_wisdom(srv, R"({"message":")" + std::string(100, 'a') + "\"}");
        BOOST_TEST(longest.result_int() == 202u);
        auto const over = co_await post_wisdom(srv, R"({"message":")" + std::string(101, 'a') + "\"}");
        BOOST_TEST(over.result_int() == 400u);
        BOOST_TEST(error_of(over).find("--max-message-size") != std::string::npos);
        auto const huge = co_await post_wisdom(srv, R"({"message":")" + std::string(17 * 1024, 'a') + "\"}");
        BOOST_TEST(huge.result_int() == 413u);
        BOOST_TEST(error_of(huge) == "the body is larger than 16 KiB", "the admin API's errors are JSON");
        BOOST_TEST(srv.stats().broadcast_ticks_total <= 1u, "only the valid message was published");
    });
}

BOOST_AUTO_TEST_CASE(other_methods_are_405) {
    run_with_server(admin_config(), [](server& srv) -> net::awaitable<void> {
        for (auto method : {http::verb::get, http::verb::head, http::verb::put, http::verb::delete_}) {
            auto const res =
                co_await http_request(srv.port(), method, "/api/wisdom", {}, bearer(admin_token));
            BOOST_TEST(res.result_int() == 405u);
            BOOST_TEST(header(res, http::field::allow) == "POST");
            if (method != http::verb::head) BOOST_TEST(error_of(res) == "this path answers only POST");
        }
        auto const res =
            co_await http_request(srv.port(), http::verb::post, "/api/stats", "{}", bearer(admin_token));
        BOOST_TEST(res.result_int() == 405u);
        BOOST_TEST(header(res, http::field::allow) == "GET, HEAD");
        BOOST_TEST(error_of(res) == "this path answers only GET, HEAD");
    });
}

BOOST_AUTO_TEST_CASE(stats_report_connections_subscribers_ticks_and_uptime) {
    run_with_server(admin_config(), [](server& srv) -> net::awaitable<void> {
        auto a = co_await ws_client::open(srv.port());
        auto b = co_await ws_client::open(srv.port());
        co_await a.connect_and_subscribe();
        auto const published = co_await post_wisdom(srv, R"({"message":"counted"})");
        BOOST_TEST(published.result_int() == 202u);
        co_await a.read_until("wisdom_distribution");

        auto const res =
            co_await http_request(srv.port(), http::verb::get, "/api/stats", {}, bearer(admin_token));
        BOOST_TEST(res.result_int() == 200u);
        BOOST_TEST(header(res, http::field::cache_control) == "no-store");
        auto const body = boost::json::parse(res.body()).as_object();
        BOOST_TEST(body.at("connections").to_number<int>() == 2);
        BOOST_TEST(body.at("subscribers").to_number<int>() == 1);
        BOOST_TEST(body.at("ticks").to_number<int>() == 1);
        BOOST_TEST(body.at("wisdom_sent").to_number<int>() == 1);
        auto const uptime = body.at("uptime_seconds").to_number<double>();
        BOOST_TEST((uptime >= 0 && uptime < 30));
    });
}

BOOST_AUTO_TEST_SUITE_END()
