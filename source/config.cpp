#include "config.hpp"

#include "option_values.hpp"

#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

namespace wolf {
namespace po = boost::program_options;

std::optional<duration> parse_duration(std::string_view text) noexcept {
    // A number (digits with an optional fraction) followed by an optional unit; nothing else.
    std::size_t i = 0;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.'))
        ++i;
    auto const number = text.substr(0, i);
    auto const unit = text.substr(i);
    if (number.empty() || number.front() == '.' || number.back() == '.' ||
        number.find('.') != number.rfind('.'))
        return std::nullopt;

    double value = 0;
    auto const [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc{} || end != number.data() + number.size()) return std::nullopt;

    double millis_per_unit = 0;
    if (unit.empty() || unit == "s")
        millis_per_unit = 1000;
    else if (unit == "ms")
        millis_per_unit = 1;
    else if (unit == "m")
        millis_per_unit = 60'000;
    else if (unit == "h")
        millis_per_unit = 3'600'000;
    else
        return std::nullopt;

    double const millis = std::round(value * millis_per_unit);
    // A week is far beyond any sensible interval and keeps every later time_point addition safe.
    if (!(millis >= 1) || millis > 7 * 24 * 3'600'000.0) return std::nullopt;
    return duration{static_cast<duration::rep>(millis)};
}

std::string format_duration(duration d) {
    auto const ms = d.count();
    if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
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

po::options_description describe_options() {
    config const defaults;
    po::options_description options("Options");
    // Values are read as text and validated below, so every mistake gets one clear line.
    // One option per entry reads better than the formatter's call chain.
    // clang-format off
    options.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
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
        ("log-level", po::value<std::string>()->default_value(std::string(to_string(defaults.level))),
         "debug, info, warn, error or off")
        ("log-format", po::value<std::string>()->default_value(std::string(to_string(defaults.format))),
         "text (one line: time level event key=value...) or json (one object per line)")
        ("tls-cert", po::value<std::string>()->value_name("FILE"),
         "PEM certificate (chain); with --tls-key the port serves HTTPS and wss:// only")
        ("tls-key", po::value<std::string>()->value_name("FILE"), "PEM private key for --tls-cert")
        ("admin-token", po::value<std::string>()->value_name("TOKEN"),
         "bearer token for POST /api/wisdom and GET /api/stats (unset: the admin API is off)");
    // clang-format on
    return options;
}

} // namespace

cli_result parse_command_line(int argc, char const* const argv[]) {
    auto const options = describe_options();
    po::variables_map vm;
    config cfg;
    try {
        // No positional arguments: a stray word is an error, not silently ignored.
        po::store(po::command_line_parser(argc, argv).options(options).positional({}).run(), vm);
        po::notify(vm);

        if (vm.count("help")) {
            std::ostringstream out;
            out << "Usage: wolf-wisdom [options]\n\n"
                << "Broadcasts wolf wisdom to every subscribed WebSocket client.\n\n"
                << options << '\n';
            return {std::nullopt, 0, out.str()};
        }
        if (vm.count("version")) return {std::nullopt, 0, "wolf-wisdom " WOLF_VERSION "\n"};

        auto const text = [&](char const* name) { return vm[name].as<std::string>(); };
        cfg.host = text("host");
        if (cfg.host.empty()) throw bad_option_value("host", cfg.host, "an address");
        cfg.port = static_cast<std::uint16_t>(parse_count("port", text("port"), 0, 65535));
        cfg.interval = parse_duration_option("interval", text("interval"));
        cfg.ping_timeout = parse_duration_option("ping-timeout", text("ping-timeout"));
        if (vm.count("quotes")) cfg.quotes_file = text("quotes");
        if (vm.count("assets")) cfg.assets_dir = text("assets");
        cfg.max_connections = parse_count("max-connections", text("max-connections"), 1, 10'000'000);
        cfg.max_queue = parse_count("max-queue", text("max-queue"), 1, 1'000'000);
        cfg.max_message_size =
            parse_count("max-message-size", text("max-message-size"), 64, 16 * 1024 * 1024);
        cfg.max_errors = parse_count("max-errors", text("max-errors"), 1, 1'000'000);
        cfg.handshake_timeout = parse_duration_option("handshake-timeout", text("handshake-timeout"));
        cfg.write_timeout = parse_duration_option("write-timeout", text("write-timeout"));
        auto const level = parse_log_level(text("log-level"));
        if (!level)
            throw bad_option_value("log-level", text("log-level"), "one of debug, info, warn, error, off");
        cfg.level = *level;
        auto const format = parse_log_format(text("log-format"));
        if (!format) throw bad_option_value("log-format", text("log-format"), "text or json");
        cfg.format = *format;
        if (vm.count("tls-cert")) cfg.tls_cert = text("tls-cert");
        if (vm.count("tls-key")) cfg.tls_key = text("tls-key");
        if (vm.count("tls-cert") != vm.count("tls-key") || (vm.count("tls-cert") && cfg.tls_cert.empty()) ||
            (vm.count("tls-key") && cfg.tls_key.empty()))
            throw bad_option_value(vm.count("tls-cert") ? "tls-key" : "tls-cert", "",
                                   "a file; --tls-cert and --tls-key go together");
        if (vm.count("admin-token")) {
            cfg.admin_token = text("admin-token");
            if (cfg.admin_token.size() < 16)
                throw bad_option_value("admin-token", "(hidden)", "at least 16 characters");
        }
        if (vm.count("quotes") && cfg.quotes_file.empty())
            throw bad_option_value("quotes", "", "a file name");
        if (vm.count("assets") && cfg.assets_dir.empty()) throw bad_option_value("assets", "", "a directory");
    } catch (po::error const& e) {
        return {std::nullopt, 2, std::string("wolf-wisdom: ") + e.what() + " (see --help)\n"};
    }
    return {std::move(cfg), 0, {}};
}

} // namespace wolf
