// wolf-wisdom: options -> quotes, assets and TLS context -> io_context -> signals -> server.

#include "assets.hpp"
#include "cluster/redis_tls.hpp"
#include "config.hpp"
#include "quote_deck.hpp"
#include "server.hpp"
#include "support/async.hpp"
#include "support/cpu_affinity.hpp"
#include "support/logger.hpp"
#include "support/process_stats.hpp"
#include "tls.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/system/system_error.hpp>
#include <csignal>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>

namespace {

using namespace wolf;

/** Descriptors the server holds besides its connections: listeners, event loops, Redis, logs, /proc reads. */
constexpr std::uint64_t descriptors_besides_connections = 64;

/** A startup failure: one line on stderr, then the exit code. */
int fail(int code, std::string const& message) {
    std::cerr << "wolf-wisdom: " << message << '\n';
    return code;
}

} // namespace

int main(int argc, char* argv[]) {
    auto cli = parse_command_line(argc, argv);
    if (!cli.cfg) {
        (cli.exit_code == 0 ? std::cout : std::cerr) << cli.output;
        return cli.exit_code;
    }
    auto& cfg = *cli.cfg;
    set_log_level(cfg.level);
    set_log_format(cfg.format);

    auto quotes = cfg.quotes_file.empty()
                      ? parse_quotes(embedded_file_data(default_quotes_name).value_or(""), "built-in quotes")
                      : load_quotes_file(cfg.quotes_file);
    if (auto const* error = std::get_if<std::string>(&quotes)) return fail(2, "--quotes: " + *error);

    auto assets =
        cfg.assets_dir.empty() ? asset_store::embedded() : asset_store::from_directory(cfg.assets_dir);
    if (auto const* error = std::get_if<std::string>(&assets)) return fail(2, *error);

    std::optional<net::ssl::context> tls;
    if (!cfg.tls_cert.empty()) {
        auto loaded = load_tls_context(cfg.tls_cert, cfg.tls_key);
        if (auto const* error = std::get_if<std::string>(&loaded)) return fail(2, *error);
        tls.emplace(std::get<net::ssl::context>(std::move(loaded)));
    }

    std::shared_ptr<net::ssl::context> redis_tls;
    if (cfg.redis && cfg.redis->tls) {
        auto made = make_redis_tls_context(cfg.redis_tls);
        if (auto const* error = std::get_if<std::string>(&made)) return fail(2, *error);
        redis_tls = std::get<std::shared_ptr<net::ssl::context>>(std::move(made));
    }

    // Shells start programs with 1,024 descriptors while --max-connections defaults to 10,000: take the hard
    // limit, and say so when even that is short of what the connections need.
    if (auto const limit = raise_descriptor_limit()) {
        auto const needed = static_cast<std::uint64_t>(cfg.max_connections) + descriptors_besides_connections;
        if (limit->soft < needed)
            log_warn("descriptor_limit", kv("limit", limit->soft), kv("needed", needed),
                     kv("max_connections", cfg.max_connections),
                     kv("hint", "raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd) or lower "
                                "--max-connections"));
        else if (limit->soft != limit->was)
            log_debug("descriptor_limit", kv("limit", limit->soft), kv("was", limit->was));
    }

    net::io_context ioc{1};
    auto const host = cfg.host;
    auto const port = cfg.port;
    auto const affinity = cfg.cpu_affinity;
    server srv(ioc.get_executor(), std::move(cfg), std::get<asset_store>(std::move(assets)),
               quote_deck(std::get<std::vector<std::string>>(std::move(quotes))), tls ? &*tls : nullptr,
               std::move(redis_tls));
    // Installed before the server announces itself, so a signal sent as soon as it listens is handled.
    net::signal_set signals(ioc, SIGINT, SIGTERM);
    try {
        srv.start();
    } catch (std::invalid_argument const& e) {
        return fail(2, e.what());
    } catch (boost::system::system_error const& e) {
        return fail(1, "cannot listen on " + host + ":" + std::to_string(port) + ": " + e.code().message());
    }
    // The main thread runs the first event loop; with --cpu-affinity it keeps the first allowed CPU and the
    // server's threads (placed by start()) the others. Placed after start(), so the threads it made did not
    // inherit this placement; until here this thread's set is the whole one the process may use.
    // Logged once placed: whoever reads the threads' placement after "listening" waits for this line.
    if (affinity)
        if (auto const cpu = cpu_for_thread(0, srv.threads(), allowed_cpus())) {
            if (pin_thread(*cpu))
                log_info("cpu_affinity", kv("thread", 0), kv("cpu", *cpu));
            else
                log_warn("cpu_affinity_failed", kv("thread", 0), kv("cpu", *cpu));
        }

    // The first SIGINT/SIGTERM shuts down gracefully; a second one stops at once.
    bool stopping = false;
    std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec,
                                                                        int signal) {
        if (ec) return;
        if (stopping) {
            log_warn("signal", kv("number", signal), kv("action", "stop_now"));
            ioc.stop();
            return;
        }
        stopping = true;
        log_info("signal", kv("number", signal), kv("action", "shutdown"));
        net::co_spawn(ioc, srv.shutdown(), [&](std::exception_ptr error) {
            signals.cancel();
            if (error) std::rethrow_exception(error);
        });
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);

    try {
        ioc.run();
    } catch (std::exception const& e) {
        log_error("fatal", kv("error", e.what()));
        return 1;
    }
    return 0;
}
