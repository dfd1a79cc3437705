#include "config.hpp"

#include "cluster/cluster.hpp" // valid_cluster_prefix
#include "option_values.hpp"
#include "version.hpp"

#include <boost/program_options.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <thread>
#include <variant>
#include <vector>

namespace wolf {
namespace po = boost::program_options;

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

/**
 * One setting, described once: its name (the flag --NAME, the variable WOLF_NAME, the key NAME of a
 * --config file), its help, how its text is read and checked, and how its value is shown (as the default
 * in --help, and by --print-config). Every setting is one row of the table below; the command line, the
 * environment, the file, --help and --print-config are all derived from it.
 */
struct setting {
    /** Reads the text into the config, or throws bad_option_value naming `where` ("--port", "WOLF_PORT",
     * "wolf.ini: port"). */
    using reader = std::function<void(config& cfg, std::string const& text, std::string const& where)>;
    /** The value as its reader takes it back, with any secret in it masked; nullopt when it is unset. */
    using shower = std::function<std::optional<std::string>(config const& cfg)>;

    std::string_view name;
    std::string_view help;
    reader read;
    shower show;
    std::string_view value_name = {}; // a setting without a default: its value's name in --help ("FILE")
    std::string_view unset = {};      // a setting without a default: what leaving it unset means
    std::string_view needs = {};      // another setting that must be given with this one
    std::string_view secret = {};     // what show() masks ("the token"): such a value does not read back
    std::function<bool(config const&)> masks = {}; // whether show() masked a secret in this value
    /** Once every setting is read: why this one's value does not fit the others ("is for ..."; empty: it
     * does). */
    std::function<std::string(config const&)> fits = {};
};

// The kinds of value, each read and shown one way; the bounds are the row's.

/** Text that must not be empty. */
setting text(std::string_view name, std::string config::*field, std::string expected, std::string_view help) {
    return {name, help,
            [field, expected](config& cfg, std::string const& value, std::string const& where) {
                if (value.empty()) throw bad_option_value(where, value, expected);
                cfg.*field = value;
            },
            [field](config const& cfg) -> std::optional<std::string> { return cfg.*field; }};
}

/** A file or directory name, unset by default. */
setting path(std::string_view name, std::string config::*field, std::string_view value_name,
             std::string expected, std::string_view unset, std::string_view help) {
    auto row = text(name, field, std::move(expected), help);
    row.show = [field](config const& cfg) -> std::optional<std::string> {
        if ((cfg.*field).empty()) return std::nullopt;
        return cfg.*field;
    };
    row.value_name = value_name;
    row.unset = unset;
    return row;
}

/** A whole number from `min` to `max`. */
template <class Number>
setting count(std::string_view name, Number config::*field, std::uint64_t min, std::uint64_t max,
              std::string_view help) {
    return {name, help,
            [=](config& cfg, std::string const& value, std::string const& where) {
                cfg.*field = static_cast<Number>(parse_count(where, value, min, max));
            },
            [=](config const& cfg) -> std::optional<std::string> { return std::to_string(cfg.*field); }};
}

/** A positive duration ("250ms", "5s", "1m"). */
setting time(std::string_view name, duration config::*field, std::string_view help) {
    return {name, help,
            [=](config& cfg, std::string const& value, std::string const& where) {
                cfg.*field = parse_duration_option(where, value);
            },
            [=](config const& cfg) -> std::optional<std::string> { return format_duration(cfg.*field); }};
}

/** `row`, which is given only together with `other`. */
setting paired_with(setting row, std::string_view other) {
    row.needs = other;
    return row;
}

/** One of a few words, each standing for a value of `field`. */
template <class Value>
setting choice(std::string_view name, Value config::*field, std::vector<std::pair<std::string, Value>> words,
               std::string expected, std::string_view help) {
    return {name, help,
            [=](config& cfg, std::string const& value, std::string const& where) {
                for (auto const& [word, meaning] : words)
                    if (word == value) {
                        cfg.*field = meaning;
                        return;
                    }
                throw bad_option_value(where, value, expected);
            },
            [=](config const& cfg) -> std::optional<std::string> {
                for (auto const& [word, meaning] : words)
                    if (meaning == cfg.*field) return word;
                return std::nullopt;
            }};
}

std::vector<std::pair<std::string, log_level>> log_levels() {
    std::vector<std::pair<std::string, log_level>> words;
    for (auto level : {log_level::debug, log_level::info, log_level::warn, log_level::error, log_level::off})
        words.emplace_back(to_string(level), level);
    return words;
}

std::vector<std::pair<std::string, log_format>> log_formats() {
    return {{std::string(to_string(log_format::text)), log_format::text},
            {std::string(to_string(log_format::json)), log_format::json}};
}

/** --threads: auto (0: one per core) or a count. */
setting threads() {
    auto row = count("threads", &config::threads, 1, 256,
                     "event-loop threads sharing the connections: 1 to 256, or auto (one per core)");
    auto const read_count = row.read;
    row.read = [read_count](config& cfg, std::string const& value, std::string const& where) {
        if (value == "auto")
            cfg.threads = 0;
        else
            read_count(cfg, value, where);
    };
    row.show = [](config const& cfg) -> std::optional<std::string> {
        return cfg.threads == 0 ? std::string("auto") : std::to_string(cfg.threads);
    };
    return row;
}

/** --admin-token: never printed, not even in an error. */
setting admin_token() {
    return {.name = "admin-token",
            .help = "bearer token for POST /api/wisdom and GET /api/stats",
            .read =
                [](config& cfg, std::string const& value, std::string const& where) {
                    if (value.size() < 16 || value.find_first_of(" \t\r\n") != std::string::npos)
                        throw bad_option_value(where, "(hidden)",
                                               "a token of at least 16 characters without spaces");
                    cfg.admin_token = value;
                },
            .show = [](config const& cfg) -> std::optional<std::string> {
                if (cfg.admin_token.empty()) return std::nullopt;
                return "***";
            },
            .value_name = "TOKEN",
            .unset = "unset: the admin API is off",
            .secret = "the token",
            .masks = [](config const&) { return true; }};
}

/** --redis: a URL whose password is never printed, not even in an error. */
setting redis() {
    return {
        .name = "redis",
        .help =
            "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), or "
            "redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT],.../MASTER[/DB][?sentinel_password=P]: run as "
            "one node of a cluster sharing one broadcast",
        .read =
            [](config& cfg, std::string const& value, std::string const& where) {
                auto parsed = parse_redis_url(value);
                if (auto const* error = std::get_if<std::string>(&parsed))
                    throw po::error(where + ": '" + mask_redis_url(value) +
                                    "' is not a Redis URL: " + *error);
                cfg.redis = std::get<redis_endpoint>(std::move(parsed));
            },
        .show = [](config const& cfg) -> std::optional<std::string> {
            if (!cfg.redis) return std::nullopt;
            return cfg.redis->display();
        },
        .value_name = "URL",
        .unset = "unset: a single node",
        .secret = "the password",
        .masks =
            [](config const& cfg) {
                return cfg.redis && (!cfg.redis->password.empty() || !cfg.redis->sentinel_password.empty());
            }};
}

/** A file for a rediss:// --redis: a path that is meaningless with a plain redis:// one. */
setting redis_tls_file(std::string_view name, std::string redis_tls_files::*field, std::string_view unset,
                       std::string_view help) {
    setting row{name, help,
                [field](config& cfg, std::string const& value, std::string const& where) {
                    if (value.empty()) throw bad_option_value(where, value, "a file name");
                    cfg.redis_tls.*field = value;
                },
                [field](config const& cfg) -> std::optional<std::string> {
                    if ((cfg.redis_tls.*field).empty()) return std::nullopt;
                    return cfg.redis_tls.*field;
                }};
    row.value_name = "FILE";
    row.unset = unset;
    row.fits = [](config const& cfg) -> std::string {
        if (cfg.redis && cfg.redis->tls) return {};
        return "is for a TLS Redis (--redis rediss://...)";
    };
    return row;
}

/** --redis-prefix: the cluster's namespace in Redis. */
setting redis_prefix() {
    setting row{
        "redis-prefix",
        "prefix of the cluster's keys and channel in Redis: clusters with different prefixes share one "
        "Redis without hearing each other",
        [](config& cfg, std::string const& value, std::string const& where) {
            if (!valid_cluster_prefix(value))
                throw bad_option_value(where, value, "1 to 64 letters, digits, '_', '-', '.' or ':'");
            cfg.redis_prefix = value;
        },
        [](config const& cfg) -> std::optional<std::string> { return cfg.redis_prefix; }};
    row.fits = [](config const& cfg) -> std::string {
        return cfg.redis ? std::string() : std::string("is for a cluster (--redis)");
    };
    return row;
}

/** Every setting, in the order --help and --print-config list them. Adding a setting is adding a row. */
std::vector<setting> const& settings() {
    static std::vector<setting> const table = [] {
        std::vector<setting> rows{
            text("host", &config::host, "an address", "address to listen on"),
            count("port", &config::port, 0, 65535, "TCP port for HTTP and WebSocket (0: any free port)"),
            time("interval", &config::interval,
                 "time between broadcasts (250ms, 5s, 1m; bare number = seconds)"),
            time("ping-timeout", &config::ping_timeout, "close a connection silent for this long with 4000"),
            path("quotes", &config::quotes_file, "FILE", "a file name", "unset: the built-in deck",
                 "quotes file, one per line"),
            path("assets", &config::assets_dir, "DIR", "a directory", "unset: the built-in UI",
                 "serve the UI from this directory instead of the built-in copy"),
            count("max-connections", &config::max_connections, 1, 10'000'000,
                  "open WebSockets before upgrades get 503"),
            count("max-queue", &config::max_queue, 1, 1'000'000,
                  "frames queued per connection before broadcasts to it are dropped"),
            count("max-message-size", &config::max_message_size, 64, 16 * 1024 * 1024,
                  "largest client message in bytes; larger closes with 1009"),
            count("max-errors", &config::max_errors, 1, 1'000'000,
                  "protocol errors answered per connection; the next one closes it with 1008"),
            count("history", &config::history, 0, 100'000,
                  "broadcasts kept, as the frames already built, for clients that reconnect with \"since\" "
                  "(0: none)"),
            time("handshake-timeout", &config::handshake_timeout,
                 "time allowed for a whole HTTP request, a WebSocket upgrade or a closing handshake"),
            time("write-timeout", &config::write_timeout,
                 "drop a connection whose socket accepts no data for this long"),
            threads(),
            choice(
                "cpu-affinity", &config::cpu_affinity, {{"auto", true}, {"off", false}}, "auto or off",
                "auto: with several threads, each runs on a CPU of its own (of those the process may use); "
                "off: the scheduler places them"),
            choice("log-level", &config::level, log_levels(), "one of debug, info, warn, error, off",
                   "debug, info, warn, error or off"),
            choice("log-format", &config::format, log_formats(), "text or json",
                   "text (one line: time level event key=value...) or json (one object per line)"),
            paired_with(path("tls-cert", &config::tls_cert, "FILE", "a file name", "unset: plain HTTP",
                             "PEM certificate (chain); with --tls-key the port serves HTTPS and wss:// only"),
                        "tls-key"),
            paired_with(path("tls-key", &config::tls_key, "FILE", "a file name", "unset: plain HTTP",
                             "PEM private key for --tls-cert"),
                        "tls-cert"),
            admin_token(),
            redis(),
            redis_prefix(),
            redis_tls_file("redis-tls-ca", &redis_tls_files::ca, "unset: the system's certificate store",
                           "PEM certificates that a rediss:// Redis's certificate must chain to"),
            paired_with(
                redis_tls_file("redis-tls-cert", &redis_tls_files::cert, "unset: no client certificate",
                               "PEM client certificate (chain) for a rediss:// Redis that asks for one"),
                "redis-tls-key"),
            paired_with(redis_tls_file("redis-tls-key", &redis_tls_files::key, "unset: no client certificate",
                                       "PEM private key for --redis-tls-cert"),
                        "redis-tls-cert"),
        };
        return rows;
    }();
    return table;
}

/** The options of po for every setting: values are read as text and checked by the table, so every mistake
 * gets one clear line. */
po::options_description describe_settings() {
    config const defaults;
    po::options_description options(
        "Settings (also WOLF_<NAME> in the environment, or NAME = value in --config)");
    for (auto const& row : settings()) {
        auto* value = po::value<std::string>();
        std::string help(row.help);
        if (row.value_name.empty())
            value->default_value(row.show(defaults).value_or(""));
        else
            value->value_name(std::string(row.value_name));
        if (!row.unset.empty()) help.append(" (").append(row.unset).append(")");
        options.add_options()(std::string(row.name).c_str(), value, help.c_str());
    }
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

/** The effective settings as a file --config reads back, each with its source as a comment. A value that is
 * unset, or whose secret is masked (so it would not read back), is a comment too. */
std::string render_config(config const& cfg, provenance const& from) {
    std::ostringstream out;
    out << "# wolf-wisdom " WOLF_VERSION " effective settings"
        << " (precedence: command line > WOLF_* environment > --config file > default)\n";
    for (auto const& row : settings()) {
        auto const value = row.show(cfg);
        if (!value) {
            out << "# " << row.name << " =  (" << row.unset << ")\n";
        } else if (auto const why = row.fits ? row.fits(cfg) : std::string(); !why.empty()) {
            out << "# " << row.name << " = " << *value << "  (" << why << ")\n"; // would not read back
        } else if (row.masks && row.masks(cfg)) {
            out << "# " << row.name << " = " << *value << "  (set by " << from.source(row.name) << "; "
                << row.secret << " is not printed)\n";
        } else {
            std::string entry = std::string(row.name) + " = " + *value;
            if (entry.size() < 40) entry.resize(40, ' ');
            out << entry << " # " << from.source(row.name) << '\n';
        }
    }
    return std::move(out).str();
}

} // namespace

std::size_t thread_count(config const& cfg) noexcept {
    if (cfg.threads != 0) return cfg.threads;
    return std::max(1u, std::thread::hardware_concurrency());
}

cli_result parse_command_line(int argc, char const* const argv[]) {
    auto const settings_options = describe_settings();
    auto const commands = describe_commands();
    po::options_description all;
    all.add(commands).add(settings_options);

    try {
        // No positional arguments: a stray word is an error, not silently ignored.
        auto const cli = po::command_line_parser(argc, argv).options(all).positional({}).run();
        auto const env = po::parse_environment(all, [&](std::string const& variable) {
            return option_for_variable(variable, settings_options);
        });

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
                << settings_options << '\n'
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
                file.emplace(po::parse_config_file(in, settings_options));
            } catch (po::error const& e) {
                throw po::error(file_name + ": " + e.what());
            }
            po::store(*file, vm);
        }
        po::notify(vm);
        provenance const from(cli, env, file, file_name);

        // Every setting given (or defaulted) is read by its row, in the table's order; the first mistake is
        // the one reported.
        config cfg;
        for (auto const& row : settings()) {
            std::string const name(row.name);
            if (!vm.count(name)) continue;
            if (!row.needs.empty() && !vm.count(std::string(row.needs)))
                throw po::error(from.label(name) + " needs --" + std::string(row.needs) + " too");
            row.read(cfg, vm[name].as<std::string>(), from.label(name));
        }
        for (auto const& row : settings())
            if (row.fits && vm.count(std::string(row.name)) && !vm[std::string(row.name)].defaulted())
                if (auto const why = row.fits(cfg); !why.empty())
                    throw po::error(from.label(row.name) + " " + why);

        if (vm.count("print-config")) return {std::nullopt, 0, render_config(cfg, from)};
        return {std::move(cfg), 0, {}};
    } catch (po::error const& e) {
        return {std::nullopt, 2, std::string("wolf-wisdom: ") + e.what() + " (see --help)\n"};
    }
}

} // namespace wolf
