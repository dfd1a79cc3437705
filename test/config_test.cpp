#define BOOST_TEST_MODULE config
#include "config.hpp"
#include "version.hpp"

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace wolf;
using namespace std::chrono_literals;
namespace data = boost::unit_test::data;

namespace {

cli_result parse(std::vector<std::string> args) {
    args.insert(args.begin(), "wolf-wisdom");
    std::vector<char const*> argv;
    for (auto const& arg : args)
        argv.push_back(arg.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

/** The settings of the command-line tests, each as `want` has it. */
void check_settings(config const& cfg, config const& want) {
    BOOST_TEST(cfg.host == want.host);
    BOOST_TEST(cfg.port == want.port);
    BOOST_TEST(cfg.interval.count() == want.interval.count());
    BOOST_TEST(cfg.ping_timeout.count() == want.ping_timeout.count());
    BOOST_TEST(cfg.quotes_file == want.quotes_file);
    BOOST_TEST(cfg.assets_dir == want.assets_dir);
    BOOST_TEST(cfg.max_connections == want.max_connections);
    BOOST_TEST(cfg.max_queue == want.max_queue);
    BOOST_TEST(cfg.max_message_size == want.max_message_size);
    BOOST_TEST(cfg.max_errors == want.max_errors);
    BOOST_TEST(cfg.handshake_timeout.count() == want.handshake_timeout.count());
    BOOST_TEST(cfg.write_timeout.count() == want.write_timeout.count());
    BOOST_TEST(cfg.threads == want.threads);
    BOOST_TEST(cfg.cpu_affinity == want.cpu_affinity);
    BOOST_TEST((cfg.level == want.level));
}

/** A bad command line: exit code 2 and exactly one line naming the problem. */
void check_rejected(std::vector<std::string> args, std::string_view names) {
    auto const result = parse(args);
    BOOST_TEST(!result.cfg.has_value());
    BOOST_TEST(result.exit_code == 2);
    BOOST_TEST(result.output.find(names) != std::string::npos, "'" << result.output << "' names " << names);
    BOOST_TEST(std::count(result.output.begin(), result.output.end(), '\n') == 1);
}

} // namespace

BOOST_AUTO_TEST_SUITE(durations)

BOOST_AUTO_TEST_CASE(units_and_bare_seconds) {
    BOOST_TEST(parse_duration("250ms")->count() == 250);
    BOOST_TEST(parse_duration("5s")->count() == 5000);
    BOOST_TEST(parse_duration("1m")->count() == 60000);
    BOOST_TEST(parse_duration("2h")->count() == 7'200'000);
    BOOST_TEST(parse_duration("5")->count() == 5000);
    BOOST_TEST(parse_duration("1.5s")->count() == 1500);
    BOOST_TEST(parse_duration("0.25")->count() == 250);
}

static char const* const bad_durations[] = {"0",     "0s",  "0ms", "-1",    "-5s",  "",           "s",
                                            "ms",    "5 s", " 5s", "5S",    "5sec", "1d",         "abc",
                                            "1..5s", ".5s", "5.",  "0.1ms", "1e3",  "9999999999h"};

BOOST_DATA_TEST_CASE(zero_negative_and_malformed_are_rejected, data::make(bad_durations), text) {
    BOOST_TEST(!parse_duration(text).has_value(), "'" << text << "'");
}

BOOST_AUTO_TEST_CASE(format_reads_back) {
    for (auto d : {duration{250}, duration{5000}, duration{60000}, duration{1500}})
        BOOST_TEST(parse_duration(format_duration(d))->count() == d.count());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(command_line)

BOOST_AUTO_TEST_CASE(defaults_are_the_contracts) {
    auto const result = parse({});
    BOOST_REQUIRE(result.cfg.has_value());
    auto const& cfg = *result.cfg;
    check_settings(cfg, {.host = "0.0.0.0",
                         .port = 8000,
                         .interval = 5s,
                         .ping_timeout = 15s,
                         .quotes_file = "",
                         .assets_dir = "",
                         .max_connections = 10000,
                         .max_queue = 64,
                         .max_message_size = 4096,
                         .max_errors = 20,
                         .handshake_timeout = 10s,
                         .write_timeout = 30s,
                         .threads = 0, // auto: one per core
                         .cpu_affinity = true,
                         .level = log_level::info});
    BOOST_TEST(thread_count(cfg) >= 1u);
}

BOOST_AUTO_TEST_CASE(every_flag_is_read) {
    auto const result = parse({"--host",
                               "127.0.0.1",
                               "--port",
                               "9001",
                               "--interval",
                               "250ms",
                               "--ping-timeout",
                               "1m",
                               "--quotes",
                               "q.txt",
                               "--assets",
                               "ui",
                               "--max-connections",
                               "5",
                               "--max-queue",
                               "8",
                               "--max-message-size",
                               "1024",
                               "--max-errors",
                               "3",
                               "--handshake-timeout",
                               "2s",
                               "--write-timeout",
                               "500ms",
                               "--threads",
                               "3",
                               "--cpu-affinity",
                               "off",
                               "--log-level",
                               "debug"});
    BOOST_REQUIRE(result.cfg.has_value());
    auto const& cfg = *result.cfg;
    check_settings(cfg, {.host = "127.0.0.1",
                         .port = 9001,
                         .interval = 250ms,
                         .ping_timeout = 1min,
                         .quotes_file = "q.txt",
                         .assets_dir = "ui",
                         .max_connections = 5,
                         .max_queue = 8,
                         .max_message_size = 1024,
                         .max_errors = 3,
                         .handshake_timeout = 2s,
                         .write_timeout = 500ms,
                         .threads = 3,
                         .cpu_affinity = false,
                         .level = log_level::debug});
    BOOST_TEST(thread_count(cfg) == 3u);
}

BOOST_AUTO_TEST_CASE(equals_syntax_works) {
    auto const result = parse({"--port=0", "--interval=2"});
    BOOST_REQUIRE(result.cfg.has_value());
    BOOST_TEST(result.cfg->port == 0);
    BOOST_TEST(result.cfg->interval.count() == 2000);
}

BOOST_AUTO_TEST_CASE(help_and_version_exit_zero_with_text) {
    auto const help = parse({"--help"});
    BOOST_TEST(!help.cfg.has_value());
    BOOST_TEST(help.exit_code == 0);
    for (auto flag : {"--host", "--port", "--interval", "--ping-timeout", "--quotes", "--assets",
                      "--max-connections", "--max-queue", "--max-message-size", "--max-errors",
                      "--handshake-timeout", "--write-timeout", "--log-level", "--version"})
        BOOST_TEST(help.output.find(flag) != std::string::npos, flag);

    auto const version = parse({"--version"});
    BOOST_TEST(version.exit_code == 0);
    BOOST_TEST(version.output == "wolf-wisdom " WOLF_VERSION "\n");
}

BOOST_AUTO_TEST_CASE(bad_values_exit_2_naming_the_flag) {
    check_rejected({"--port", "70000"}, "--port");
    check_rejected({"--port", "-1"}, "--port");
    check_rejected({"--port", "http"}, "--port");
    check_rejected({"--interval", "0"}, "--interval");
    check_rejected({"--interval", "-5s"}, "--interval");
    check_rejected({"--interval", "soon"}, "--interval");
    check_rejected({"--ping-timeout", "0ms"}, "--ping-timeout");
    check_rejected({"--max-connections", "0"}, "--max-connections");
    check_rejected({"--max-connections", "-1"}, "--max-connections");
    check_rejected({"--max-queue", "0"}, "--max-queue");
    check_rejected({"--max-message-size", "10"}, "--max-message-size");
    check_rejected({"--max-errors", "0"}, "--max-errors");
    check_rejected({"--handshake-timeout", "0s"}, "--handshake-timeout");
    check_rejected({"--write-timeout", "never"}, "--write-timeout");
    check_rejected({"--log-level", "loud"}, "--log-level");
    check_rejected({"--threads", "0"}, "--threads");
    check_rejected({"--threads", "257"}, "--threads");
    check_rejected({"--threads", "many"}, "--threads");
    check_rejected({"--cpu-affinity", "on"}, "--cpu-affinity");
    check_rejected({"--quotes", ""}, "--quotes");
    check_rejected({"--host", ""}, "--host");
}

BOOST_AUTO_TEST_CASE(tls_cert_and_key_go_together) {
    auto const both = parse({"--tls-cert", "cert.pem", "--tls-key", "key.pem"});
    BOOST_REQUIRE(both.cfg.has_value());
    BOOST_TEST(both.cfg->tls_cert == "cert.pem");
    BOOST_TEST(both.cfg->tls_key == "key.pem");
    auto const neither = parse({});
    BOOST_REQUIRE(neither.cfg.has_value());
    BOOST_TEST(neither.cfg->tls_cert.empty());
    check_rejected({"--tls-cert", "cert.pem"}, "--tls-key");
    check_rejected({"--tls-key", "key.pem"}, "--tls-cert");
}

BOOST_AUTO_TEST_CASE(unknown_flags_missing_values_and_stray_words_exit_2) {
    check_rejected({"--bogus"}, "--bogus");
    check_rejected({"--port"}, "--port");
    check_rejected({"serve"}, "positional");
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/** Sets (or unsets, with nullopt) environment variables for one test and restores them after. */
class scoped_environment {
public:
    scoped_environment(std::initializer_list<std::pair<char const*, std::optional<std::string>>> values) {
        for (auto const& [name, value] : values) {
            char const* old = std::getenv(name);
            saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
            if (value)
                ::setenv(name, value->c_str(), 1);
            else
                ::unsetenv(name);
        }
    }
    scoped_environment(scoped_environment const&) = delete;
    scoped_environment& operator=(scoped_environment const&) = delete;
    ~scoped_environment() {
        for (auto const& [name, value] : saved_)
            if (value)
                ::setenv(name.c_str(), value->c_str(), 1);
            else
                ::unsetenv(name.c_str());
    }

private:
    std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

/** A file with `text` in the temp directory, removed at the end of the test. */
class temp_file {
public:
    explicit temp_file(std::string_view text) {
        static int counter = 0;
        path_ = std::filesystem::temp_directory_path() /
                ("wolf-config-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".ini");
        std::ofstream(path_) << text;
    }
    temp_file(temp_file const&) = delete;
    temp_file& operator=(temp_file const&) = delete;
    ~temp_file() { std::filesystem::remove(path_); }
    std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

/** The line of --print-config output that sets `name` (or comments it out). */
std::string printed_line(std::string const& output, std::string const& name) {
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(name + " ") || line.starts_with("# " + name + " ")) return line;
    return {};
}

} // namespace

BOOST_AUTO_TEST_SUITE(sources)

BOOST_AUTO_TEST_CASE(precedence_is_flag_then_environment_then_file_then_default) {
    temp_file const file("port = 1001\ninterval = 3s\nmax-queue = 7\n");
    scoped_environment const env{
        {"WOLF_PORT", "1002"}, {"WOLF_INTERVAL", "4s"}, {"WOLF_MAX_QUEUE", std::nullopt}};

    auto const all = parse({"--config", file.path(), "--port", "1003"});
    BOOST_REQUIRE(all.cfg.has_value());
    BOOST_TEST(all.cfg->port == 1003);              // flag over environment and file
    BOOST_TEST(all.cfg->interval.count() == 4000);  // environment over file
    BOOST_TEST(all.cfg->max_queue == 7u);           // file over default
    BOOST_TEST(all.cfg->max_connections == 10000u); // default

    auto const no_flag = parse({"--config", file.path()});
    BOOST_REQUIRE(no_flag.cfg.has_value());
    BOOST_TEST(no_flag.cfg->port == 1002);
}

BOOST_AUTO_TEST_CASE(the_file_alone_and_wolf_config_name_it) {
    temp_file const file("# a comment\nport = 1004\nlog-level = warn   # trailing comment\nquotes = q.txt\n");
    scoped_environment const env{{"WOLF_PORT", std::nullopt}, {"WOLF_CONFIG", file.path()}};
    auto const result = parse({});
    BOOST_REQUIRE(result.cfg.has_value());
    BOOST_TEST(result.cfg->port == 1004);
    BOOST_TEST((result.cfg->level == log_level::warn));
    BOOST_TEST(result.cfg->quotes_file == "q.txt");
}

BOOST_AUTO_TEST_CASE(unrelated_wolf_variables_are_ignored) {
    scoped_environment const env{{"WOLF_NOT_A_SETTING", "1"}, {"WOLF_HELP", "1"}, {"WOLF_PRINT_CONFIG", "1"}};
    auto const result = parse({});
    BOOST_REQUIRE(result.cfg.has_value());
    BOOST_TEST(result.output.empty());
}

BOOST_AUTO_TEST_CASE(a_bad_value_is_named_where_it_came_from) {
    {
        scoped_environment const env{{"WOLF_PORT", "http"}};
        check_rejected({}, "WOLF_PORT: 'http'");
    }
    {
        scoped_environment const env{{"WOLF_PING_TIMEOUT", "never"}};
        check_rejected({}, "WOLF_PING_TIMEOUT");
    }
    {
        scoped_environment const env{{"WOLF_PORT", "http"}};
        auto const result = parse({"--port", "9000"}); // the flag wins, so the bad variable is never read
        BOOST_TEST(result.cfg.has_value());
    }
    temp_file const file("interval = soon\n");
    check_rejected({"--config", file.path()}, file.path() + ": interval: 'soon'");
}

BOOST_AUTO_TEST_CASE(bad_files_exit_2_with_one_line) {
    temp_file const unknown("prot = 80\n");
    check_rejected({"--config", unknown.path()}, unknown.path());
    check_rejected({"--config", unknown.path()}, "prot");
    temp_file const garbage("this is not ini\n");
    check_rejected({"--config", garbage.path()}, garbage.path());
    temp_file const command("help = 1\n"); // commands are not settings
    check_rejected({"--config", command.path()}, command.path());
    check_rejected({"--config", "/nonexistent/wolf.ini"}, "--config: cannot read '/nonexistent/wolf.ini'");
    check_rejected({"--config", ""}, "--config");
    scoped_environment const env{{"WOLF_CONFIG", "/nonexistent/wolf.ini"}};
    check_rejected({}, "WOLF_CONFIG: cannot read");
}

BOOST_AUTO_TEST_CASE(every_setting_has_a_variable_and_print_config_names_the_source) {
    scoped_environment const env{{"WOLF_HOST", "127.0.0.1"},
                                 {"WOLF_PORT", "9002"},
                                 {"WOLF_INTERVAL", "250ms"},
                                 {"WOLF_PING_TIMEOUT", "1m"},
                                 {"WOLF_QUOTES", "q.txt"},
                                 {"WOLF_ASSETS", "ui"},
                                 {"WOLF_MAX_CONNECTIONS", "5"},
                                 {"WOLF_MAX_QUEUE", "8"},
                                 {"WOLF_MAX_MESSAGE_SIZE", "1024"},
                                 {"WOLF_MAX_ERRORS", "3"},
                                 {"WOLF_HANDSHAKE_TIMEOUT", "2s"},
                                 {"WOLF_WRITE_TIMEOUT", "500ms"},
                                 {"WOLF_THREADS", "2"},
                                 {"WOLF_CPU_AFFINITY", "off"},
                                 {"WOLF_LOG_LEVEL", "debug"},
                                 {"WOLF_LOG_FORMAT", "json"},
                                 {"WOLF_TLS_CERT", "c.pem"},
                                 {"WOLF_TLS_KEY", "k.pem"},
                                 {"WOLF_ADMIN_TOKEN", "0123456789abcdef-secret"},
                                 {"WOLF_REDIS", "redis://10.0.0.7:6380/2"}};
    auto const result = parse({"--print-config"});
    BOOST_TEST(result.exit_code == 0);
    BOOST_REQUIRE(!result.cfg.has_value());
    for (std::string name : {"host",
                             "port",
                             "interval",
                             "ping-timeout",
                             "quotes",
                             "assets",
                             "max-connections",
                             "max-queue",
                             "max-message-size",
                             "max-errors",
                             "handshake-timeout",
                             "write-timeout",
                             "threads",
                             "cpu-affinity",
                             "log-level",
                             "log-format",
                             "tls-cert",
                             "tls-key",
                             "admin-token",
                             "redis"}) {
        std::string variable = "WOLF_";
        for (char c : name)
            variable.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
        auto const line = printed_line(result.output, name);
        BOOST_TEST(line.find(variable) != std::string::npos, name << ": '" << line << "'");
    }
    BOOST_TEST(printed_line(result.output, "interval").starts_with("interval = 250ms "));
    BOOST_TEST(result.output.find("secret") == std::string::npos, "the admin token is never printed");
}

BOOST_AUTO_TEST_CASE(print_config_reads_back_as_a_config_file) {
    scoped_environment const env{{"WOLF_LOG_FORMAT", "json"}};
    auto const printed = parse({"--print-config", "--port", "9003", "--interval", "1.5s", "--quotes", "q.txt",
                                "--max-errors", "4", "--tls-cert", "c.pem", "--tls-key", "k.pem"});
    BOOST_REQUIRE(printed.exit_code == 0);
    BOOST_TEST(printed_line(printed.output, "port").find("# --port") != std::string::npos);
    BOOST_TEST(printed_line(printed.output, "log-format").find("# WOLF_LOG_FORMAT") != std::string::npos);
    BOOST_TEST(printed_line(printed.output, "max-queue").find("# default") != std::string::npos);
    BOOST_TEST(printed_line(printed.output, "assets").starts_with("# assets"), "unset values are comments");

    temp_file const file(printed.output);
    scoped_environment const no_env{{"WOLF_LOG_FORMAT", std::nullopt}};
    auto const reread = parse({"--config", file.path()});
    BOOST_REQUIRE(reread.cfg.has_value());
    auto const& cfg = *reread.cfg;
    BOOST_TEST(cfg.port == 9003);
    BOOST_TEST(cfg.interval.count() == 1500);
    BOOST_TEST(cfg.quotes_file == "q.txt");
    BOOST_TEST(cfg.assets_dir.empty());
    BOOST_TEST(cfg.max_errors == 4u);
    BOOST_TEST(cfg.tls_cert == "c.pem");
    BOOST_TEST(cfg.tls_key == "k.pem");
    BOOST_TEST((cfg.format == log_format::json));
    BOOST_TEST(cfg.max_queue == 64u);
}

BOOST_AUTO_TEST_CASE(print_config_rejects_what_running_would) {
    check_rejected({"--print-config", "--port", "http"}, "--port");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(new_settings)

BOOST_AUTO_TEST_CASE(log_format_tls_and_admin_token) {
    auto const result = parse({"--log-format", "json", "--tls-cert", "c.pem", "--tls-key", "k.pem",
                               "--admin-token", "0123456789abcdef"});
    BOOST_REQUIRE(result.cfg.has_value());
    BOOST_TEST((result.cfg->format == log_format::json));
    BOOST_TEST(result.cfg->tls_cert == "c.pem");
    BOOST_TEST(result.cfg->tls_key == "k.pem");
    BOOST_TEST(result.cfg->admin_token == "0123456789abcdef");
    auto const defaults = parse({});
    BOOST_REQUIRE(defaults.cfg.has_value());
    BOOST_TEST((defaults.cfg->format == log_format::text));
    BOOST_TEST(defaults.cfg->tls_cert.empty());
    BOOST_TEST(defaults.cfg->admin_token.empty());
}

BOOST_AUTO_TEST_CASE(bad_values_exit_2) {
    check_rejected({"--log-format", "xml"}, "--log-format");
    check_rejected({"--tls-cert", "", "--tls-key", "k.pem"}, "--tls-cert");
    check_rejected({"--admin-token", "short"}, "--admin-token");
    auto const hidden = parse({"--admin-token", "has zebra but long enough"});
    BOOST_TEST(hidden.exit_code == 2);
    BOOST_TEST(hidden.output.find("zebra") == std::string::npos, "the token is not echoed");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(redis)

BOOST_AUTO_TEST_CASE(without_redis_the_server_is_a_single_node) {
    auto const result = parse({});
    BOOST_REQUIRE(result.cfg.has_value());
    BOOST_TEST(!result.cfg->redis.has_value());
}

BOOST_AUTO_TEST_CASE(a_redis_url_gives_host_port_password_and_database) {
    auto const result = parse({"--redis", "redis://:s%40cret@redis.internal:6380/3"});
    BOOST_REQUIRE(result.cfg.has_value());
    BOOST_REQUIRE(result.cfg->redis.has_value());
    auto const& redis = *result.cfg->redis;
    BOOST_TEST(redis.host == "redis.internal");
    BOOST_TEST(redis.port == 6380);
    BOOST_TEST(redis.username.empty());
    BOOST_TEST(redis.password == "s@cret");
    BOOST_TEST(redis.db == 3u);
    BOOST_TEST(redis.display() == "redis://:***@redis.internal:6380/3");
}

BOOST_AUTO_TEST_CASE(port_and_database_default_and_ipv6_and_users_are_read) {
    auto const plain = std::get<redis_endpoint>(parse_redis_url("redis://127.0.0.1"));
    BOOST_TEST(plain.host == "127.0.0.1");
    BOOST_TEST(plain.port == 6379);
    BOOST_TEST(plain.db == 0u);
    BOOST_TEST(plain.password.empty());
    BOOST_TEST(plain.display() == "redis://127.0.0.1:6379/0");
    BOOST_TEST(std::get<redis_endpoint>(parse_redis_url("REDIS://h/")).host == "h");
    auto const v6 = std::get<redis_endpoint>(parse_redis_url("redis://[::1]:7000/1"));
    BOOST_TEST(v6.host == "::1");
    BOOST_TEST(v6.port == 7000);
    BOOST_TEST(v6.display() == "redis://[::1]:7000/1");
    auto const acl = std::get<redis_endpoint>(parse_redis_url("redis://wolf:p:a/ss@h:1/0"));
    BOOST_TEST(acl.username == "wolf");
    BOOST_TEST(acl.password == "p:a/ss");
    BOOST_TEST(acl.display() == "redis://wolf:***@h:1/0");
}

BOOST_AUTO_TEST_CASE(rediss_is_tls_and_takes_a_ca_and_a_client_certificate) {
    auto const result = parse({"--redis", "rediss://:pw@redis.example:6380/1", "--redis-tls-ca", "ca.pem",
                               "--redis-tls-cert", "c.pem", "--redis-tls-key", "k.pem"});
    BOOST_REQUIRE(result.cfg.has_value());
    BOOST_TEST(result.cfg->redis->tls);
    BOOST_TEST(result.cfg->redis->display() == "rediss://:***@redis.example:6380/1");
    BOOST_TEST(result.cfg->redis_tls.ca == "ca.pem");
    BOOST_TEST(result.cfg->redis_tls.cert == "c.pem");
    BOOST_TEST(result.cfg->redis_tls.key == "k.pem");
    BOOST_TEST(!std::get<redis_endpoint>(parse_redis_url("redis://h")).tls);
    check_rejected({"--redis", "redis://h", "--redis-tls-ca", "ca.pem"}, "--redis-tls-ca");
    check_rejected({"--redis-tls-ca", "ca.pem"}, "--redis-tls-ca");
    check_rejected({"--redis", "rediss://h", "--redis-tls-cert", "c.pem"}, "--redis-tls-cert");
    check_rejected({"--redis", "rediss://h", "--redis-tls-key", "k.pem"}, "--redis-tls-key");
}

BOOST_AUTO_TEST_CASE(a_sentinel_url_names_the_sentinels_the_master_and_both_logins) {
    auto const parsed =
        parse_redis_url("redis+sentinel://:m%40ster@10.0.0.1:26379,sentinel-2,[::1]:26380/mymaster/2"
                        "?sentinel_user=s&sentinel_password=p%40ss");
    BOOST_REQUIRE(std::holds_alternative<redis_endpoint>(parsed));
    auto const& e = std::get<redis_endpoint>(parsed);
    BOOST_REQUIRE_EQUAL(e.sentinels.size(), 3u);
    BOOST_TEST(e.sentinels[0].host == "10.0.0.1");
    BOOST_TEST(e.sentinels[1].host == "sentinel-2");
    BOOST_TEST(e.sentinels[1].port == 26379, "the sentinels' default port");
    BOOST_TEST(e.sentinels[2].host == "::1");
    BOOST_TEST(e.sentinels[2].port == 26380);
    BOOST_TEST(e.master_name == "mymaster");
    BOOST_TEST(e.db == 2u);
    BOOST_TEST(e.password == "m@ster");
    BOOST_TEST(e.sentinel_username == "s");
    BOOST_TEST(e.sentinel_password == "p@ss");
    BOOST_TEST(!e.tls);
    BOOST_TEST(e.display() == "redis+sentinel://:***@10.0.0.1:26379,sentinel-2:26379,[::1]:26380/mymaster/2"
                              "?sentinel_user=s&sentinel_password=***");
    auto const tls = std::get<redis_endpoint>(parse_redis_url("rediss+sentinel://h/m"));
    BOOST_TEST(tls.tls);
    BOOST_TEST(tls.db == 0u);
    BOOST_TEST(tls.display() == "rediss+sentinel://h:26379/m/0");

    auto const printed = parse({"--print-config", "--redis", "redis+sentinel://h/m?sentinel_password=zebra"});
    BOOST_TEST(printed.output.find("zebra") == std::string::npos, printed.output);
    BOOST_TEST(printed_line(printed.output, "redis")
                   .starts_with("# redis = redis+sentinel://h:26379/m/0?sentinel_password=***"));
    auto const bad = parse({"--redis", "redis+sentinel://h:99999/m?sentinel_password=zebra"});
    BOOST_TEST(bad.exit_code == 2);
    BOOST_TEST(bad.output.find("zebra") == std::string::npos, bad.output);
}

static char const* const bad_redis_urls[] = {
    "",
    "127.0.0.1:6379",
    "http://127.0.0.1:6379",
    "redis://",
    "redis://:6379",
    "redis://h:0",
    "redis://h:65536",
    "redis://h:port",
    "redis://h:",
    "redis://h/db",
    "redis://h/-1",
    "redis://h?timeout=1",
    "redis://[::1",
    "redis://::1:6379",
    "redis://password@h",
    "redis://:@h",
    "redis://:bad%zz@h",
    "redis+sentinel://h1,h2",
    "redis+sentinel://h1,h2/",
    "redis+sentinel://h1:0/m",
    "redis+sentinel://,h/m",
    "redis+sentinel://h/m/db",
    "redis+sentinel://h/m?timeout=1",
    "redis+sentinel://h/m?sentinel_user=u",
    "redis+sentinel://h/m?sentinel_password",
    "redis+sentinel://h/m#f",
};

BOOST_DATA_TEST_CASE(a_bad_url_exits_2_with_one_line, data::make(bad_redis_urls), url) {
    check_rejected({"--redis", url}, "--redis");
}

BOOST_AUTO_TEST_CASE(the_password_is_never_echoed) {
    auto const bad = parse({"--redis", "redis://:zebra-secret@h:99999"});
    BOOST_TEST(bad.exit_code == 2);
    BOOST_TEST(bad.output.find("zebra") == std::string::npos, bad.output);
    BOOST_TEST(bad.output.find("redis://:***@h:99999") != std::string::npos, bad.output);

    scoped_environment const env{{"WOLF_REDIS", "redis://:zebra-secret@10.0.0.7"}};
    auto const printed = parse({"--print-config"});
    BOOST_TEST(printed.exit_code == 0);
    BOOST_TEST(printed.output.find("zebra") == std::string::npos, printed.output);
    auto const line = printed_line(printed.output, "redis");
    BOOST_TEST(line.starts_with("# redis = redis://:***@10.0.0.7:6379/0"), line);
    BOOST_TEST(line.find("WOLF_REDIS") != std::string::npos, line);
}

BOOST_AUTO_TEST_CASE(a_url_without_password_reads_back_from_print_config) {
    auto const printed = parse({"--print-config", "--redis", "redis://10.0.0.7:6380/2"});
    BOOST_REQUIRE(printed.exit_code == 0);
    BOOST_TEST(printed_line(printed.output, "redis").starts_with("redis = redis://10.0.0.7:6380/2 "));
    temp_file const file(printed.output);
    auto const reread = parse({"--config", file.path()});
    BOOST_REQUIRE(reread.cfg.has_value());
    BOOST_REQUIRE(reread.cfg->redis.has_value());
    BOOST_TEST(reread.cfg->redis->port == 6380);
    BOOST_TEST(reread.cfg->redis->db == 2u);
    BOOST_TEST(printed_line(parse({"--print-config"}).output, "redis").starts_with("# redis "));
}

BOOST_AUTO_TEST_SUITE_END()
