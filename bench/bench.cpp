// wolf-bench: the load generator of the standard benchmark (bench/run). Four modes against a running
// server: fanout (how evenly and how cheaply a tick reaches N subscribers), churn (whole sessions per
// second), idle (server memory per open connection), storm (N subscribers dropped at once and recovering
// with `since`). With --server-pid the server's CPU time and RSS come
// from /proc. Several --port values spread the sessions across the nodes of a cluster (--redis), and fanout
// then reports the spread between nodes too. See bench/README.md.

#include "client.hpp"
#include "config.hpp"
#include "fanout_ticks.hpp"
#include "option_values.hpp"
#include "support/async.hpp"
#include "support/process_stats.hpp"
#include "worker_pool.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <unistd.h>
#include <variant>
#include <vector>

namespace {

using namespace wolf::bench;
using namespace std::chrono_literals;
namespace net = wolf::net;
namespace json = boost::json;
namespace po = boost::program_options;
using wolf::process_stats;
using wolf::read_process_stats;
using wolf::use_nothrow;
using seconds_f = std::chrono::duration<double>;

// Bounds on the waits between phases; each session is bounded by its own timeouts (10 s per handshake,
// 30 s of silence), so these only matter when something is badly wrong.
constexpr auto ramp_limit = 5min;
constexpr auto leave_limit = 60s;
constexpr auto churn_drain_limit = 60s;

enum class bench_mode { fanout, churn, idle, storm };

struct bench_options {
    bench_mode mode = bench_mode::fanout;
    std::string mode_name;
    std::string host = "127.0.0.1";
    std::vector<std::uint16_t> ports; // one per server; sessions are dealt round robin across them
    std::vector<pid_t> server_pids;   // empty: no server figures; several: their sum
    std::size_t subscribers = 1000;
    std::size_t concurrency = 50;       // churn: sessions in flight
    std::size_t ramp_concurrency = 200; // fanout, idle: handshakes in flight while connecting
    milliseconds interval = 1s;         // the server's --interval
    milliseconds duration = 20s;        // fanout: the window; churn: the window; idle: the hold
    milliseconds warmup = 1s;           // churn: before the window
    milliseconds settle = 3s;           // idle: after the last connection, before the first sample
    std::size_t steady = 1000;          // storm: subscribers that stay, whose ticks are timed throughout
    std::uint64_t behind = 50; // storm: how many broadcasts before its last one a session recovers from
    std::size_t threads = 1;
    milliseconds ping_period = 5s;
    bool shutdown = false;                  // idle: SIGTERM the server after the hold, instead of leaving
    std::shared_ptr<net::ssl::context> tls; // wss://, trusting --tls-ca
    bool tls_resume = false;                // offer the latest TLS session kept
    std::string json_path;
};

using wolf::parse_count;
using wolf::parse_duration_option;
using bad_value = wolf::bad_option_value;

/** "a,b,c" -> {"a", "b", "c"}; an empty item stays, so that parsing it reports the mistake. */
std::vector<std::string> split_list(std::string const& text) {
    std::vector<std::string> items;
    std::size_t start = 0;
    for (auto comma = text.find(','); comma != std::string::npos; comma = text.find(',', start)) {
        items.push_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    items.push_back(text.substr(start));
    return items;
}

/** The options, or the exit code for --help (0) and a bad command line (2, one line on stderr). */
std::variant<bench_options, int> parse_command_line(int argc, char* argv[]) {
    bench_options const defaults;
    po::options_description described("Options");
    // clang-format off
    described.add_options()
        ("help,h", "print this help and exit")
        ("host", po::value<std::string>()->default_value(defaults.host), "server address (IPv4 or IPv6 literal)")
        ("port", po::value<std::string>(),
         "server port (required); several, comma-separated, spread the sessions across the nodes of a cluster")
        ("server-pid", po::value<std::string>(),
         "the server's process id: its CPU time and RSS from /proc (several, comma-separated: their sum)")
        ("subscribers", po::value<std::string>()->default_value(std::to_string(defaults.subscribers)),
         "fanout, idle: subscribed sessions")
        ("concurrency", po::value<std::string>()->default_value(std::to_string(defaults.concurrency)),
         "churn: sessions in flight")
        ("ramp-concurrency", po::value<std::string>()->default_value(std::to_string(defaults.ramp_concurrency)),
         "fanout, idle: handshakes in flight while connecting")
        ("interval", po::value<std::string>()->default_value("1s"),
         "the server's --interval (fanout: groups receipts into ticks, and the settling time)")
        ("duration", po::value<std::string>(),
         "fanout: the measurement window (default 20s); churn: the window (10s); idle: the hold (10s)")
        ("warmup", po::value<std::string>()->default_value("1s"), "churn: time before the window")
        ("settle", po::value<std::string>()->default_value("3s"),
         "idle: time after the last connection before the first RSS sample")
        ("steady", po::value<std::string>()->default_value(std::to_string(defaults.steady)),
         "storm: subscribers that stay connected, whose per-tick spread is measured before and during the storm")
        ("behind", po::value<std::string>()->default_value(std::to_string(defaults.behind)),
         "storm: each dropped subscriber reconnects with `since` this many broadcasts before its last one")
        ("threads", po::value<std::string>()->default_value(std::to_string(defaults.threads)),
         "client threads, one io_context each")
        ("ping-period", po::value<std::string>()->default_value("5s"), "time between a session's pings")
        ("tls-ca", po::value<std::string>()->value_name("FILE"),
         "wss://: connect with TLS and check the server's certificate against the CA certificates in FILE (PEM)")
        ("tls-resume", "with --tls-ca: resume TLS sessions (each handshake offers the latest session a server "
         "gave this run); without it every handshake is a full one")
        ("shutdown", "idle: after the hold, send SIGTERM to the --server-pid instead of leaving, and time the "
         "shutdown (every subscriber should be closed with 1001)")
        ("json", po::value<std::string>()->value_name("FILE"), "also write every figure to FILE as one JSON object");
    // clang-format on
    po::options_description hidden;
    hidden.add_options()("mode", po::value<std::string>());
    po::options_description all;
    all.add(described).add(hidden);
    po::positional_options_description positional;
    positional.add("mode", 1);

    po::variables_map vm;
    bench_options opt;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
        po::notify(vm);
        if (vm.count("help")) {
            std::cout
                << "Usage: wolf-bench fanout|churn|idle --port PORT[,PORT...] [--server-pid PID[,PID...]] "
                   "[options]\n\n"
                << "Load generator for a running wolf-wisdom (or wolf-floor) server:\n"
                << "  fanout  N subscribers; per tick the spread of kernel receive times, deliveries/s,\n"
                << "          missed deliveries, server CPU per delivery\n"
                << "  churn   whole sessions (connect ... close 1000) at a fixed concurrency: sessions/s,\n"
                << "          latency, failures, server CPU per session\n"
                << "  idle    N subscribers pinging: server RSS per connection\n"
                << "  storm   N subscribers dropped at once, reconnecting with `since` --behind broadcasts\n"
                << "          back: recoveries complete and exact, server CPU per recovered session, the\n"
                << "          spread of --steady subscribers' ticks before and during the storm\n"
                << "A summary goes to stdout (and, with --json, every figure to FILE). Exit 0: the run\n"
                << "worked; 1: it did not (sessions could not be set up, the server vanished); 2: bad\n"
                << "command line.\n\n"
                << described << '\n';
            return 0;
        }
        auto const text = [&](char const* name) { return vm[name].as<std::string>(); };
        if (!vm.count("mode")) throw po::error("a mode is required: fanout, churn, idle or storm");
        opt.mode_name = text("mode");
        if (opt.mode_name == "fanout")
            opt.mode = bench_mode::fanout;
        else if (opt.mode_name == "churn")
            opt.mode = bench_mode::churn;
        else if (opt.mode_name == "idle")
            opt.mode = bench_mode::idle;
        else if (opt.mode_name == "storm")
            opt.mode = bench_mode::storm;
        else
            throw bad_value("mode", opt.mode_name, "fanout, churn, idle or storm");
        if (!vm.count("port")) throw po::error("--port is required");
        opt.host = text("host");
        boost::system::error_code address_ec;
        net::ip::make_address(opt.host, address_ec);
        if (address_ec) throw bad_value("--host", opt.host, "an IP address");
        for (auto const& port : split_list(text("port")))
            opt.ports.push_back(static_cast<std::uint16_t>(parse_count("--port", port, 1, 65535)));
        if (vm.count("server-pid"))
            for (auto const& pid : split_list(text("server-pid"))) {
                opt.server_pids.push_back(static_cast<pid_t>(parse_count("--server-pid", pid, 1, 4'194'304)));
                if (!read_process_stats(opt.server_pids.back()))
                    throw bad_value("--server-pid", pid, "a process whose /proc entry we can read");
            }
        opt.subscribers = parse_count("--subscribers", text("subscribers"), 1, 1'000'000);
        opt.concurrency = parse_count("--concurrency", text("concurrency"), 1, 100'000);
        opt.ramp_concurrency = parse_count("--ramp-concurrency", text("ramp-concurrency"), 1, 100'000);
        opt.interval = parse_duration_option("--interval", text("interval"));
        opt.duration = vm.count("duration") ? parse_duration_option("--duration", text("duration"))
                       : opt.mode == bench_mode::fanout ? milliseconds{20s}
                       : opt.mode == bench_mode::storm  ? milliseconds{5s}
                                                        : milliseconds{10s};
        opt.warmup = parse_duration_option("--warmup", text("warmup"));
        opt.settle = parse_duration_option("--settle", text("settle"));
        opt.steady = parse_count("--steady", text("steady"), 1, 1'000'000);
        opt.behind = parse_count("--behind", text("behind"), 0, 1'000'000);
        opt.threads = parse_count("--threads", text("threads"), 1, 256);
        opt.ping_period = parse_duration_option("--ping-period", text("ping-period"));
        if (vm.count("json")) opt.json_path = text("json");
        opt.shutdown = vm.count("shutdown") != 0;
        if (vm.count("tls-ca")) {
            std::string error;
            opt.tls = tls_client::make_context(text("tls-ca"), error);
            if (!opt.tls) throw po::error("--tls-ca: " + error);
        }
        opt.tls_resume = vm.count("tls-resume") != 0;
        if (opt.tls_resume && !opt.tls) throw po::error("--tls-resume needs --tls-ca");
        if (opt.shutdown && opt.mode != bench_mode::idle) throw po::error("--shutdown is for the idle mode");
        if (opt.shutdown && opt.server_pids.size() != 1)
            throw po::error("--shutdown needs exactly one --server-pid, the server to stop");
        if ((opt.mode == bench_mode::fanout || opt.mode == bench_mode::storm) && opt.duration <= opt.interval)
            throw bad_value("--duration", text("duration"),
                            "longer than --interval (ticks are counted "
                            "up to one interval before the window's end)");
    } catch (po::error const& e) {
        std::cerr << "wolf-bench: " << e.what() << " (see --help)\n";
        return 2;
    }
    return opt;
}

std::string fixed(double value, int precision = 1) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(precision) << value;
    return out.str();
}

double ms(std::int64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

/** A process's CPU time between two readings per unit of work, in µs: in all, in the program (utime) and in
 * the kernel on its behalf (stime: TCP, epoll, copies); 0 with no units. */
struct cpu_per_unit {
    double total = 0;
    double user = 0;
    double system = 0;

    cpu_per_unit(process_stats const& from, process_stats const& to, std::uint64_t units) {
        if (units == 0) return;
        auto const per = [&](double seconds) { return seconds * 1e6 / static_cast<double>(units); };
        total = per(to.cpu_seconds - from.cpu_seconds);
        user = per(to.user_cpu_seconds - from.user_cpu_seconds);
        system = per(to.system_cpu_seconds - from.system_cpu_seconds);
    }
    /** "; in the program U µs, in the kernel K µs" */
    std::string parts(int precision) const {
        return "; in the program " + fixed(user, precision) + " µs, in the kernel " +
               fixed(system, precision) + " µs";
    }
};

/** The kernel's own memory for sockets, machine-wide: slab objects (the socket, its inode, file, dentry,
 * epoll entry...) and the pages queued in TCP buffers. */
struct kernel_memory {
    std::uint64_t slab_bytes = 0;       // Slab: of /proc/meminfo
    std::uint64_t tcp_buffer_bytes = 0; // "TCP: ... mem N" of /proc/net/sockstat, N pages
};

std::optional<kernel_memory> read_kernel_memory() {
    kernel_memory m;
    bool slab = false, tcp = false;
    std::ifstream meminfo("/proc/meminfo");
    for (std::string key; meminfo >> key;) {
        std::uint64_t kib = 0;
        if (key == "Slab:" && meminfo >> kib) {
            m.slab_bytes = kib * 1024;
            slab = true;
            break;
        }
        meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    std::ifstream sockstat("/proc/net/sockstat");
    for (std::string line; std::getline(sockstat, line);) {
        if (!line.starts_with("TCP:")) continue;
        auto const at = line.find(" mem ");
        if (at == std::string::npos) break;
        m.tcp_buffer_bytes =
            std::stoull(line.substr(at + 5)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
        tcp = true;
    }
    if (!slab || !tcp) return std::nullopt;
    return m;
}

/** The server as /proc shows it at one moment, and when. */
struct server_sample {
    steady_clock::time_point at;
    system_clock::time_point wall; // the same moment on the kernel timestamps' clock
    std::optional<process_stats> proc;
    std::optional<process_stats> self; // wolf-bench itself: a reader can tell whether it kept up
    std::optional<kernel_memory> kernel;
};

/** What the run found: parameters, figures, the summary's lines, and why the run failed, if it did. */
struct report {
    json::object parameters;
    json::object figures;
    std::vector<std::string> lines;
    std::vector<std::string> problems;

    void line(std::string text) { lines.push_back(std::move(text)); }
    void problem(std::string text) { problems.push_back(std::move(text)); }
};

/** Cross-thread tallies of a set of sessions: written on the client threads, read on the control one. */
struct tally {
    std::atomic<std::uint64_t> joined{0};
    std::atomic<std::uint64_t> ended{0};
    std::atomic<std::uint64_t> left{0};           // ended after joining
    std::atomic<std::uint64_t> in_flight{0};      // started, not yet joined (or ended without joining)
    std::atomic<std::uint64_t> wisdom{0};         // idle only: there should be none
    std::atomic<std::uint64_t> going_away{0};     // closed by the server with 1001 (a shutdown)
    std::atomic<steady_clock::rep> last_ended{0}; // the latest `ended` of any session
    std::array<std::atomic<std::uint64_t>, session_status_count> by_status{};
    mutable std::mutex details_mutex;
    std::vector<std::string> details; // the first few failures, in words
    std::string epoch;                // the server's, from the first session's `initial`

    void record(session_report const& r) {
        by_status[static_cast<std::size_t>(r.status)].fetch_add(1, std::memory_order_relaxed);
        wisdom.fetch_add(r.wisdom, std::memory_order_relaxed);
        if (r.status == session_status::closed_by_server && r.close_code == 1001)
            going_away.fetch_add(1, std::memory_order_relaxed);
        auto const ended_at = r.ended.time_since_epoch().count();
        for (auto seen = last_ended.load(std::memory_order_relaxed);
             seen < ended_at && !last_ended.compare_exchange_weak(seen, ended_at, std::memory_order_relaxed);)
            ;
        if (!r.epoch.empty()) {
            std::lock_guard lock(details_mutex);
            if (epoch.empty()) epoch = r.epoch;
        }
        if (r.status != session_status::completed) {
            std::lock_guard lock(details_mutex);
            if (details.size() < 5) details.push_back(std::string(to_string(r.status)) + ": " + r.detail);
        }
    }
    std::uint64_t failed() const {
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < by_status.size(); ++i)
            if (static_cast<session_status>(i) != session_status::completed) sum += by_status[i].load();
        return sum;
    }
};

/** One churn session as it ended, recorded on its own thread. */
struct churn_record {
    steady_clock::time_point ended;
    steady_clock::duration latency; // start of the TCP connect to the end of the close
    session_status status;
    bool tls_resumed;
};

/** The churn loop's state, shared by the handlers of every churn session. */
struct churn_state {
    explicit churn_state(std::size_t threads)
        : records(threads) {}
    std::atomic<bool> running{true};
    std::atomic<std::uint64_t> in_flight{0};
    std::vector<std::vector<churn_record>> records; // per client thread: touched by that thread only
    std::mutex details_mutex;
    std::vector<std::string> details;
};

class bench {
public:
    bench(bench_options options, worker_pool& workers)
        : opt_(std::move(options))
        , workers_(workers)
        , began_(steady_clock::now()) {
        if (opt_.tls) tls_ = std::make_shared<tls_client>(opt_.tls, opt_.tls_resume);
        auto const address = net::ip::make_address(opt_.host);
        for (auto const port : opt_.ports) {
            endpoints_.emplace_back(address, port);
            std::ostringstream host;
            host << endpoints_.back();
            hosts_.push_back(host.str());
            host_ += (host_.empty() ? "" : ", ") + hosts_.back();
        }
    }

    /** The run, the summary on stdout and the JSON file; returns the exit code. */
    net::awaitable<int> run();

private:
    double elapsed() const { return seconds_f(steady_clock::now() - began_).count(); }
    void progress(std::string const& line) const {
        std::cerr << "[" << std::setw(6) << fixed(elapsed()) << "s] " << line << std::endl;
    }

    static net::awaitable<void> pause(steady_clock::duration how_long) {
        net::steady_timer timer(co_await net::this_coro::executor, how_long);
        co_await timer.async_wait(use_nothrow);
    }

    /** Waits until `done()` or `limit`; true if done. Polls: the state lives on other threads. */
    template <class Done>
    static net::awaitable<bool> wait_until(Done done, steady_clock::duration limit,
                                           steady_clock::duration every = 10ms) {
        auto const deadline = steady_clock::now() + limit;
        while (!done()) {
            if (steady_clock::now() >= deadline) co_return false;
            co_await pause(every);
        }
        co_return true;
    }

    server_sample sample() const {
        server_sample s;
        // Several servers (the nodes of a cluster) count as one: CPU, memory and descriptors summed.
        for (std::size_t i = 0; i < opt_.server_pids.size(); ++i) {
            auto const one = read_process_stats(opt_.server_pids[i]);
            if (!one) {
                s.proc.reset();
                break;
            }
            if (i == 0) {
                s.proc = one;
                continue;
            }
            s.proc->cpu_seconds += one->cpu_seconds;
            s.proc->user_cpu_seconds += one->user_cpu_seconds;
            s.proc->system_cpu_seconds += one->system_cpu_seconds;
            s.proc->resident_memory_bytes += one->resident_memory_bytes;
            s.proc->open_fds += one->open_fds;
        }
        s.self = read_process_stats();
        s.kernel = read_kernel_memory();
        s.at = steady_clock::now();
        s.wall = system_clock::now();
        return s;
    }

    /** A session of the `node`th server (modulo their number). */
    session_options base_session(std::size_t node) const {
        session_options s;
        s.endpoint = endpoints_[node % endpoints_.size()];
        s.host = hosts_[node % hosts_.size()];
        s.ping_period = opt_.ping_period;
        s.tls = tls_;
        return s;
    }
    /** A subscriber's options; the control thread only (random_). */
    session_options subscriber_session(std::size_t node) {
        auto s = base_session(node);
        // Sessions that join together would otherwise ping together, every period, for the whole run.
        s.first_ping = milliseconds{
            std::uniform_int_distribution<milliseconds::rep>(1, opt_.ping_period.count())(random_)};
        return s;
    }

    /** Subscribers connected together: the sessions, their tally and their reports. */
    struct subscriber_set {
        std::vector<std::shared_ptr<client_session>> sessions;
        std::shared_ptr<tally> counts = std::make_shared<tally>();
        double ramp_seconds = 0;
        bool ramp_complete = false;
    };

    using wisdom_hook_factory =
        std::function<session_hooks::wisdom_hook(std::size_t thread, std::size_t node)>;
    /** Changes the options and hooks of the `index`th session of a set before it starts. */
    using session_customizer = std::function<void(std::size_t index, session_options&, session_hooks&)>;
    net::awaitable<void> connect_subscribers(subscriber_set& set, std::size_t count, bool kernel_timestamps,
                                             wisdom_hook_factory const& hooks,
                                             session_customizer const& customize);
    net::awaitable<bool> leave(subscriber_set& set, report& out);
    net::awaitable<void> stop_server(subscriber_set& set, std::uint64_t present, report& out);
    void describe_subscribers(subscriber_set const& set, report& out) const;
    void server_figures(server_sample const& from, server_sample const& to, report& out) const;
    void client_figures(server_sample const& from, server_sample const& to, report& out) const;

    net::awaitable<void> run_fanout(report& out);
    net::awaitable<void> run_churn(report& out);
    net::awaitable<void> run_idle(report& out);
    net::awaitable<void> run_storm(report& out);
    /** Per-tick spreads of `receipts` whose first receipt falls in [from, to] (a whole interval before to).
     */
    std::vector<double> tick_spreads(std::vector<receipt> receipts, std::int64_t from_ns,
                                     std::int64_t to_ns) const;
    void start_churn_session(std::shared_ptr<churn_state> const& state, std::size_t thread);
    void print(report const& out) const;

    bench_options opt_;
    worker_pool& workers_;
    std::vector<net::ip::tcp::endpoint> endpoints_; // one per --port
    std::vector<std::string> hosts_;
    std::string host_; // all of them, for the report
    std::atomic<std::size_t> next_churn_node_{0};
    std::shared_ptr<tls_client> tls_; // wss://, shared by every session
    steady_clock::time_point began_;
    std::mt19937 random_{20240611};          // a fixed seed: two runs ping alike
    session_customizer const no_customizer_; // named: not built inside a co_await (GCC 12, PR 99576)
};

net::awaitable<void> bench::connect_subscribers(subscriber_set& set, std::size_t count,
                                                bool kernel_timestamps, wisdom_hook_factory const& hooks,
                                                session_customizer const& customize) {
    auto const counts = set.counts;
    set.sessions.reserve(count);
    auto const began = steady_clock::now();
    for (std::size_t i = 0; i < count; ++i) {
        // At most ramp_concurrency handshakes at a time, so the server's accept backlog never overflows.
        while (counts->in_flight.load() >= opt_.ramp_concurrency)
            co_await pause(1ms);
        ++counts->in_flight;
        auto const thread = workers_.next_index();
        auto const executor = workers_.at(thread);
        session_hooks h;
        h.on_joined = [counts] {
            ++counts->joined;
            --counts->in_flight;
        };
        auto const node = i % endpoints_.size();
        if (hooks) h.on_wisdom = hooks(thread, node);
        auto options = subscriber_session(node);
        options.kernel_timestamps = kernel_timestamps;
        // Idle subscribers hear nothing, by design; fanout ones a tick per interval. Beast's keep-alive
        // ping (half the idle timeout) must never coincide with the leave, or it can time the close out.
        if (opt_.mode == bench_mode::idle)
            options.idle_timeout.reset();
        else
            options.idle_timeout = std::max(milliseconds{30s}, 4 * opt_.interval);
        if (customize) customize(i, options, h);
        auto session = std::make_shared<client_session>(executor, std::move(options), std::move(h));
        set.sessions.push_back(session);
        spawn_session(executor, std::move(session), [counts](session_report const& r) {
            if (r.joined == steady_clock::time_point{})
                --counts->in_flight;
            else
                ++counts->left;
            counts->record(r);
            counts->ended.fetch_add(1, std::memory_order_release);
        });
    }
    set.ramp_complete = co_await wait_until([&] { return counts->in_flight.load() == 0; }, ramp_limit);
    set.ramp_seconds = seconds_f(steady_clock::now() - began).count();
    progress(std::to_string(counts->joined.load()) + "/" + std::to_string(count) + " subscribed in " +
             fixed(set.ramp_seconds) + " s");
}

net::awaitable<bool> bench::leave(subscriber_set& set, report& out) {
    auto const began = steady_clock::now();
    for (auto const& session : set.sessions)
        session->leave();
    auto const count = set.sessions.size();
    auto const counts = set.counts;
    bool const all_left = co_await wait_until(
        [&] { return counts->ended.load(std::memory_order_acquire) == count; }, leave_limit);
    set.sessions.clear();
    auto const seconds = seconds_f(steady_clock::now() - began).count();
    progress("left in " + fixed(seconds) + " s");
    out.figures["leave_seconds"] = seconds;
    if (!all_left)
        out.problem("not every subscriber finished leaving within " + std::to_string(leave_limit.count()) +
                    " s");
    co_return all_left;
}

// --shutdown: SIGTERM, then every session must end closed with 1001 (protocol section 11); how long the
// last one took is the figure, to compare with the server's 5 s shutdown grace period.
net::awaitable<void> bench::stop_server(subscriber_set& set, std::uint64_t present, report& out) {
    auto const counts = set.counts;
    auto const count = set.sessions.size();
    auto const ended_before = counts->ended.load(std::memory_order_acquire);
    auto const going_away_before = counts->going_away.load();
    auto const signalled = steady_clock::now();
    if (::kill(opt_.server_pids.front(), SIGTERM) != 0) {
        out.problem("could not send SIGTERM to the server: " + std::string(std::strerror(errno)));
        co_return;
    }
    progress("SIGTERM sent to " + std::to_string(opt_.server_pids.front()));
    bool const all_ended = co_await wait_until(
        [&] { return counts->ended.load(std::memory_order_acquire) == count; }, leave_limit, 1ms);
    set.sessions.clear();
    auto const last = steady_clock::time_point(steady_clock::duration(counts->last_ended.load()));
    auto const seconds = seconds_f(last - signalled).count();
    auto const going_away = counts->going_away.load() - going_away_before;
    auto const ended = counts->ended.load() - ended_before;
    auto& f = out.figures;
    f["shutdown_seconds"] = seconds;
    f["shutdown_closed_1001"] = going_away;
    f["shutdown_not_1001"] = present - std::min<std::uint64_t>(present, going_away);
    progress("the last subscriber was closed " + fixed(seconds, 3) + " s after SIGTERM");
    out.line("**Shutdown: " + std::to_string(going_away) + " of " + std::to_string(present) +
             " subscribers closed with 1001; the last " + fixed(seconds * 1e3, 0) + " ms after SIGTERM** (" +
             std::to_string(ended) + " sessions ended)");
    if (!all_ended)
        out.problem("not every subscriber had ended " + std::to_string(leave_limit.count()) +
                    " s after SIGTERM");
    if (going_away != present) out.problem("not every subscriber was closed with 1001");
}

void bench::describe_subscribers(subscriber_set const& set, report& out) const {
    auto const& c = *set.counts;
    auto const failed = c.failed();
    out.figures["subscribers_joined"] = c.joined.load();
    out.figures["subscribers_failed"] = failed;
    out.figures["ramp_seconds"] = set.ramp_seconds;
    std::string line = "Subscribers: " + std::to_string(c.joined.load()) + "/" +
                       std::to_string(opt_.subscribers) + " joined in " + fixed(set.ramp_seconds) +
                       " s (at most " + std::to_string(opt_.ramp_concurrency) + " handshakes in flight); " +
                       std::to_string(failed) + " failed";
    json::object by_status;
    for (std::size_t i = 0; i < session_status_count; ++i)
        if (auto const n = c.by_status[i].load();
            n != 0 && static_cast<session_status>(i) != session_status::completed) {
            line += " (" + std::string(to_string(static_cast<session_status>(i))) + ": " + std::to_string(n) +
                    ")";
            by_status[to_string(static_cast<session_status>(i))] = n;
        }
    out.figures["subscribers_failed_by_cause"] = std::move(by_status);
    out.line(line);
    std::lock_guard lock(c.details_mutex);
    for (auto const& detail : c.details)
        out.line("  failure: " + detail);
}

void bench::server_figures(server_sample const& from, server_sample const& to, report& out) const {
    client_figures(from, to, out);
    if (opt_.server_pids.empty()) return;
    if (!from.proc || !to.proc) {
        out.problem("the server's /proc figures could not be read (has it exited?)");
        return;
    }
    auto const cpu = to.proc->cpu_seconds - from.proc->cpu_seconds;
    out.figures["server_cpu_seconds"] = cpu;
    out.figures["server_cpu_percent"] = 100.0 * cpu / seconds_f(to.at - from.at).count();
    out.figures["server_rss_bytes"] = to.proc->resident_memory_bytes;
    out.figures["server_open_fds"] = to.proc->open_fds;
}

// The load generator's own CPU and memory over the same window as the server's: a client that used all of
// its threads' time may have measured itself rather than the server.
void bench::client_figures(server_sample const& from, server_sample const& to, report& out) const {
    if (!from.self || !to.self) return;
    auto const cpu = to.self->cpu_seconds - from.self->cpu_seconds;
    auto const percent = 100.0 * cpu / seconds_f(to.at - from.at).count();
    auto const threads = static_cast<double>(workers_.size());
    out.figures["client_cpu_seconds"] = cpu;
    out.figures["client_cpu_percent"] = percent;
    out.figures["client_rss_bytes"] = to.self->resident_memory_bytes;
    out.figures["client_open_fds"] = to.self->open_fds;
    out.figures["client_max_fds"] = to.self->max_fds;
    out.line("wolf-bench itself over the same window: " + fixed(cpu, 2) + " s of CPU (" + fixed(percent) +
             " % of a core, " + std::to_string(workers_.size()) + " client thread(s)" +
             (percent > 90.0 * threads ? ": saturated, so the figures may be the client's" : "") + "), RSS " +
             std::to_string(to.self->resident_memory_bytes / (1024 * 1024)) + " MiB, " +
             std::to_string(to.self->open_fds) + " descriptors open of " + std::to_string(to.self->max_fds));
}

net::awaitable<void> bench::run_fanout(report& out) {
    auto const interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.interval).count();
    // Receipts, one log per client thread, appended by that thread only; read here once every session
    // has ended (the release/acquire on the tally's `ended` orders the appends before the reads).
    // Shared with the hooks, which a session that overstays every limit could still call after this frame.
    auto const logs = std::make_shared<std::vector<std::vector<receipt>>>(workers_.size());
    auto const per_thread = opt_.subscribers / workers_.size() + 1;
    // Room for the whole run (ramp and leave included, ~10 s) up front: no reallocation while measuring.
    auto const ticks_in_run = static_cast<std::size_t>((opt_.duration + 10s) / opt_.interval) + 10;
    for (auto& log : *logs)
        log.reserve(std::min<std::size_t>(per_thread * ticks_in_run, 50'000'000));
    // Named, not built inside the co_await below: GCC 12 destroys such temporaries twice (PR 99576).
    wisdom_hook_factory const hooks = [logs](std::size_t thread,
                                             std::size_t node) -> session_hooks::wisdom_hook {
        return [logs, log = &(*logs)[thread],
                node = static_cast<std::uint32_t>(node)]( // `logs` keeps `log` alive
                   std::string_view frame, system_clock::time_point received) {
            auto const now = system_clock::now();
            log->push_back({content_hash(frame),
                            std::chrono::nanoseconds(received.time_since_epoch()).count(),
                            std::chrono::nanoseconds(now - received).count(), node});
        };
    };

    auto const baseline = sample();
    subscriber_set subs;
    co_await connect_subscribers(subs, opt_.subscribers, true, hooks, no_customizer_);
    if (!subs.ramp_complete)
        out.problem("the ramp did not finish within " + std::to_string(ramp_limit.count()) + " min");
    if (subs.counts->failed() != 0) out.problem("some subscribers failed to join");
    if (subs.counts->joined.load() == 0) out.problem("no subscriber joined");

    // One interval of settling, so the window starts with every subscriber in place for whole ticks.
    co_await pause(opt_.interval);
    auto const present = subs.counts->joined.load() - subs.counts->left.load();
    auto const start = sample();
    progress("window: " + wolf::format_duration(opt_.duration) + " with " + std::to_string(present) +
             " subscribers");
    co_await pause(opt_.duration);
    auto const end = sample();
    bool const all_left = co_await leave(subs, out);
    describe_subscribers(subs, out);
    if (!all_left) co_return; // the logs are still being written: nothing to read safely

    std::vector<receipt> all;
    std::size_t total = 0;
    for (auto const& log : *logs)
        total += log.size();
    all.reserve(total);
    for (auto& log : *logs) {
        all.insert(all.end(), log.begin(), log.end());
        std::vector<receipt>().swap(log);
    }
    auto const t0 = std::chrono::nanoseconds(start.wall.time_since_epoch()).count();
    auto const t1 = std::chrono::nanoseconds(end.wall.time_since_epoch()).count();
    std::uint64_t deliveries = 0;
    std::vector<double> lags;
    for (auto const& r : all)
        if (r.received_ns >= t0 && r.received_ns <= t1) {
            ++deliveries;
            lags.push_back(ms(r.lag_ns));
        }
    auto const ticks = group_ticks(all, interval_ns);

    // A tick counts if its first receipt is in the window and at least one interval before its end, so
    // none of its receipts are cut off.
    std::vector<double> spreads, node_spreads;
    std::uint64_t receipts = 0, missed = 0, extra = 0, partial = 0;
    for (auto const& t : ticks) {
        if (t.first_ns < t0 || t.first_ns > t1 - interval_ns) continue;
        spreads.push_back(ms(t.spread_ns()));
        if (t.nodes == endpoints_.size())
            node_spreads.push_back(ms(t.node_spread_ns()));
        else
            ++partial;
        receipts += t.receipts;
        if (t.receipts < present) missed += present - t.receipts;
        if (t.receipts > present) extra += t.receipts - present;
    }
    auto const window = seconds_f(end.at - start.at).count();
    auto const counted = spreads.size();
    auto const expected = (opt_.duration - opt_.interval) / opt_.interval;
    auto& f = out.figures;
    f["window_seconds"] = window;
    f["subscribers_in_window"] = present;
    f["ticks_counted"] = counted;
    f["ticks_expected"] = expected;
    f["receipts_in_counted_ticks"] = receipts;
    f["missed"] = missed;
    f["extra_receipts"] = extra;
    auto const spread_p50 = percentile(spreads, 50), spread_p99 = percentile(spreads, 99);
    auto const spread_max = spreads.empty() ? 0.0 : *std::max_element(spreads.begin(), spreads.end());
    f["spread_p50_ms"] = spread_p50;
    f["spread_p99_ms"] = spread_p99;
    f["spread_max_ms"] = spread_max;
    f["deliveries"] = deliveries;
    f["deliveries_per_second"] = static_cast<double>(deliveries) / window;
    auto const lag_p50 = percentile(lags, 50), lag_p99 = percentile(lags, 99);
    f["client_lag_p50_ms"] = lag_p50;
    f["client_lag_p99_ms"] = lag_p99;
    out.line("Window: " + fixed(window, 2) + " s with " + std::to_string(present) + " subscribers; " +
             std::to_string(counted) + " ticks counted (about " + std::to_string(expected) + " expected)");
    out.line("Spread per tick (last - first kernel receive time): p50 " + fixed(spread_p50, 3) + " ms, p99 " +
             fixed(spread_p99, 3) + " ms, max " + fixed(spread_max, 3) + " ms");
    if (endpoints_.size() > 1) {
        // Between nodes: each node's first receipt of the tick, the last of those minus the first.
        auto const node_p50 = percentile(node_spreads, 50), node_p99 = percentile(node_spreads, 99);
        auto const node_max =
            node_spreads.empty() ? 0.0 : *std::max_element(node_spreads.begin(), node_spreads.end());
        f["nodes"] = endpoints_.size();
        f["node_spread_p50_ms"] = node_p50;
        f["node_spread_p99_ms"] = node_p99;
        f["node_spread_max_ms"] = node_max;
        f["ticks_missing_a_node"] = partial;
        out.line("Spread across " + std::to_string(endpoints_.size()) +
                 " nodes per tick (each node's first receipt, last - first): p50 " + fixed(node_p50, 3) +
                 " ms, p99 " + fixed(node_p99, 3) + " ms, max " + fixed(node_max, 3) +
                 " ms; ticks not seen on every node: " + std::to_string(partial));
        if (partial != 0) out.problem("some ticks did not reach every node");
    }
    out.line("Deliveries in the window: " + std::to_string(deliveries) + " (" +
             fixed(static_cast<double>(deliveries) / window, 0) +
             "/s); missed in counted ticks: " + std::to_string(missed) +
             (extra ? "; extra receipts (grouping anomaly): " + std::to_string(extra) : ""));
    out.line("Client lag (kernel receipt to processing): p50 " + fixed(lag_p50, 3) + " ms, p99 " +
             fixed(lag_p99, 3) + " ms");
    if (counted == 0) out.problem("no tick was counted in the window");

    server_figures(start, end, out);
    if (start.proc && end.proc) {
        auto const cpu = end.proc->cpu_seconds - start.proc->cpu_seconds;
        cpu_per_unit const per_delivery(*start.proc, *end.proc, deliveries);
        f["server_cpu_us_per_delivery"] = per_delivery.total;
        f["server_user_us_per_delivery"] = per_delivery.user;
        f["server_system_us_per_delivery"] = per_delivery.system;
        auto const grew = static_cast<double>(end.proc->resident_memory_bytes) -
                          (baseline.proc ? static_cast<double>(baseline.proc->resident_memory_bytes) : 0.0);
        f["server_rss_per_connection_bytes"] = present ? grew / static_cast<double>(present) : 0.0;
        out.line("**Server CPU per delivery: " + fixed(per_delivery.total, 3) + " µs** (" + fixed(cpu, 2) +
                 " s of CPU over the window, " + fixed(100.0 * cpu / window) + " % of a core)" +
                 per_delivery.parts(3));
        out.line("Server RSS at the end: " + std::to_string(end.proc->resident_memory_bytes / 1024) +
                 " KiB (" + fixed(present ? grew / static_cast<double>(present) : 0.0, 0) +
                 " B per subscriber over the baseline)");
    }
}

// Called on the control thread for the first sessions, then on the client threads by the handlers: it
// touches nothing but `state`, the session's own objects and what never changes after construction.
void bench::start_churn_session(std::shared_ptr<churn_state> const& state, std::size_t thread) {
    auto const executor = workers_.at(thread);
    auto options = base_session(next_churn_node_.fetch_add(1, std::memory_order_relaxed));
    options.hold = 0ms; // leave as soon as subscribed
    ++state->in_flight;
    spawn_session(
        executor, std::make_shared<client_session>(executor, std::move(options)),
        [this, state, thread](session_report const& r) {
            state->records[thread].push_back({r.ended, r.ended - r.started, r.status, r.tls_resumed});
            if (r.status != session_status::completed) {
                std::lock_guard lock(state->details_mutex);
                if (state->details.size() < 5)
                    state->details.push_back(std::string(to_string(r.status)) + ": " + r.detail);
            }
            // The next session starts on the same thread, from the handler: no control thread
            // in the loop, and every thread keeps its share of the concurrency. After a failure
            // it waits a little, so a server that refuses everything does not make us spin.
            if (!state->running.load(std::memory_order_relaxed)) {
                state->in_flight.fetch_sub(1, std::memory_order_release);
            } else if (r.status == session_status::completed) {
                start_churn_session(state, thread);
                state->in_flight.fetch_sub(1, std::memory_order_release);
            } else {
                auto timer = std::make_shared<net::steady_timer>(workers_.at(thread), 100ms);
                timer->async_wait([this, state, thread, timer](boost::system::error_code) {
                    if (state->running.load(std::memory_order_relaxed)) start_churn_session(state, thread);
                    state->in_flight.fetch_sub(1, std::memory_order_release);
                });
            }
        });
}

net::awaitable<void> bench::run_churn(report& out) {
    auto const state = std::make_shared<churn_state>(workers_.size());
    for (auto& r : state->records)
        r.reserve(100'000);
    for (std::size_t i = 0; i < opt_.concurrency; ++i)
        start_churn_session(state, workers_.next_index());
    co_await pause(opt_.warmup);
    auto const start = sample();
    progress("window: " + wolf::format_duration(opt_.duration) + " at concurrency " +
             std::to_string(opt_.concurrency));
    co_await pause(opt_.duration);
    auto const end = sample();
    state->running = false;
    bool const drained = co_await wait_until(
        [&] { return state->in_flight.load(std::memory_order_acquire) == 0; }, churn_drain_limit);
    if (!drained) {
        out.problem("churn sessions still running " + std::to_string(churn_drain_limit.count()) +
                    " s after the window");
        co_return; // their records are still being written
    }

    std::uint64_t completed = 0, failed = 0, total = 0, total_failed = 0, resumed = 0;
    std::map<std::string, std::uint64_t> failed_by_cause;
    std::vector<double> latencies;
    for (auto const& records : state->records)
        for (auto const& r : records) {
            ++total;
            bool const ok = r.status == session_status::completed;
            if (!ok) ++total_failed;
            if (r.ended < start.at || r.ended > end.at) continue;
            if (ok) {
                ++completed;
                if (r.tls_resumed) ++resumed;
                latencies.push_back(seconds_f(r.latency).count() * 1e3);
            } else {
                ++failed;
                ++failed_by_cause[std::string(to_string(r.status))];
            }
        }
    auto const window = seconds_f(end.at - start.at).count();
    auto& f = out.figures;
    f["window_seconds"] = window;
    f["completed"] = completed;
    f["sessions_per_second"] = static_cast<double>(completed) / window;
    f["failed"] = failed;
    json::object causes;
    for (auto const& [cause, n] : failed_by_cause)
        causes[cause] = n;
    f["failed_by_cause"] = std::move(causes);
    f["sessions_total"] = total;
    if (tls_) {
        f["tls_resumed"] = resumed;
        out.line("TLS: " + std::to_string(completed - resumed) + " full handshakes, " +
                 std::to_string(resumed) + " resumed (" +
                 (opt_.tls_resume ? "--tls-resume" : "resumption not offered") + ")");
    }
    f["failed_total"] = total_failed;
    auto const p50 = percentile(latencies, 50), p99 = percentile(latencies, 99);
    f["latency_p50_ms"] = p50;
    f["latency_p99_ms"] = p99;
    auto const latency_max = latencies.empty() ? 0.0 : *std::max_element(latencies.begin(), latencies.end());
    f["latency_max_ms"] = latency_max;
    std::string line = "Window: " + fixed(window, 2) + " s; sessions completed " + std::to_string(completed) +
                       " (" + fixed(static_cast<double>(completed) / window, 0) + "/s), failed " +
                       std::to_string(failed);
    for (auto const& [cause, n] : failed_by_cause)
        line += " (" + cause + ": " + std::to_string(n) + ")";
    out.line(line);
    out.line("Session latency (TCP connect to the end of the close): p50 " + fixed(p50, 2) + " ms, p99 " +
             fixed(p99, 2) + " ms, max " + fixed(latency_max, 2) + " ms");
    out.line("Whole run (warm-up and drain too): " + std::to_string(total) + " sessions, " +
             std::to_string(total_failed) + " failed");
    for (auto const& detail : state->details)
        out.line("  failure: " + detail);
    if (completed == 0) out.problem("no session completed in the window");

    server_figures(start, end, out);
    if (start.proc && end.proc) {
        auto const cpu = end.proc->cpu_seconds - start.proc->cpu_seconds;
        cpu_per_unit const per_session(*start.proc, *end.proc, completed);
        f["server_cpu_us_per_session"] = per_session.total;
        f["server_user_us_per_session"] = per_session.user;
        f["server_system_us_per_session"] = per_session.system;
        out.line("**Server CPU per completed session: " + fixed(per_session.total, 1) + " µs** (" +
                 fixed(cpu, 2) + " s of CPU over the window, " + fixed(100.0 * cpu / window) +
                 " % of a core)" + per_session.parts(1));
    }
}

net::awaitable<void> bench::run_idle(report& out) {
    auto const baseline = sample();
    subscriber_set subs;
    wisdom_hook_factory const no_hooks;
    co_await connect_subscribers(subs, opt_.subscribers, false, no_hooks, no_customizer_);
    if (!subs.ramp_complete)
        out.problem("the ramp did not finish within " + std::to_string(ramp_limit.count()) + " min");
    if (subs.counts->failed() != 0) out.problem("some subscribers failed to join");
    if (subs.counts->joined.load() == 0) out.problem("no subscriber joined");
    co_await pause(opt_.settle);
    auto const settled = sample();
    progress("holding " + wolf::format_duration(opt_.duration));
    co_await pause(opt_.duration);
    auto const held = sample();
    auto const present = subs.counts->joined.load() - subs.counts->left.load();
    auto const failed_while_held = subs.counts->failed();
    if (opt_.shutdown) {
        describe_subscribers(subs, out); // before the shutdown ends every session
        co_await stop_server(subs, present, out);
    } else {
        co_await leave(subs, out);
        describe_subscribers(subs, out);
    }

    auto& f = out.figures;
    f["subscribers_held"] = present;
    f["failed_while_held"] = failed_while_held;
    auto const wisdom = subs.counts->wisdom.load();
    f["wisdom_received"] = wisdom;
    out.line("Held " + std::to_string(present) + " subscribers for " + wolf::format_duration(opt_.duration) +
             " after " + wolf::format_duration(opt_.settle) +
             " of settling; failures by the end of the hold: " + std::to_string(failed_while_held));
    if (wisdom != 0)
        out.line("Warning: " + std::to_string(wisdom) +
                 " wisdom frames arrived: a broadcast during the sample (use a longer server --interval)");
    server_figures(settled, held, out);
    if (baseline.proc && settled.proc && held.proc && present != 0) {
        auto const base = static_cast<double>(baseline.proc->resident_memory_bytes);
        auto const per_settled =
            (static_cast<double>(settled.proc->resident_memory_bytes) - base) / static_cast<double>(present);
        auto const per_held =
            (static_cast<double>(held.proc->resident_memory_bytes) - base) / static_cast<double>(present);
        f["server_rss_baseline_bytes"] = baseline.proc->resident_memory_bytes;
        f["server_rss_settled_bytes"] = settled.proc->resident_memory_bytes;
        f["server_rss_held_bytes"] = held.proc->resident_memory_bytes;
        f["server_rss_per_connection_settled_bytes"] = per_settled;
        f["server_rss_per_connection_bytes"] = per_held;
        f["server_rss_per_connection_kib"] = per_held / 1024;
        f["server_fds_per_connection"] =
            (static_cast<double>(held.proc->open_fds) - static_cast<double>(baseline.proc->open_fds)) /
            static_cast<double>(present);
        out.line("Server RSS: baseline " + std::to_string(baseline.proc->resident_memory_bytes / 1024) +
                 " KiB, settled " + std::to_string(settled.proc->resident_memory_bytes / 1024) +
                 " KiB, after the hold " + std::to_string(held.proc->resident_memory_bytes / 1024) + " KiB");
        out.line("**Server RSS per connection: " + fixed(per_held, 0) + " B (" + fixed(per_held / 1024, 2) +
                 " KiB)** after the hold; " + fixed(per_settled, 0) + " B when settled");
        if (baseline.kernel && held.kernel) {
            // Both ends of every connection are sockets of this kernel, and alike while idle: half the growth
            // is the server's side.
            auto const grew =
                static_cast<double>(held.kernel->slab_bytes + held.kernel->tcp_buffer_bytes) -
                static_cast<double>(baseline.kernel->slab_bytes + baseline.kernel->tcp_buffer_bytes);
            auto const per_connection = grew / (2.0 * static_cast<double>(present));
            f["kernel_memory_per_connection_bytes"] = per_connection;
            f["kernel_memory_per_connection_kib"] = per_connection / 1024;
            out.line(
                "Kernel memory per connection (slab and TCP buffers, machine-wide, half the growth: both "
                "ends are local): " +
                fixed(per_connection, 0) + " B (" + fixed(per_connection / 1024, 2) + " KiB)");
        }
        // Idle subscribers only ping (the contract: every ping period): the hold's CPU is what pings cost.
        auto const cpu = held.proc->cpu_seconds - settled.proc->cpu_seconds;
        auto const hold = seconds_f(held.at - settled.at).count();
        auto const pings = static_cast<double>(present) * hold / seconds_f(opt_.ping_period).count();
        f["server_cpu_us_per_ping"] = cpu * 1e6 / pings;
        out.line("Server CPU over the hold: " + fixed(cpu, 2) + " s (" + fixed(100.0 * cpu / hold) +
                 " % of a core), about " + fixed(cpu * 1e6 / pings, 1) + " µs per ping (" + fixed(pings, 0) +
                 " pings)");
    }
}

std::vector<double> bench::tick_spreads(std::vector<receipt> receipts, std::int64_t from_ns,
                                        std::int64_t to_ns) const {
    auto const interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(opt_.interval).count();
    std::vector<double> spreads;
    for (auto const& t : group_ticks(receipts, interval_ns))
        if (t.first_ns >= from_ns && t.first_ns <= to_ns - interval_ns) spreads.push_back(ms(t.spread_ns()));
    return spreads;
}

/** One storm session's view of its recovery: written on its client thread only, read once it has ended. */
struct recovery_check {
    std::uint64_t since = 0;
    std::uint64_t last = 0;   // the latest offset received
    std::uint64_t target = 0; // the confirmation's latest + 1: one live broadcast after the replay
    std::uint64_t missed = 0;
    std::uint64_t duplicated = 0;
    bool recovered = false;
    bool confirmed = false;
    bool done = false;
};

net::awaitable<void> bench::run_storm(report& out) {
    // The steady subscribers' receipts, as in fanout: their ticks are timed before and during the storm.
    auto const logs = std::make_shared<std::vector<std::vector<receipt>>>(workers_.size());
    for (auto& log : *logs)
        log.reserve(opt_.steady / workers_.size() * 2000 + 1000);
    // Every hook and customizer is named, not built inside a co_await: GCC 12 destroys such temporaries
    // twice (PR 99576).
    wisdom_hook_factory const steady_hooks = [logs](std::size_t thread,
                                                    std::size_t node) -> session_hooks::wisdom_hook {
        return [logs, log = &(*logs)[thread], node = static_cast<std::uint32_t>(node)](
                   std::string_view frame, system_clock::time_point received) {
            auto const now = system_clock::now();
            log->push_back({content_hash(frame),
                            std::chrono::nanoseconds(received.time_since_epoch()).count(),
                            std::chrono::nanoseconds(now - received).count(), node});
        };
    };
    subscriber_set steady;
    co_await connect_subscribers(steady, opt_.steady, true, steady_hooks, no_customizer_);

    // The storm's subscribers, each remembering the last offset it received.
    auto const count = opt_.subscribers;
    auto const last_offsets = std::make_shared<std::vector<std::uint64_t>>(count, 0);
    subscriber_set first;
    wisdom_hook_factory const no_hooks;
    session_customizer const remember_last = [last_offsets](std::size_t i, session_options&,
                                                            session_hooks& h) {
        h.on_wisdom = [last_offsets, i](std::string_view frame, system_clock::time_point) {
            (*last_offsets)[i] = quick_offset(frame);
        };
    };
    co_await connect_subscribers(first, count, false, no_hooks, remember_last);
    bool const ready = first.ramp_complete && steady.ramp_complete && first.counts->failed() == 0 &&
                       steady.counts->failed() == 0;
    if (!ready) out.problem("not every subscriber joined");
    // Long enough that every storm session has received broadcasts, and for the "before" window.
    auto const before_from = sample();
    co_await pause(std::max<steady_clock::duration>(opt_.duration, opt_.interval * (opt_.behind + 2)));

    // The storm: every one dropped at once, then all reconnecting with `since` --behind broadcasts back.
    auto const storm_from = sample();
    for (auto const& session : first.sessions)
        session->drop();
    auto const dropped = co_await wait_until(
        [&] { return first.counts->ended.load(std::memory_order_acquire) == count; }, leave_limit);
    if (!dropped) out.problem("the dropped sessions did not all end");
    std::string epoch;
    {
        std::lock_guard lock(first.counts->details_mutex);
        epoch = first.counts->epoch; // one server, one epoch: every dropped session's `initial` said it
    }
    progress("dropped " + std::to_string(count) + " subscribers; reconnecting " +
             std::to_string(opt_.behind) + " broadcasts behind");

    auto const checks = std::make_shared<std::vector<recovery_check>>(count);
    auto const done = std::make_shared<std::atomic<std::uint64_t>>(0);
    subscriber_set second;
    session_customizer const recover =
        [&, checks, done, last_offsets](std::size_t i, session_options& options, session_hooks& h) {
            auto& check = (*checks)[i];
            auto const last = (*last_offsets)[i];
            check.since = last > opt_.behind ? last - opt_.behind : 0;
            check.last = check.since;
            options.since = std::pair{epoch, check.since};
            h.on_confirmed = [checks, i](bool recovered, std::uint64_t latest) {
                auto& c = (*checks)[i];
                c.confirmed = true;
                c.recovered = recovered;
                c.target = latest + 1;
            };
            h.on_wisdom = [checks, done, i](std::string_view frame, system_clock::time_point) {
                auto& c = (*checks)[i];
                auto const offset = quick_offset(frame);
                if (offset <= c.last)
                    ++c.duplicated;
                else
                    c.missed += offset - c.last - 1;
                c.last = std::max(c.last, offset);
                if (!c.done && c.confirmed && c.last >= c.target) {
                    c.done = true;
                    done->fetch_add(1, std::memory_order_release);
                }
            };
        };
    co_await connect_subscribers(second, count, false, no_hooks, recover);
    bool const complete =
        co_await wait_until([&] { return done->load(std::memory_order_acquire) == count; }, ramp_limit);
    auto const storm_to = sample();
    auto const storm_seconds = seconds_f(storm_to.at - storm_from.at).count();
    progress(std::to_string(done->load()) + "/" + std::to_string(count) + " recovered in " +
             fixed(storm_seconds) + " s");
    if (!complete) out.problem("not every session completed its recovery");

    bool const steady_left = co_await leave(steady, out);
    bool const second_left = co_await leave(second, out);
    if (!steady_left || !second_left) co_return;

    std::uint64_t recovered = 0, missed = 0, duplicated = 0;
    for (auto const& c : *checks) {
        recovered += c.recovered ? 1 : 0;
        missed += c.missed;
        duplicated += c.duplicated;
    }
    auto const not_recovered = count - recovered; // a confirmation with recovered false, or none at all
    std::vector<receipt> all;
    for (auto& log : *logs)
        all.insert(all.end(), log.begin(), log.end());
    auto const ns = [](server_sample const& s) {
        return std::chrono::nanoseconds(s.wall.time_since_epoch()).count();
    };
    auto before = tick_spreads(all, ns(before_from), ns(storm_from));
    auto during = tick_spreads(all, ns(storm_from), ns(storm_to));

    auto& f = out.figures;
    f["storm_sessions"] = count;
    f["steady_sessions"] = opt_.steady;
    f["behind"] = opt_.behind;
    f["recovered"] = recovered;
    f["not_recovered"] = not_recovered;
    f["missed"] = missed;
    f["duplicated"] = duplicated;
    f["storm_seconds"] = storm_seconds;
    f["steady_spread_before_p50_ms"] = percentile(before, 50);
    f["steady_spread_before_p99_ms"] = percentile(before, 99);
    f["steady_spread_during_p50_ms"] = percentile(during, 50);
    f["steady_spread_during_p99_ms"] = percentile(during, 99);
    f["ticks_before"] = before.size();
    f["ticks_during"] = during.size();
    out.line("Storm: " + std::to_string(count) + " subscribers dropped at once, reconnecting with `since` " +
             std::to_string(opt_.behind) + " broadcasts back; " + std::to_string(recovered) + " recovered, " +
             std::to_string(not_recovered) + " not, in " + fixed(storm_seconds, 2) + " s");
    out.line("Recoveries checked: " + std::to_string(missed) + " broadcasts missed, " +
             std::to_string(duplicated) + " duplicated");
    out.line("Steady subscribers (" + std::to_string(opt_.steady) + "), spread per tick: before p50 " +
             fixed(percentile(before, 50), 3) + " / p99 " + fixed(percentile(before, 99), 3) + " ms (" +
             std::to_string(before.size()) + " ticks); during the storm p50 " +
             fixed(percentile(during, 50), 3) + " / p99 " + fixed(percentile(during, 99), 3) + " ms (" +
             std::to_string(during.size()) + " ticks)");
    if (missed || duplicated) out.problem("a recovery missed or repeated broadcasts");
    if (recovered != count) out.problem("not every session was recovered");
    server_figures(storm_from, storm_to, out);
    if (storm_from.proc && storm_to.proc) {
        auto const cpu = storm_to.proc->cpu_seconds - storm_from.proc->cpu_seconds;
        f["server_cpu_us_per_recovered_session"] =
            recovered ? cpu * 1e6 / static_cast<double>(recovered) : 0.0;
        out.line("**Server CPU per recovered session: " +
                 fixed(recovered ? cpu * 1e6 / static_cast<double>(recovered) : 0.0, 1) + " µs** (" +
                 fixed(cpu, 2) + " s of CPU over the storm, with its live ticks)");
    }
}

void bench::print(report const& out) const {
    auto& o = std::cout;
    o << "## wolf-bench " << opt_.mode_name << " against " << host_;
    for (std::size_t i = 0; i < opt_.server_pids.size(); ++i)
        o << (i == 0 ? " (pid " : ", ") << opt_.server_pids[i]
          << (i + 1 == opt_.server_pids.size() ? ")" : "");
    o << "\n\n";
    for (auto const& line : out.lines)
        o << (line.starts_with("  ") ? "" : "- ") << line << '\n';
    o << "- Run: " << (out.problems.empty() ? "OK" : "FAILED");
    for (std::size_t i = 0; i < out.problems.size(); ++i)
        o << (i == 0 ? " — " : "; ") << out.problems[i];
    o << std::endl;
}

net::awaitable<int> bench::run() {
    report out;
    auto& p = out.parameters;
    p["host"] = opt_.host;
    p["port"] = opt_.ports.front();
    p["server_pid"] = opt_.server_pids.empty() ? 0 : opt_.server_pids.front();
    if (opt_.ports.size() > 1) {
        json::array ports, pids;
        for (auto const port : opt_.ports)
            ports.emplace_back(port);
        for (auto const pid : opt_.server_pids)
            pids.emplace_back(pid);
        p["ports"] = std::move(ports);
        p["server_pids"] = std::move(pids);
    }
    p["threads"] = opt_.threads;
    p["tls"] = static_cast<bool>(tls_);
    p["tls_resume"] = opt_.tls_resume;
    p["ping_period_ms"] = opt_.ping_period.count();
    p["duration_ms"] = opt_.duration.count();
    switch (opt_.mode) {
    case bench_mode::fanout:
        p["subscribers"] = opt_.subscribers;
        p["interval_ms"] = opt_.interval.count();
        p["ramp_concurrency"] = opt_.ramp_concurrency;
        progress("fanout: " + std::to_string(opt_.subscribers) + " subscribers of " + host_ + ", interval " +
                 wolf::format_duration(opt_.interval));
        co_await run_fanout(out);
        break;
    case bench_mode::churn:
        p["concurrency"] = opt_.concurrency;
        p["warmup_ms"] = opt_.warmup.count();
        progress("churn: concurrency " + std::to_string(opt_.concurrency) + " against " + host_);
        co_await run_churn(out);
        break;
    case bench_mode::storm:
        p["subscribers"] = opt_.subscribers;
        p["steady"] = opt_.steady;
        p["behind"] = opt_.behind;
        p["interval_ms"] = opt_.interval.count();
        p["ramp_concurrency"] = opt_.ramp_concurrency;
        progress("storm: " + std::to_string(opt_.subscribers) + " subscribers of " + host_ +
                 " dropped and back");
        co_await run_storm(out);
        break;
    case bench_mode::idle:
        p["subscribers"] = opt_.subscribers;
        p["settle_ms"] = opt_.settle.count();
        p["ramp_concurrency"] = opt_.ramp_concurrency;
        progress("idle: " + std::to_string(opt_.subscribers) + " subscribers of " + host_);
        co_await run_idle(out);
        break;
    }
    print(out);
    if (!opt_.json_path.empty()) {
        json::array problems;
        for (auto const& problem : out.problems)
            problems.emplace_back(problem);
        json::object document{{"tool", "wolf-bench"},
                              {"mode", opt_.mode_name},
                              {"ok", out.problems.empty()},
                              {"problems", std::move(problems)},
                              {"parameters", std::move(out.parameters)},
                              {"figures", std::move(out.figures)}};
        std::ofstream file(opt_.json_path);
        file << json::serialize(document) << '\n';
        if (!file) {
            std::cerr << "wolf-bench: cannot write " << opt_.json_path << '\n';
            co_return 1;
        }
    }
    co_return out.problems.empty() ? 0 : 1;
}

} // namespace

int main(int argc, char* argv[]) {
    auto parsed = parse_command_line(argc, argv);
    if (auto const* code = std::get_if<int>(&parsed)) return *code;
    auto const& opt = std::get<bench_options>(parsed);

    // Every session is a descriptor of this process: take the hard limit, and refuse a run that cannot fit
    // in it rather than fail part way. Past it, run several wolf-bench processes, each with a share.
    auto const sessions = opt.mode == bench_mode::churn   ? opt.concurrency
                          : opt.mode == bench_mode::storm ? opt.subscribers + opt.steady
                                                          : opt.subscribers;
    if (auto const limit = wolf::raise_descriptor_limit(); limit && sessions + 64 > limit->soft) {
        std::cerr << "wolf-bench: " << sessions << " sessions need " << sessions + 64
                  << " descriptors and this process may open " << limit->soft
                  << " (ulimit -Hn): run several wolf-bench processes, each with a share\n";
        return 2;
    }

    worker_pool workers(opt.threads, "wolf-bench");
    net::io_context control{1};
    bench run(opt, workers);
    int exit_code = 1;
    net::co_spawn(control, run.run(), [&](std::exception_ptr error, int code) {
        if (error) std::rethrow_exception(error);
        exit_code = code;
    });
    try {
        control.run();
    } catch (std::exception const& e) {
        std::cerr << "wolf-bench: " << e.what() << '\n';
        return 1;
    }
    return exit_code;
}
