#define BOOST_TEST_MODULE config
#include "config.hpp"

#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <string>
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
    BOOST_TEST(cfg.host == "0.0.0.0");
    BOOST_TEST(cfg.port == 8000);
    BOOST_TEST(cfg.interval.count() == 5000);
    BOOST_TEST(cfg.ping_timeout.count() == 15000);
    BOOST_TEST(cfg.quotes_file.empty());
    BOOST_TEST(cfg.assets_dir.empty());
    BOOST_TEST(cfg.max_connections == 10000u);
    BOOST_TEST(cfg.max_queue == 64u);
    BOOST_TEST(cfg.max_message_size == 4096u);
    BOOST_TEST(cfg.max_errors == 20u);
    BOOST_TEST(cfg.handshake_timeout.count() == 10000);
    BOOST_TEST(cfg.write_timeout.count() == 30000);
    BOOST_TEST((cfg.level == log_level::info));
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
                               "--log-level",
                               "debug"});
    BOOST_REQUIRE(result.cfg.has_value());
    auto const& cfg = *result.cfg;
    BOOST_TEST(cfg.host == "127.0.0.1");
    BOOST_TEST(cfg.port == 9001);
    BOOST_TEST(cfg.interval.count() == 250);
    BOOST_TEST(cfg.ping_timeout.count() == 60000);
    BOOST_TEST(cfg.quotes_file == "q.txt");
    BOOST_TEST(cfg.assets_dir == "ui");
    BOOST_TEST(cfg.max_connections == 5u);
    BOOST_TEST(cfg.max_queue == 8u);
    BOOST_TEST(cfg.max_message_size == 1024u);
    BOOST_TEST(cfg.max_errors == 3u);
    BOOST_TEST(cfg.handshake_timeout.count() == 2000);
    BOOST_TEST(cfg.write_timeout.count() == 500);
    BOOST_TEST((cfg.level == log_level::debug));
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
