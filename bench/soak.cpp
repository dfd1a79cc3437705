// wolf-soak: thousands of subscribers plus a churn of short sessions against a running server, for a set
// time, with the server's memory and descriptors read from /proc at each phase. A leak shows as
// descriptors that do not return to the baseline, or as memory that grows from one cycle to the next.
// See bench/README.md.

#include "client.hpp"
#include "config.hpp"
#include "option_values.hpp"
#include "probe.hpp"
#include "support/async.hpp"
#include "support/process_stats.hpp"
#include "worker_pool.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <vector>

namespace {

using namespace wolf::bench;
using namespace std::chrono_literals;
namespace net = wolf::net;
namespace po = boost::program_options;
using wolf::count_open_fds;
using wolf::process_stats;
using wolf::read_process_stats;
using wolf::use_nothrow;

/** Resident memory in KiB, the unit of the report. */
std::uint64_t rss_kib(process_stats const& p) {
    return p.resident_memory_bytes / 1024;
}

// Bounds on the waits between phases. Every session is bounded by its own timeouts (10 s per handshake,
// 30 s of silence), so these only matter when something is badly wrong.
constexpr auto ramp_limit = 5min;
constexpr auto churn_drain_limit = 60s;
constexpr auto leave_limit = 60s;
constexpr auto healthz_limit = 30s;
constexpr auto fd_settle_limit = 15s; // the server drops a peer that never finishes closing after 10 s
constexpr auto probe_timeout = 5s;

struct soak_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    pid_t server_pid = 0;
    std::size_t subscribers = 5000;
    std::size_t churn = 50; // new short sessions per second
    milliseconds duration = 10min;
    std::size_t cycles = 2;
    std::size_t threads = 1;
    milliseconds interval = 1s; // the server's --interval: what "expected ticks" are computed from
    milliseconds ping_period = 5s;
    milliseconds churn_hold = 2s;
    std::size_t concurrency = 200; // subscriber handshakes in flight during the ramp
};

using wolf::parse_count;
using wolf::parse_duration_option;
using bad_value = wolf::bad_option_value;

/** The options, or the exit code for --help (0) and a bad command line (2, one line on stderr). */
std::variant<soak_options, int> parse_command_line(int argc, char* argv[]) {
    soak_options const defaults;
    po::options_description described("Options");
    // clang-format off
    described.add_options()
        ("help,h", "print this help and exit")
        ("host", po::value<std::string>()->default_value(defaults.host), "server address (IPv4 or IPv6 literal)")
        ("port", po::value<std::string>(), "server port (required)")
        ("server-pid", po::value<std::string>(), "the server's process id, for /proc figures (required)")
        ("subscribers", po::value<std::string>()->default_value(std::to_string(defaults.subscribers)),
         "long-lived subscribers per cycle")
        ("churn", po::value<std::string>()->default_value(std::to_string(defaults.churn)),
         "short-lived sessions started per second (0: none)")
        ("duration", po::value<std::string>()->default_value("10m"),
         "churn time in all, split evenly across the cycles (30s, 2m, ...)")
        ("cycles", po::value<std::string>()->default_value(std::to_string(defaults.cycles)),
         "ramp -> churn -> leave cycles; growth from one to the next shows a leak")
        ("threads", po::value<std::string>()->default_value(std::to_string(defaults.threads)),
         "client threads, one io_context each")
        ("interval", po::value<std::string>()->default_value("1s"),
         "the server's --interval, for expected ticks")
        ("ping-period", po::value<std::string>()->default_value("5s"), "time between a session's pings")
        ("churn-hold", po::value<std::string>()->default_value("2s"),
         "longest random hold of a churn session that does not wait for a wisdom")
        ("concurrency", po::value<std::string>()->default_value(std::to_string(defaults.concurrency)),
         "subscriber handshakes in flight during the ramp");
    // clang-format on
    po::variables_map vm;
    soak_options opt;
    try {
        po::store(po::command_line_parser(argc, argv).options(described).positional({}).run(), vm);
        po::notify(vm);
        if (vm.count("help")) {
            std::cout << "Usage: wolf-soak --port PORT --server-pid PID [options]\n\n"
                      << "Soaks a running wolf-wisdom server with subscribers and churn; reports its memory\n"
                      << "and descriptors per phase as Markdown on stdout. Exit 0: no leak, no failure.\n\n"
                      << described << '\n';
            return 0;
        }
        auto const text = [&](char const* name) { return vm[name].as<std::string>(); };
        if (!vm.count("port")) throw po::error("--port is required");
        if (!vm.count("server-pid")) throw po::error("--server-pid is required");
        opt.host = text("host");
        boost::system::error_code address_ec;
        net::ip::make_address(opt.host, address_ec);
        if (address_ec) throw bad_value("--host", opt.host, "an IP address");
        opt.port = static_cast<std::uint16_t>(parse_count("--port", text("port"), 1, 65535));
        opt.server_pid = static_cast<pid_t>(parse_count("--server-pid", text("server-pid"), 1, 4'194'304));
        if (!read_process_stats(opt.server_pid))
            throw bad_value("--server-pid", text("server-pid"), "a process whose /proc entry we can read");
        opt.subscribers = parse_count("--subscribers", text("subscribers"), 0, 1'000'000);
        opt.churn = parse_count("--churn", text("churn"), 0, 100'000);
        opt.duration = parse_duration_option("--duration", text("duration"));
        opt.cycles = parse_count("--cycles", text("cycles"), 1, 100);
        opt.threads = parse_count("--threads", text("threads"), 1, 256);
        opt.interval = parse_duration_option("--interval", text("interval"));
        opt.ping_period = parse_duration_option("--ping-period", text("ping-period"));
        opt.churn_hold = parse_duration_option("--churn-hold", text("churn-hold"));
        opt.concurrency = parse_count("--concurrency", text("concurrency"), 1, 100'000);
    } catch (po::error const& e) {
        std::cerr << "wolf-soak: " << e.what() << " (see --help)\n";
        return 2;
    }
    return opt;
}

/** The server's counters from /metrics. */
struct server_counters {
    double ticks = 0;
    double sent = 0;
    double dropped = 0;
    double evictions = 0;
    double connections_total = 0;
    std::map<std::string, double> evictions_by_reason;
};

/** Everything known about the server at one moment. */
struct sample {
    std::string phase;
    double at = 0; // seconds since the soak began
    std::optional<process_stats> proc;
    std::optional<health> healthz;
    std::optional<server_counters> counters;
};

std::optional<server_counters> parse_counters(std::string_view text) {
    auto const ticks = metric_sum(text, "wolf_broadcast_ticks_total");
    auto const sent = metric_sum(text, "wolf_wisdom_sent_total");
    auto const dropped = metric_sum(text, "wolf_wisdom_dropped_total");
    auto const evictions = metric_sum(text, "wolf_evictions_total");
    auto const total = metric_sum(text, "wolf_connections_total");
    if (!ticks || !sent || !dropped || !evictions || !total) return std::nullopt;
    server_counters counters{*ticks, *sent, *dropped, *evictions, *total, {}};
    for (auto const& s : metric_samples(text, "wolf_evictions_total"))
        counters.evictions_by_reason[s.labels] = s.value;
    return counters;
}

/** Cross-thread tallies of one kind of session. Written on the client threads, read on the control one. */
struct tally {
    std::atomic<std::uint64_t> started{0};
    std::atomic<std::uint64_t> joined{0};
    std::atomic<std::uint64_t> ended{0};
    std::atomic<std::uint64_t> in_flight{0}; // subscribers: before joining; churn: until ended
    std::atomic<std::uint64_t> wisdom{0};
    std::atomic<std::uint64_t> without_wisdom{0}; // churn sessions that waited for one and got none
    std::atomic<std::uint64_t> skipped{0};        // churn sessions not started: too many in flight
    std::array<std::atomic<std::uint64_t>, session_status_count> by_status{};

    std::mutex details_mutex;
    std::vector<std::string> details; // the first few failures, in words

    void record(session_report const& report) {
        by_status[static_cast<std::size_t>(report.status)].fetch_add(1, std::memory_order_relaxed);
        wisdom.fetch_add(report.wisdom, std::memory_order_relaxed);
        if (report.status != session_status::completed) {
            std::lock_guard lock(details_mutex);
            if (details.size() < 5)
                details.push_back(std::string(to_string(report.status)) + ": " + report.detail);
        }
    }
    std::uint64_t failed() const {
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < by_status.size(); ++i)
            if (static_cast<session_status>(i) != session_status::completed) sum += by_status[i].load();
        return sum;
    }
};

/** What one ramp -> churn -> leave cycle measured about its subscribers and its end. */
struct cycle_result {
    std::size_t number = 0;
    double ramp_seconds = 0;
    double leave_seconds = 0;     // leave requested -> every subscriber saw its close
    double drain_seconds = 0;     // leave requested -> /healthz at 0
    double fd_settle_seconds = 0; // /healthz at 0 -> descriptors back to the baseline (or the limit)
    std::uint64_t joined = 0;
    std::uint64_t failed = 0;
    std::map<std::string, std::uint64_t> failed_by_status;
    std::vector<std::string> failure_details;
    bool ramp_complete = true;
    bool leave_complete = true;
    bool drained = true;
    // Per subscriber, from the reports (only when every session has ended).
    bool have_ticks = false;
    std::uint64_t ticks_min = 0;
    std::uint64_t ticks_max = 0;
    std::uint64_t wisdom = 0;
    std::uint64_t expected = 0;
    std::uint64_t short_subscribers = 0; // received more than one tick fewer than expected
    std::uint64_t worst_shortfall = 0;
};

std::string fixed(double value, int precision = 1) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(precision) << value;
    return out.str();
}

std::string signed_kib(double kib) {
    std::ostringstream out;
    out << (kib >= 0 ? "+" : "") << static_cast<long long>(std::llround(kib)) << " KiB";
    return out.str();
}

/** The soak itself: runs on the control executor; the sessions run on the workers. */
class soak {
public:
    soak(soak_options options, worker_pool& workers)
        : opt_(std::move(options))
        , workers_(workers)
        , endpoint_(net::ip::make_address(opt_.host), opt_.port)
        , began_(steady_clock::now()) {
        std::ostringstream host;
        host << endpoint_;
        host_ = host.str();
    }

    /** Every phase, then the report on stdout; returns the exit code. */
    net::awaitable<int> run();

private:
    double elapsed() const { return std::chrono::duration<double>(steady_clock::now() - began_).count(); }
    void progress(std::string const& line) const {
        std::cerr << "[" << std::setw(7) << fixed(elapsed()) << "s] " << line << std::endl;
    }

    session_options base_session() const {
        session_options s;
        s.endpoint = endpoint_;
        s.host = host_;
        s.ping_period = opt_.ping_period;
        return s;
    }

    static net::awaitable<void> pause(steady_clock::duration how_long) {
        net::steady_timer timer(co_await net::this_coro::executor, how_long);
        co_await timer.async_wait(use_nothrow);
    }

    /** Waits until `done()` or `limit`; true if done. Polls, because the state lives on other threads. */
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

    net::awaitable<std::optional<health>> get_health() {
        std::string target = "/healthz";
        auto const reply = co_await http_get(endpoint_, std::move(target), probe_timeout);
        if (reply.status != 200) co_return std::nullopt;
        co_return parse_health(reply.body);
    }
    net::awaitable<std::optional<server_counters>> get_counters() {
        std::string target = "/metrics";
        auto const reply = co_await http_get(endpoint_, std::move(target), probe_timeout);
        if (reply.status != 200) co_return std::nullopt;
        co_return parse_counters(reply.body);
    }

    net::awaitable<sample> take_sample(std::string phase);
    net::awaitable<cycle_result> run_cycle(std::size_t number, milliseconds churn_time);
    net::awaitable<void> churn_until(steady_clock::time_point end);
    void start_churn_session();
    net::awaitable<void> sample_at(steady_clock::time_point when, std::string phase);
    std::vector<std::string> failures(std::vector<cycle_result> const& cycles) const;
    void print_report(std::vector<cycle_result> const& cycles) const;

    soak_options opt_;
    worker_pool& workers_;
    net::ip::tcp::endpoint endpoint_;
    std::string host_;
    steady_clock::time_point began_;
    std::shared_ptr<tally> churn_ = std::make_shared<tally>(); // shared with the sessions' handlers
    std::uint64_t churn_number_ = 0;
    std::mt19937 random_{20240611}; // a fixed seed: two runs churn alike
    std::vector<sample> samples_;   // every sample, in order: the table
    std::optional<sample> baseline_;
    std::vector<sample> starts_;
    std::vector<sample> ends_;
    std::vector<sample> afters_;
};

net::awaitable<sample> soak::take_sample(std::string phase) {
    sample s;
    s.phase = std::move(phase);
    s.at = elapsed();
    s.healthz = co_await get_health();
    s.counters = co_await get_counters();
    // /proc last, a moment after the probes, so their own connections are closed on the server by then.
    co_await pause(100ms);
    s.proc = read_process_stats(opt_.server_pid);
    std::ostringstream line;
    line << s.phase << ":";
    if (s.proc) line << " rss=" << rss_kib(*s.proc) << "KiB fds=" << s.proc->open_fds;
    if (s.healthz)
        line << " connections=" << s.healthz->connections << " subscribers=" << s.healthz->subscribers;
    if (!s.proc || !s.healthz || !s.counters) line << " (some figures could not be read)";
    progress(line.str());
    samples_.push_back(s);
    co_return s;
}

net::awaitable<void> soak::sample_at(steady_clock::time_point when, std::string phase) {
    net::steady_timer timer(co_await net::this_coro::executor, when);
    co_await timer.async_wait(use_nothrow);
    co_await take_sample(std::move(phase));
}

void soak::start_churn_session() {
    auto const n = churn_number_++;
    // A churn session lives a few seconds at most; far more in flight means the server has stalled, and
    // piling on would only measure the pile.
    auto const cap = std::max<std::uint64_t>(100, opt_.churn * 30);
    if (churn_->in_flight.load() >= cap) {
        ++churn_->skipped;
        return;
    }
    ++churn_->started;
    ++churn_->in_flight;
    auto options = base_session();
    // Half leave at their first wisdom (bounded: a tick missed is counted, not waited for forever); half
    // leave after a random hold, often mid-broadcast or before any tick.
    bool const waits_for_wisdom = n % 2 == 0;
    if (waits_for_wisdom) {
        options.leave_after_wisdom = 1;
        options.hold = 2 * opt_.interval + 2s;
    } else {
        options.hold = milliseconds{
            std::uniform_int_distribution<milliseconds::rep>(0, opt_.churn_hold.count())(random_)};
    }
    auto const executor = workers_.next();
    spawn_session(executor, std::make_shared<client_session>(executor, std::move(options)),
                  [churn = churn_, waits_for_wisdom](session_report const& report) {
                      if (waits_for_wisdom && report.status == session_status::completed &&
                          report.wisdom == 0)
                          ++churn->without_wisdom;
                      churn->record(report);
                      ++churn->ended;
                      --churn->in_flight;
                  });
}

net::awaitable<void> soak::churn_until(steady_clock::time_point end) {
    net::steady_timer timer(co_await net::this_coro::executor);
    if (opt_.churn > 0) {
        // Starts on a fixed schedule from the beginning, so a slow start does not lower the rate.
        auto const start = steady_clock::now();
        for (std::uint64_t n = 0;; ++n) {
            auto const due =
                start + std::chrono::duration_cast<steady_clock::duration>(std::chrono::duration<double>(
                            static_cast<double>(n) / static_cast<double>(opt_.churn)));
            if (due >= end) break;
            timer.expires_at(due);
            co_await timer.async_wait(use_nothrow);
            start_churn_session();
        }
    }
    timer.expires_at(end);
    co_await timer.async_wait(use_nothrow);
}

net::awaitable<cycle_result> soak::run_cycle(std::size_t number, milliseconds churn_time) {
    using namespace net::experimental::awaitable_operators;
    cycle_result result;
    result.number = number;
    auto const name = "cycle " + std::to_string(number);
    // Named: GCC 12 may destroy a temporary argument of a coroutine called inside co_await twice (PR 99576).
    std::string const start_phase = name + " start";
    std::string const middle_phase = name + " middle";
    std::string const end_phase = name + " end";
    std::string const after_phase = name + " after";
    auto const count = opt_.subscribers;

    // Ramp: every subscriber connects and subscribes, at most `concurrency` handshakes at a time.
    // The tally and the reports are shared with the sessions' handlers, which may outlive this frame if a
    // session overstays every limit.
    auto const subs = std::make_shared<tally>();
    auto const reports = std::make_shared<std::vector<session_report>>(count);
    std::vector<std::shared_ptr<client_session>> sessions;
    sessions.reserve(count);
    auto const ramp_began = steady_clock::now();
    for (std::size_t i = 0; i < count; ++i) {
        while (subs->in_flight.load() >= opt_.concurrency)
            co_await pause(1ms);
        ++subs->started;
        ++subs->in_flight;
        auto const executor = workers_.next();
        session_hooks hooks;
        hooks.on_joined = [subs] {
            ++subs->joined;
            --subs->in_flight;
        };
        auto session = std::make_shared<client_session>(executor, base_session(), std::move(hooks));
        sessions.push_back(session);
        spawn_session(executor, std::move(session), [subs, reports, i](session_report const& report) {
            if (report.joined == steady_clock::time_point{}) --subs->in_flight;
            (*reports)[i] = report;
            subs->record(report);
            subs->ended.fetch_add(1, std::memory_order_release);
        });
    }
    auto const ramped = [&] { return subs->in_flight.load() == 0; };
    result.ramp_complete = co_await wait_until(ramped, ramp_limit);
    result.ramp_seconds = std::chrono::duration<double>(steady_clock::now() - ramp_began).count();
    progress(name + ": " + std::to_string(subs->joined.load()) + "/" + std::to_string(count) +
             " subscribed in " + fixed(result.ramp_seconds) + " s");
    auto start = co_await take_sample(start_phase);
    starts_.push_back(std::move(start));

    // Churn, with a sample half way.
    auto const churn_began = steady_clock::now();
    auto churn_and_sample =
        churn_until(churn_began + churn_time) && sample_at(churn_began + churn_time / 2, middle_phase);
    co_await std::move(churn_and_sample);
    auto const churn_drained = [&] { return churn_->in_flight.load() == 0; };
    co_await wait_until(churn_drained, churn_drain_limit);
    progress(name + ": churn done, " + std::to_string(churn_->ended.load()) + " sessions so far");
    auto end = co_await take_sample(end_phase);
    ends_.push_back(std::move(end));

    // Leave: every subscriber sends `disconnect` and finishes the close; then the server must count nobody
    // and hold no more descriptors than before the first client.
    auto const leave_began = steady_clock::now();
    for (auto const& session : sessions)
        session->leave();
    auto const all_left = [&] { return subs->ended.load(std::memory_order_acquire) == count; };
    result.leave_complete = co_await wait_until(all_left, leave_limit);
    result.leave_seconds = std::chrono::duration<double>(steady_clock::now() - leave_began).count();
    sessions.clear();

    auto const healthz_deadline = steady_clock::now() + healthz_limit;
    result.drained = false;
    while (steady_clock::now() < healthz_deadline) {
        auto const h = co_await get_health();
        if (h && h->connections == 0 && h->subscribers == 0) {
            result.drained = true;
            break;
        }
        co_await pause(100ms);
    }
    auto const drained_at = steady_clock::now();
    result.drain_seconds = std::chrono::duration<double>(drained_at - leave_began).count();
    auto const baseline_fds = baseline_ && baseline_->proc ? baseline_->proc->open_fds : 0;
    auto const fds_settled = [&] {
        auto const fds = count_open_fds(opt_.server_pid);
        return !fds || *fds <= baseline_fds;
    };
    co_await wait_until(fds_settled, fd_settle_limit, 20ms);
    result.fd_settle_seconds = std::chrono::duration<double>(steady_clock::now() - drained_at).count();
    progress(name + ": left in " + fixed(result.leave_seconds) + " s, /healthz at 0 after " +
             fixed(result.drain_seconds) + " s");
    auto after = co_await take_sample(after_phase);
    afters_.push_back(std::move(after));

    result.joined = subs->joined.load();
    result.failed = subs->failed();
    for (std::size_t i = 0; i < session_status_count; ++i)
        if (auto const n = subs->by_status[i].load();
            n != 0 && static_cast<session_status>(i) != session_status::completed)
            result.failed_by_status[std::string(to_string(static_cast<session_status>(i)))] = n;
    {
        std::lock_guard lock(subs->details_mutex);
        result.failure_details = subs->details;
    }

    // Ticks per subscriber: only when every report is in (the acquire above makes them visible).
    if (result.leave_complete && count > 0) {
        result.have_ticks = true;
        result.ticks_min = std::numeric_limits<std::uint64_t>::max();
        for (auto const& report : *reports) {
            result.ticks_min = std::min(result.ticks_min, report.wisdom);
            result.ticks_max = std::max(result.ticks_max, report.wisdom);
            result.wisdom += report.wisdom;
            if (report.joined == steady_clock::time_point{}) continue;
            // Whole intervals between the confirmation and `disconnect` (or the end, for one that did not
            // get to leave): the ticks it must have seen, give or take one at either edge.
            auto const until = report.leaving != steady_clock::time_point{} ? report.leaving : report.ended;
            auto const expected = static_cast<std::uint64_t>((until - report.joined) / opt_.interval);
            result.expected += expected;
            auto const shortfall = expected > report.wisdom ? expected - report.wisdom : 0;
            result.worst_shortfall = std::max(result.worst_shortfall, shortfall);
            if (shortfall > 1) ++result.short_subscribers;
        }
    }
    co_return result;
}

std::vector<std::string> soak::failures(std::vector<cycle_result> const& cycles) const {
    std::vector<std::string> why;
    auto const base_fds =
        baseline_ && baseline_->proc ? std::optional(baseline_->proc->open_fds) : std::nullopt;
    for (std::size_t i = 0; i < afters_.size(); ++i)
        if (!base_fds || !afters_[i].proc || afters_[i].proc->open_fds != *base_fds)
            why.push_back("descriptors not back to the baseline after cycle " + std::to_string(i + 1));
    for (auto const& c : cycles) {
        auto const cycle = " in cycle " + std::to_string(c.number);
        if (c.failed != 0) why.push_back(std::to_string(c.failed) + " subscriber session(s) failed" + cycle);
        if (!c.ramp_complete) why.push_back("the ramp did not finish" + cycle);
        if (!c.leave_complete) why.push_back("not every subscriber finished leaving" + cycle);
        if (!c.drained) why.push_back("/healthz did not reach 0 connections" + cycle);
    }
    if (auto const n = churn_->failed(); n != 0)
        why.push_back(std::to_string(n) + " churn session(s) failed");
    if (churn_->in_flight.load() != 0) why.push_back("churn sessions still running at the end");
    auto const first = baseline_ ? baseline_->counters : std::nullopt;
    auto const last = afters_.empty() ? std::nullopt : afters_.back().counters;
    if (first && last && last->evictions > first->evictions)
        why.push_back(std::to_string(static_cast<std::uint64_t>(last->evictions - first->evictions)) +
                      " eviction(s) (wolf_evictions_total)");
    for (auto const& s : samples_)
        if (!s.proc || !s.healthz || !s.counters) {
            why.push_back("some figures could not be read (" + s.phase + ")");
            break;
        }
    return why;
}

void soak::print_report(std::vector<cycle_result> const& cycles) const {
    auto& out = std::cout;
    out << "## wolf-soak: " << opt_.subscribers << " subscribers, churn " << opt_.churn << "/s, "
        << opt_.cycles << " cycle(s) of "
        << wolf::format_duration(std::max(milliseconds{1}, opt_.duration / static_cast<long>(opt_.cycles)))
        << " churn, interval " << wolf::format_duration(opt_.interval) << ", " << opt_.threads
        << " client thread(s)\n\n";

    out << "| phase | at (s) | server RSS (KiB) | open fds | connections | subscribers | server CPU (s) |\n"
        << "|---|---:|---:|---:|---:|---:|---:|\n";
    auto const or_na = [](auto const& value, auto get) -> std::string {
        if (!value) return "n/a";
        return get(*value);
    };
    for (auto const& s : samples_) {
        out << "| " << s.phase << " | " << fixed(s.at) << " | "
            << or_na(s.proc, [](process_stats const& p) { return std::to_string(rss_kib(p)); }) << " | "
            << or_na(s.proc, [](process_stats const& p) { return std::to_string(p.open_fds); }) << " | "
            << or_na(s.healthz, [](health const& h) { return std::to_string(h.connections); }) << " | "
            << or_na(s.healthz, [](health const& h) { return std::to_string(h.subscribers); }) << " | "
            << or_na(s.proc, [](process_stats const& p) { return fixed(p.cpu_seconds, 2); }) << " |\n";
    }
    out << '\n';

    // Subscribers, cycle by cycle.
    for (std::size_t i = 0; i < cycles.size(); ++i) {
        auto const& c = cycles[i];
        out << "- Cycle " << c.number << " subscribers: " << c.joined << "/" << opt_.subscribers
            << " joined in " << fixed(c.ramp_seconds) << " s, " << c.failed << " failed";
        for (auto const& [status, n] : c.failed_by_status)
            out << " (" << status << ": " << n << ")";
        out << "; left in " << fixed(c.leave_seconds) << " s; /healthz at 0 after " << fixed(c.drain_seconds)
            << " s; descriptors settled " << fixed(c.fd_settle_seconds, 2) << " s later\n";
        if (c.have_ticks) {
            out << "  - ticks seen per subscriber: min " << c.ticks_min << ", max " << c.ticks_max;
            if (i < starts_.size() && i < ends_.size() && starts_[i].counters && ends_[i].counters)
                out << " (server ticks between the start and end samples, when all were subscribed: "
                    << static_cast<std::uint64_t>(ends_[i].counters->ticks - starts_[i].counters->ticks)
                    << ")";
            out << "\n  - missed ticks: expected " << c.expected
                << " (whole intervals each subscriber was subscribed), received " << c.wisdom
                << "; subscribers short by more than one tick: " << c.short_subscribers
                << " (worst shortfall " << c.worst_shortfall << ")\n";
        } else {
            out << "  - ticks per subscriber: n/a (not every session ended)\n";
        }
        for (auto const& detail : c.failure_details)
            out << "  - failure: " << detail << '\n';
    }

    // Server counters over the whole run.
    auto const first = baseline_ ? baseline_->counters : std::nullopt;
    auto const last = afters_.empty() ? std::nullopt : afters_.back().counters;
    std::uint64_t subscriber_wisdom = 0;
    for (auto const& c : cycles)
        subscriber_wisdom += c.wisdom;
    auto const churn_wisdom = churn_->wisdom.load();
    out << "- Wisdom deliveries received: " << subscriber_wisdom + churn_wisdom << " (subscribers "
        << subscriber_wisdom << ", churn " << churn_wisdom << ")";
    if (first && last)
        out << "; queued by the server (wolf_wisdom_sent_total): "
            << static_cast<std::uint64_t>(last->sent - first->sent);
    out << '\n';
    if (first && last) {
        out << "- Server counters over the run: wolf_broadcast_ticks_total +"
            << static_cast<std::uint64_t>(last->ticks - first->ticks) << ", wolf_wisdom_dropped_total +"
            << static_cast<std::uint64_t>(last->dropped - first->dropped) << ", wolf_evictions_total +"
            << static_cast<std::uint64_t>(last->evictions - first->evictions);
        for (auto const& [labels, value] : last->evictions_by_reason) {
            auto const before =
                first->evictions_by_reason.contains(labels) ? first->evictions_by_reason.at(labels) : 0;
            if (value > before)
                out << " (" << labels << ": +" << static_cast<std::uint64_t>(value - before) << ")";
        }
        out << ", wolf_connections_total +"
            << static_cast<std::uint64_t>(last->connections_total - first->connections_total) << '\n';
    } else {
        out << "- Server counters: n/a (/metrics could not be read)\n";
    }

    out << "- Churn sessions: " << churn_->started.load() << " started, "
        << churn_->by_status[static_cast<std::size_t>(session_status::completed)].load() << " completed, "
        << churn_->failed() << " failed";
    for (std::size_t i = 0; i < session_status_count; ++i)
        if (auto const n = churn_->by_status[i].load();
            n != 0 && static_cast<session_status>(i) != session_status::completed)
            out << " (" << to_string(static_cast<session_status>(i)) << ": " << n << ")";
    out << ", " << churn_->skipped.load() << " not started (too many in flight); "
        << churn_->without_wisdom.load()
        << " of those waiting for one wisdom got none within 2 intervals + 2 s\n";
    {
        std::lock_guard lock(churn_->details_mutex);
        for (auto const& detail : churn_->details)
            out << "  - failure: " << detail << '\n';
    }

    // The verdicts.
    // A pointer, not a copied optional: GCC 12 warns about the copy's payload being maybe-uninitialized.
    process_stats const* const base = baseline_ && baseline_->proc ? &*baseline_->proc : nullptr;
    bool fds_back = base && !afters_.empty();
    std::ostringstream fds;
    fds << "baseline " << (base ? std::to_string(base->open_fds) : "n/a");
    for (std::size_t i = 0; i < afters_.size(); ++i) {
        auto const& p = afters_[i].proc;
        fds << ", after cycle " << i + 1 << ": " << (p ? std::to_string(p->open_fds) : "n/a");
        if (!base || !p || p->open_fds != base->open_fds) fds_back = false;
    }
    out << "- **fds back to baseline: " << (fds_back ? "yes" : "no") << "** (" << fds.str() << ")\n";

    out << "- **RSS after vs start:**";
    for (std::size_t i = 0; i < afters_.size() && i < starts_.size(); ++i) {
        auto const& s = starts_[i].proc;
        auto const& a = afters_[i].proc;
        if (!s || !a) continue;
        out << (i == 0 ? " " : "; ") << "cycle " << i + 1 << " start " << rss_kib(*s) << " → after "
            << rss_kib(*a) << " KiB";
    }
    if (afters_.size() >= 2 && afters_.front().proc && afters_.back().proc) {
        auto const from = static_cast<double>(rss_kib(*afters_.front().proc));
        auto const to = static_cast<double>(rss_kib(*afters_.back().proc));
        out << "; **growth from cycle 1's after to cycle " << afters_.size()
            << "'s after: " << signed_kib(to - from) << " (" << (to >= from ? "+" : "")
            << fixed(100.0 * (to - from) / from) << " %)**";
    } else if (base && !afters_.empty() && afters_.back().proc) {
        out << "; after vs baseline "
            << signed_kib(static_cast<double>(rss_kib(*afters_.back().proc)) -
                          static_cast<double>(rss_kib(*base)));
    }
    out << "\n";

    auto const why = failures(cycles);
    out << "- **Verdict: " << (why.empty() ? "PASS" : "FAIL") << "**";
    for (std::size_t i = 0; i < why.size(); ++i)
        out << (i == 0 ? " — " : "; ") << why[i];
    out << std::endl;
}

net::awaitable<int> soak::run() {
    if (!co_await get_health()) {
        std::cerr << "wolf-soak: no /healthz answer from " << host_ << '\n';
        co_return 1;
    }
    auto const churn_time = std::max(milliseconds{1}, opt_.duration / static_cast<long>(opt_.cycles));
    progress("soak of " + host_ + " (pid " + std::to_string(opt_.server_pid) + "): " +
             std::to_string(opt_.subscribers) + " subscribers, churn " + std::to_string(opt_.churn) + "/s, " +
             std::to_string(opt_.cycles) + " cycle(s) of " + wolf::format_duration(churn_time) + " churn");
    std::string const baseline_phase = "baseline";
    baseline_ = co_await take_sample(baseline_phase);

    std::vector<cycle_result> cycles;
    for (std::size_t i = 1; i <= opt_.cycles; ++i) {
        auto result = co_await run_cycle(i, churn_time);
        cycles.push_back(std::move(result));
    }

    print_report(cycles);
    co_return failures(cycles).empty() ? 0 : 1;
}

} // namespace

int main(int argc, char* argv[]) {
    auto parsed = parse_command_line(argc, argv);
    if (auto const* code = std::get_if<int>(&parsed)) return *code;
    auto const& opt = std::get<soak_options>(parsed);

    worker_pool workers(opt.threads, "wolf-soak");
    net::io_context control{1};
    soak run(opt, workers);
    int exit_code = 1;
    net::co_spawn(control, run.run(), [&](std::exception_ptr error, int code) {
        if (error) std::rethrow_exception(error);
        exit_code = code;
    });
    try {
        control.run();
    } catch (std::exception const& e) {
        std::cerr << "wolf-soak: " << e.what() << '\n';
        return 1;
    }
    return exit_code;
}
