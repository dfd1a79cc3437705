#define BOOST_TEST_MODULE monitoring
// The monitoring shipped in docs/: the Prometheus alerting rules pass `promtool check rules` and their own
// unit tests (`promtool test rules`, every alert firing in one case and not in another), and every metric a
// Grafana panel or an alert queries is one a real node exports: a cluster node (--redis), which exports a
// single node's metrics and the cluster's.
#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/process.hpp"
#include "common/redis_server.hpp"
#include "common/test_server.hpp"

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

using namespace wolf;
using namespace wolf::test;

namespace {

std::filesystem::path const prometheus_dir = std::filesystem::path(WOLF_DOCS_DIR) / "prometheus";
std::filesystem::path const dashboard_file =
    std::filesystem::path(WOLF_DOCS_DIR) / "grafana" / "wolf-wisdom.json";

std::string read_file(std::filesystem::path const& path) {
    std::ifstream in(path, std::ios::binary);
    BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string promtool() {
    auto const path = find_program("promtool");
    BOOST_REQUIRE_MESSAGE(!path.empty(), "promtool is not installed (Debian package prometheus): run "
                                         "scripts/install-deps --test");
    return path;
}

/** The names of the server's metrics in a PromQL expression (wolf_* and process_*). */
std::set<std::string> metric_names(std::string const& expression) {
    static std::regex const name{R"(\b(?:wolf|process)_[A-Za-z0-9_]*)"};
    std::set<std::string> names;
    for (std::sregex_iterator it(expression.begin(), expression.end(), name), end; it != end; ++it)
        names.insert(it->str());
    return names;
}

/** Every `expr:` of the rules file (each on one line, as the file says). */
std::vector<std::string> rule_expressions() {
    std::vector<std::string> expressions;
    std::istringstream lines(read_file(prometheus_dir / "wolf-wisdom.rules.yml"));
    for (std::string line; std::getline(lines, line);)
        if (auto const at = line.find("expr: "); at != std::string::npos)
            expressions.push_back(line.substr(at + 6));
    return expressions;
}

/** Every query of the dashboard: its panels' targets and its template variables. */
std::vector<std::string> dashboard_expressions() {
    auto const dashboard = boost::json::parse(read_file(dashboard_file)).as_object();
    std::vector<std::string> expressions;
    for (auto const& panel : dashboard.at("panels").as_array()) {
        auto const& p = panel.as_object();
        if (p.at("type").as_string() == "row") continue;
        auto const& targets = p.at("targets").as_array();
        BOOST_TEST(!targets.empty(), "panel " << p.at("title").as_string() << " queries nothing");
        for (auto const& target : targets)
            expressions.emplace_back(target.at("expr").as_string());
    }
    for (auto const& variable : dashboard.at("templating").at("list").as_array())
        if (auto const* query = variable.as_object().if_contains("definition"))
            expressions.emplace_back(query->as_string());
    return expressions;
}

/** The metric families of a /metrics scrape, by name, from their `# TYPE` lines. */
std::map<std::string, std::string> exported_families(std::string const& scrape) {
    std::map<std::string, std::string> families;
    std::istringstream lines(scrape);
    for (std::string line; std::getline(lines, line);)
        if (line.starts_with("# TYPE ")) {
            std::istringstream words(line.substr(7));
            std::string name, type;
            words >> name >> type;
            families[name] = type;
        }
    return families;
}

/** Whether `name` is a series of an exported family: the family itself, or a histogram's _bucket, _sum or
 * _count. */
bool exported(std::map<std::string, std::string> const& families, std::string const& name) {
    if (families.count(name)) return true;
    for (std::string_view const suffix : {"_bucket", "_sum", "_count"})
        if (name.ends_with(suffix)) {
            auto const family = families.find(name.substr(0, name.size() - suffix.size()));
            if (family != families.end() && family->second == "histogram") return true;
        }
    return false;
}

} // namespace

BOOST_AUTO_TEST_CASE(the_alerting_rules_pass_promtool_check_and_their_unit_tests) {
    auto const tool = promtool();
    auto const check =
        run_command({tool, "check", "rules", (prometheus_dir / "wolf-wisdom.rules.yml").string()});
    BOOST_TEST(check.exit_code == 0, check.output);
    BOOST_TEST(check.output.find("SUCCESS") != std::string::npos, check.output);
    auto const tests =
        run_command({tool, "test", "rules", (prometheus_dir / "wolf-wisdom.rules.test.yml").string()},
                    std::chrono::seconds(60));
    BOOST_TEST(tests.exit_code == 0, tests.output);

    // Every alert has its unit tests.
    auto const rules = read_file(prometheus_dir / "wolf-wisdom.rules.yml");
    auto const cases = read_file(prometheus_dir / "wolf-wisdom.rules.test.yml");
    static std::regex const alert{R"(- alert: (\w+))"};
    std::size_t alerts = 0;
    for (std::sregex_iterator it(rules.begin(), rules.end(), alert), end; it != end; ++it, ++alerts)
        BOOST_TEST(cases.find("alertname: " + (*it)[1].str() + "\n") != std::string::npos,
                   (*it)[1].str() << " has no unit test");
    BOOST_TEST(alerts >= 9u);
}

BOOST_AUTO_TEST_CASE(every_metric_the_dashboard_and_the_alerts_query_is_one_a_node_exports) {
    redis_server redis;
    cluster_node node(WOLF_BINARY, redis.url(), {"--interval", "100ms"});
    std::string scrape;
    run_coro([&]() -> net::awaitable<void> {
        BOOST_REQUIRE(co_await node.server.async_wait_for_line(" leader_acquired ", 5s));
        auto const res = co_await http_request(node.port, http::verb::get, "/metrics");
        BOOST_REQUIRE(res.result_int() == 200u);
        scrape = res.body();
    });
    auto const families = exported_families(scrape);
    BOOST_REQUIRE(families.size() > 20u);

    std::set<std::string> queried;
    for (auto const& expressions : {dashboard_expressions(), rule_expressions()})
        for (auto const& expression : expressions)
            for (auto const& name : metric_names(expression))
                queried.insert(name);
    BOOST_TEST(queried.size() >= 25u, "the names were found in the queries");
    for (auto const& name : queried)
        BOOST_TEST(exported(families, name), name << " is queried but not exported");
}
