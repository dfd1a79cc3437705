#include "config.hpp"

#include "option_values.hpp"
#include "version.hpp"

#include <boost/program_options.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>
#include <variant>

namespace wolf {
namespace po = boost::program_options;

std::size_t thread_count(config const& cfg) noexcept {
    if (cfg.threads != 0) return cfg.threads;
    return std::max(1u, std::thread::hardware_concurrency());
}

std::uint64_t parse_count(std::string const& option, std::string const& text, std::uint64_t min,
                          std::uint64_t max) {
    std::uint64_t value = 0;
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
        throw bad_option_value(option, text,
                               "a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    return value;
}

duration parse_duration_option(std::string const& option, std::string const& text) {
    if (auto d = parse_duration(text)) return *d;
    throw bad_option_value(option, text,
                           "a positive duration (e.g. 250ms, 5s, 1m; a bare number means seconds)");
}

namespace {

constexpr std::string_view env_prefix = "WOLF_";

/** Settings: every option that may also come from the environment or a --config file. */
po::options_description describe_settings() {
    config const defaults;
    po::options_description options(
        "Settings (also WOLF_<NAME> in the environment, or NAME = value in --config)");
    // Values are read as text and validated below, so every mistake gets one clear line.
    // One option per entry reads better than the formatter's call chain.
    // clang-format off
    options.add_options()
        ("host", po::value<std::string>()->default_value(defaults.host), "address to listen on")
        ("port", po::value<std::string>()->default_value(std::to_string(defaults.port)),
         "TCP port for HTTP and WebSocket (0: any free port)")
        ("interval", po::value<std::string>()->default_value(format_duration(defaults.interval)),
         "time between broadcasts (250ms, 5s, 1m; bare number = seconds)")
        ("ping-timeout", po::value<std::string>()->default_value(format_duration(defaults.ping_timeout)),
         "close a connection silent for this long with 4000")
        ("quotes", po::value<std::string>()->value_name("FILE"),
         "quotes file, one per line (default: the built-in deck)")
        ("assets", po::value<std::string>()->value_name("DIR"),
         "serve the UI from this directory instead of the built-in copy")
        ("max-connections", po::value<std::string>()->default_value(std::to_string(defaults.max_connections)),
         "open WebSockets before upgrades get 503")
        ("max-queue", po::value<std::string>()->default_value(std::to_string(defaults.max_queue)),
         "frames queued per connection before broadcasts to it are dropped")
        ("max-message-size", po::value<std::string>()->default_value(std::to_string(defaults.max_message_size)),
         "largest client message in bytes; larger closes with 1009")
        ("max-errors", po::value<std::string>()->default_value(std::to_string(defaults.max_errors)),
         "protocol errors answered per connection; the next one closes it with 1008")
        ("handshake-timeout",
         po::value<std::string>()->default_value(format_duration(defaults.handshake_timeout)),
         "time allowed for a whole HTTP request, a WebSocket upgrade or a closing handshake")
        ("write-timeout", po::value<std::string>()->default_value(format_duration(defaults.write_timeout)),
         "drop a connection whose socket accepts no data for this long")
        ("threads", po::value<std::string>()->default_value("auto"),
         "event-loop threads sharing the connections: 1 to 256, or auto (one per core)")
        ("cpu-affinity", po::value<std::string>()->default_value("auto"),
         "auto: with several threads, each runs on a CPU of its own (of those the process may use); off: "
         "the scheduler places them")
        ("log-level", po::value<std::string>()->default_value(std::string(to_string(defaults.level))),
         "debug, info, warn, error or off")
        ("log-format", po::value<std::string>()->default_value(std::string(to_string(defaults.format))),
         "text (one line: time level event key=value...) or json (one object per line)")
        ("tls-cert", po::value<std::string>()->value_name("FILE"),
         "PEM certificate (chain); with --tls-key the port serves HTTPS and wss:// only")
        ("tls-key", po::value<std::string>()->value_name("FILE"), "PEM private key for --tls-cert")
        ("admin-token", po::value<std::string>()->value_name("TOKEN"),
         "bearer token for POST /api/wisdom and GET /api/stats (unset: the admin API is off)")
        ("redis", po::value<std::string>()->value_name("URL"),
         "redis://[:PASSWORD@]HOST[:PORT][/DB]: run as one node of a cluster sharing one broadcast "
         "(unset: a single node)");
    // clang-format on
    return options;
}

/** Options of the command line only (WOLF_CONFIG may name the file too). */
po::options_description describe_commands() {
    po::options_description options("Commands");
    // clang-format off
    options.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("config", po::value<std::string>()->value_name("FILE"),
         "read settings from this INI file (NAME = value per line, # comments)")
        ("print-config", "print the effective settings as a --config file, with where each came from, and exit");
    // clang-format on
    return options;
}

/** "WOLF_PING_TIMEOUT" -> "ping-timeout" for a setting (or WOLF_CONFIG); "" for anything else. */
std::string option_for_variable(std::string const& variable, po::options_description const& settings) {
    if (!variable.starts_with(env_prefix)) return {};
    std::string name = variable.substr(env_prefix.size());
    for (char& c : name)
        c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "config" || settings.find_nothrow(name, false)) return name;
    return {};
}

std::string variable_for_option(std::string_view name) {
    std::string variable(env_prefix);
    for (char c : name)
        variable.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    return variable;
}

bool mentions(po::parsed_options const& parsed, std::string_view name) {
    for (auto const& option : parsed.options)
        if (option.string_key == name) return true;
    return false;
}

/** Where each setting's value came from, for error messages and --print-config. */
class provenance {
public:
    provenance(po::parsed_options const& cli, po::parsed_options const& env,
               std::optional<po::parsed_options> const& file, std::string file_name)
        : cli_(cli)
        , env_(env)
        , file_(file)
        , file_name_(std::move(file_name)) {}

    /** "--port", "WOLF_PORT", "wolf.ini: port" or "default". */
    std::string source(std::string_view name) const {
        if (mentions(cli_, name)) return "--" + std::string(name);
        if (mentions(env_, name)) return variable_for_option(name);
        if (file_ && mentions(*file_, name)) return file_name_ + ": " + std::string(name);
        return "default";
    }
    /** How to name the setting in an error: where its bad value came from. */
    std::string label(std::string_view name) const {
        auto where = source(name);
        return where == "default" ? "--" + std::string(name) : where;
    }

private:
    po::parsed_options const& cli_;
    po::parsed_options const& env_;
    std::optional<po::parsed_options> const& file_;
    std::string file_name_;
};

/** The effective settings as a file --config reads back, each with its source as a comment. */
std::string render_config(config const& cfg, provenance const& from) {
    std::ostringstream out;
    out << "# wolf-wisdom " WOLF_VERSION " effective settings"
        << " (precedence: command line > WOLF_* environment > --config file > default)\n";
    auto const line = [&](std::string_view name, std::string const& value) {
        std::string entry = std::string(name) + " = " + value;
        if (entry.size() < 40) entry.resize(40, ' ');
        out << entry << " # " << from.source(name) << '\n';
    };
    auto const optional = [&](std::string_view name, std::string const& value, std::string_view unset) {
        if (value.empty())
            out << "# " << name << " =  (" << unset << ")\n";
        else
            line(name, value);
    };
    line("host", cfg.host);
    line("port", std::to_string(cfg.port));
    line("interval", format_duration(cfg.interval));
    line("ping-timeout", format_duration(cfg.ping_timeout));
    optional("quotes", cfg.quotes_file, "unset: the built-in deck");
    optional("assets", cfg.assets_dir, "unset: the built-in UI");
    line("max-connections", std::to_string(cfg.max_connections));
    line("max-queue", std::to_string(cfg.max_queue));
    line("max-message-size", std::to_string(cfg.max_message_size));
    line("max-errors", std::to_string(cfg.max_errors));
    line("handshake-timeout", format_duration(cfg.handshake_timeout));
    line("write-timeout", format_duration(cfg.write_timeout));
    line("threads", cfg.threads == 0 ? std::string("auto") : std::to_string(cfg.threads));
    line("cpu-affinity", cfg.cpu_affinity ? "auto" : "off");
    line("log-level", std::string(to_string(cfg.level)));
    line("log-format", std::string(to_string(cfg.format)));
    optional("tls-cert", cfg.tls_cert, "unset: plain HTTP");
    optional("tls-key", cfg.tls_key, "unset: plain HTTP");
    if (cfg.admin_token.empty())
        out << "# admin-token =  (unset: the admin API is off)\n";
    else
        out << "# admin-token =  (set by " << from.source("admin-token") << "; not printed)\n";
    // A masked password would not read back, so a URL with one is shown as a comment, like the token.
    if (!cfg.redis)
        out << "# redis =  (unset: a single node)\n";
    else if (cfg.redis->password.empty())
        line("redis", cfg.redis->display());
    else
        out << "# redis = " << cfg.redis->display() << "  (set by " << from.source("redis")
            << "; the password is not printed)\n";
    return std::move(out).str();
}

} // namespace

cli_result parse_command_line(int argc, char const* const argv[]) {
    auto const settings = describe_settings();
    auto const commands = describe_commands();
    po::options_description all;
    all.add(commands).add(settings);

    try {
        // No positional arguments: a stray word is an error, not silently ignored.
        auto const cli = po::command_line_parser(argc, argv).options(all).positional({}).run();
        auto const env = po::parse_environment(
            all, [&](std::string const& variable) { return option_for_variable(variable, settings); });

        // po::store keeps the first value it is given, so storing in precedence order makes the command
        // line win over the environment, the environment over the file, and any of them over a default.
        po::variables_map vm;
        po::store(cli, vm);
        po::store(env, vm);

        if (vm.count("help")) {
            std::ostringstream out;
            out << "Usage: wolf-wisdom [options]\n\n"
                << "Broadcasts wolf wisdom to every subscribed WebSocket client.\n\n"
                << commands << '\n'
                << settings << '\n'
                << "Every setting can also come from the environment (WOLF_PORT=8080, "
                   "WOLF_PING_TIMEOUT=20s)\n"
                << "or a --config file (port = 8080). Precedence: command line > environment > file > "
                   "default.\n";
            return {std::nullopt, 0, out.str()};
        }
        if (vm.count("version")) return {std::nullopt, 0, "wolf-wisdom " WOLF_VERSION "\n"};

        std::optional<po::parsed_options> file;
        std::string file_name;
        if (vm.count("config")) {
            file_name = vm["config"].as<std::string>();
            auto const where =
                mentions(cli, "config") ? std::string("--config") : variable_for_option("config");
            if (file_name.empty()) throw bad_option_value(where, "", "a file name");
            std::ifstream in(file_name);
            if (!in) throw po::error(where + ": cannot read '" + file_name + "'");
            try {
                file.emplace(po::parse_config_file(in, settings));
            } catch (po::error const& e) {
                throw po::error(file_name + ": " + e.what());
            }
            po::store(*file, vm);
        }
        po::notify(vm);
        provenance const from(cli, env, file, file_name);

        config cfg;
        auto const text = [&](char const* name) { return vm[name].as<std::string>(); };
        auto const label = [&](char const* name) { return from.label(name); };
        auto const given = [&](char const* name) { return vm.count(name) > 0; };
        cfg.host = text("host");
        if (cfg.host.empty()) throw bad_option_value(label("host"), cfg.host, "an address");
        cfg.port = static_cast<std::uint16_t>(parse_count(label("port"), text("port"), 0, 65535));
        cfg.interval = parse_duration_option(label("interval"), text("interval"));
        cfg.ping_timeout = parse_duration_option(label("ping-timeout"), text("ping-timeout"));
        if (given("quotes")) {
            cfg.quotes_file = text("quotes");
            if (cfg.quotes_file.empty()) throw bad_option_value(label("quotes"), "", "a file name");
        }
        if (given("assets")) {
            cfg.assets_dir = text("assets");
            if (cfg.assets_dir.empty()) throw bad_option_value(label("assets"), "", "a directory");
        }
        cfg.max_connections = parse_count(label("max-connections"), text("max-connections"), 1, 10'000'000);
        cfg.max_queue = parse_count(label("max-queue"), text("max-queue"), 1, 1'000'000);
        cfg.max_message_size =
            parse_count(label("max-message-size"), text("max-message-size"), 64, 16 * 1024 * 1024);
        cfg.max_errors = parse_count(label("max-errors"), text("max-errors"), 1, 1'000'000);
        cfg.handshake_timeout = parse_duration_option(label("handshake-timeout"), text("handshake-timeout"));
        cfg.write_timeout = parse_duration_option(label("write-timeout"), text("write-timeout"));
        if (text("threads") != "auto") cfg.threads = parse_count(label("threads"), text("threads"), 1, 256);
        if (text("cpu-affinity") != "auto" && text("cpu-affinity") != "off")
            throw bad_option_value(label("cpu-affinity"), text("cpu-affinity"), "auto or off");
        cfg.cpu_affinity = text("cpu-affinity") == "auto";
        auto const level = parse_log_level(text("log-level"));
        if (!level)
            throw bad_option_value(label("log-level"), text("log-level"),
                                   "one of debug, info, warn, error, off");
        cfg.level = *level;
        auto const format = parse_log_format(text("log-format"));
        if (!format) throw bad_option_value(label("log-format"), text("log-format"), "text or json");
        cfg.format = *format;
        if (given("tls-cert") != given("tls-key"))
            throw po::error(given("tls-cert") ? label("tls-cert") + " needs --tls-key too"
                                              : label("tls-key") + " needs --tls-cert too");
        if (given("tls-cert")) {
            cfg.tls_cert = text("tls-cert");
            cfg.tls_key = text("tls-key");
            if (cfg.tls_cert.empty()) throw bad_option_value(label("tls-cert"), "", "a file name");
            if (cfg.tls_key.empty()) throw bad_option_value(label("tls-key"), "", "a file name");
        }
        if (given("admin-token")) {
            cfg.admin_token = text("admin-token");
            // The token itself is never echoed, not even in an error.
            if (cfg.admin_token.size() < 16 || cfg.admin_token.find_first_of(" \t\r\n") != std::string::npos)
                throw bad_option_value(label("admin-token"), "(hidden)",
                                       "a token of at least 16 characters without spaces");
        }

        if (given("redis")) {
            auto const url = text("redis");
            auto parsed = parse_redis_url(url);
            // The password is never echoed, not even in an error.
            if (auto const* error = std::get_if<std::string>(&parsed))
                throw po::error(label("redis") + ": '" + mask_redis_url(url) +
                                "' is not a Redis URL: " + *error);
            cfg.redis = std::get<redis_endpoint>(std::move(parsed));
        }

        if (vm.count("print-config")) return {std::nullopt, 0, render_config(cfg, from)};
        return {std::move(cfg), 0, {}};
    } catch (po::error const& e) {
        return {std::nullopt, 2, std::string("wolf-wisdom: ") + e.what() + " (see --help)\n"};
    }
}

} // namespace wolf
