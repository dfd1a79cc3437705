// wolf-floor: the cheapest server that honours the contract's happy path, on plain epoll with one thread and
// no Asio, Beast or Boost. It exists to measure what the kernel alone costs, so the real server's figures can
// be printed as a ratio to it. See bench/README.md for what it deliberately leaves out.
//
// Readiness is level-triggered: each EPOLLIN event reads once (at most the 64 KiB scratch buffer) and
// whatever is left is reported again by the next epoll_wait, which keeps one busy client from starving the
// others. EPOLLOUT is armed exactly while a connection has unsent bytes.

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <numeric>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::literals;

constexpr std::size_t scratch_size = 64 * 1024;
constexpr std::size_t max_request = 4096;      // an upgrade request larger than this is closed
constexpr std::size_t max_message = 64 * 1024; // a larger frame or reassembled message is closed
constexpr std::size_t max_pending = 64 * 1024; // unsent bytes per connection; a wisdom beyond is dropped
constexpr std::uint32_t not_subscribed = std::numeric_limits<std::uint32_t>::max();

constexpr std::string_view usage =
    R"(usage: wolf-floor [--host ADDR] [--port N] [--interval D] [--quotes FILE] [--verbose]

The benchmark floor: the contract's happy path on bare epoll, one thread, no Asio.
  --host ADDR      address to listen on (default 127.0.0.1)
  --port N         port, 0 for any free one (default 8000)
  --interval D     broadcast period: 250ms, 5s, 1m; a bare number means seconds (default 5s)
  --quotes FILE    UTF-8, one quote per line; empty lines and # comments skipped (default: built-in)
  --verbose        log each tick, accept and close on stderr
  --help           this text
Prints "listening port=N" on stdout once listening; SIGINT or SIGTERM exits 0.
)";

// A few of the default deck's quotes (assets/quotes.txt), 100 to 250 bytes each.
constexpr std::array builtin_quotes = {
    "Если волк молчит — значит, он думает. Если воет — значит, додумал."sv,
    "Луна не отвечает волку. Но волк всё равно пишет ей каждую ночь."sv,
    "Овца считает волков, чтобы уснуть. Волк считает овец, чтобы поужинать."sv,
    "Настоящий волк не спорит с собакой. Он молча уходит в лес и становится сильнее."sv,
    "Не тот волк, у кого зубы острые, а тот, кто улыбается только своим."sv,
};

struct floor_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8000;
    std::chrono::milliseconds interval{5000};
    std::string quotes_file;
    bool verbose = false;
};

/** A bad command line or quotes file: one line on stderr, exit 2. */
[[noreturn]] void usage_error(std::string const& message) {
    std::fprintf(stderr, "wolf-floor: %s\n", message.c_str());
    std::exit(2);
}

/** The server's duration syntax: a number with an optional fraction, then ms, s, m or h (none: seconds). */
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
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

    double scale = 0;
    if (unit.empty() || unit == "s")
        scale = 1000;
    else if (unit == "ms")
        scale = 1;
    else if (unit == "m")
        scale = 60'000;
    else if (unit == "h")
        scale = 3'600'000;
    else
        return std::nullopt;
    double const millis = std::round(value * scale);
    if (!(millis >= 1) || millis > 7 * 24 * 3'600'000.0) return std::nullopt;
    return std::chrono::milliseconds{static_cast<std::int64_t>(millis)};
}

floor_options parse_options(int argc, char** argv) {
    floor_options options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fwrite(usage.data(), 1, usage.size(), stdout);
            std::exit(0);
        }
        if (arg == "--verbose") {
            options.verbose = true;
            continue;
        }
        // --name value or --name=value
        std::string_view value;
        if (auto const eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        } else if (arg == "--host" || arg == "--port" || arg == "--interval" || arg == "--quotes") {
            if (i + 1 == argc) usage_error(std::string(arg) + ": missing value");
            value = argv[++i];
        } else {
            usage_error("unknown argument '" + std::string(arg) + "' (see --help)");
        }

        auto const bad = [&](std::string_view expected) {
            usage_error(std::string(arg) + ": '" + std::string(value) + "' is not " + std::string(expected));
        };
        if (arg == "--host") {
            if (value.empty()) bad("an address");
            options.host = value;
        } else if (arg == "--port") {
            unsigned port = 0;
            auto const [end, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
            if (ec != std::errc{} || end != value.data() + value.size() || port > 65535)
                bad("a port (0 to 65535)");
            options.port = static_cast<std::uint16_t>(port);
        } else if (arg == "--interval") {
            auto const d = parse_duration(value);
            if (!d) bad("a positive duration (e.g. 250ms, 5s, 1m; a bare number means seconds)");
            options.interval = *d;
        } else if (arg == "--quotes") {
            if (value.empty()) bad("a file");
            options.quotes_file = value;
        } else {
            usage_error("unknown argument '" + std::string(arg) + "' (see --help)");
        }
    }
    return options;
}

bool is_valid_utf8(std::string_view text) {
    auto const* p = reinterpret_cast<unsigned char const*>(text.data());
    auto const* const end = p + text.size();
    while (p < end) {
        unsigned const lead = *p++;
        if (lead < 0x80) continue;
        std::size_t extra = 0;
        unsigned code = 0;
        if (lead >= 0xC2 && lead <= 0xDF)
            extra = 1, code = lead & 0x1F;
        else if (lead >= 0xE0 && lead <= 0xEF)
            extra = 2, code = lead & 0x0F;
        else if (lead >= 0xF0 && lead <= 0xF4)
            extra = 3, code = lead & 0x07;
        else
            return false;
        if (static_cast<std::size_t>(end - p) < extra) return false;
        for (std::size_t i = 0; i < extra; ++i) {
            if ((p[i] & 0xC0) != 0x80) return false;
            code = (code << 6) | (p[i] & 0x3F);
        }
        p += extra;
        if ((extra == 2 && code < 0x800) || (extra == 3 && code < 0x10000)) return false; // overlong
        if ((code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return false;
    }
    return true;
}

/** The contract's quotes file format; any problem is a startup error (exit 2). */
std::vector<std::string> load_quotes(std::string const& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) usage_error("--quotes: " + path + ": cannot open the quotes file");
    std::ostringstream contents;
    contents << file.rdbuf();
    std::string_view text = contents.view();
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);

    std::vector<std::string> quotes;
    for (std::size_t line_number = 1; !text.empty(); ++line_number) {
        auto const eol = text.find('\n');
        auto line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        constexpr std::string_view blanks = " \t\r\v\f";
        auto const first = line.find_first_not_of(blanks);
        if (first == std::string_view::npos) continue;
        line = line.substr(first, line.find_last_not_of(blanks) - first + 1);
        if (line.front() == '#') continue;
        if (!is_valid_utf8(line))
            usage_error("--quotes: " + path + ":" + std::to_string(line_number) + ": not valid UTF-8");
        quotes.emplace_back(line);
    }
    if (quotes.empty()) usage_error("--quotes: " + path + ": no quotes (every line is empty or a # comment)");
    return quotes;
}

/** splitmix64, seeded once from getrandom: fast enough to draw a UUID per connection for free. */
class fast_rng {
public:
    using result_type = std::uint64_t;

    fast_rng() {
        std::size_t got = 0;
        auto* bytes = reinterpret_cast<unsigned char*>(&state_);
        while (got < sizeof state_) {
            auto const n = ::getrandom(bytes + got, sizeof state_ - got, 0);
            if (n > 0)
                got += static_cast<std::size_t>(n);
            else if (errno != EINTR)
                std::abort();
        }
    }

    static constexpr result_type min() { return 0; }
    static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

    result_type operator()() noexcept {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }

private:
    std::uint64_t state_ = 0;
};

/** Appends a lowercase RFC 4122 version-4 UUID (36 characters). */
void append_uuid_v4(std::string& out, fast_rng& rng) {
    std::array<unsigned char, 16> bytes{};
    for (std::size_t half = 0; half < 2; ++half) {
        auto const r = rng();
        for (std::size_t i = 0; i < 8; ++i)
            bytes[half * 8 + i] = static_cast<unsigned char>(r >> (8 * i));
    }
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40); // version 4
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80); // RFC 4122 variant
    constexpr std::string_view hex = "0123456789abcdef";
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        out += hex[bytes[i] >> 4];
        out += hex[bytes[i] & 0x0F];
    }
}

void append_json_escaped(std::string& out, std::string_view text) {
    constexpr std::string_view hex = "0123456789abcdef";
    for (char const ch : text) {
        auto const u = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\r') {
            out += "\\r";
        } else if (ch == '\t') {
            out += "\\t";
        } else if (u < 0x20) {
            out += "\\u00";
            out += hex[u >> 4];
            out += hex[u & 0x0F];
        } else {
            out += ch; // UTF-8 passes through: the quotes were validated at load
        }
    }
}

/** An unmasked server frame header with FIN set: 2, 4 or 10 bytes. */
void append_frame_header(std::string& out, unsigned opcode, std::size_t length) {
    out += static_cast<char>(0x80 | opcode);
    if (length < 126) {
        out += static_cast<char>(length);
    } else if (length <= 0xFFFF) {
        out += static_cast<char>(126);
        out += static_cast<char>(length >> 8);
        out += static_cast<char>(length & 0xFF);
    } else {
        out += static_cast<char>(127);
        for (int shift = 56; shift >= 0; shift -= 8)
            out += static_cast<char>((static_cast<std::uint64_t>(length) >> shift) & 0xFF);
    }
}

void append_text_frame(std::string& out, std::string_view json) {
    append_frame_header(out, 0x1, json.size());
    out += json;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto const lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
               return lower(x) == lower(y);
           });
}

std::string_view trim(std::string_view s) {
    auto const first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

/** The Sec-WebSocket-Key of a request head (without its blank line), or empty. */
std::string_view find_websocket_key(std::string_view head) {
    auto pos = head.find("\r\n"); // skip the request line
    while (pos != std::string_view::npos) {
        pos += 2;
        auto const eol = head.find("\r\n", pos);
        auto const line =
            head.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
        auto const colon = line.find(':');
        if (colon != std::string_view::npos && iequals(line.substr(0, colon), "sec-websocket-key"))
            return trim(line.substr(colon + 1));
        pos = eol;
    }
    return {};
}

/** Appends base64(SHA1(key + GUID)), the Sec-WebSocket-Accept of RFC 6455. */
void append_accept_key(std::string& out, std::string_view key) {
    constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::array<char, 128> input{};
    auto const n = std::min(key.size(), input.size() - guid.size());
    std::memcpy(input.data(), key.data(), n);
    std::memcpy(input.data() + n, guid.data(), guid.size());
    std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
    ::SHA1(reinterpret_cast<unsigned char const*>(input.data()), n + guid.size(), digest.data());
    std::array<unsigned char, 32> encoded{}; // 28 characters and the NUL
    auto const length = ::EVP_EncodeBlock(encoded.data(), digest.data(), SHA_DIGEST_LENGTH);
    out.append(reinterpret_cast<char const*>(encoded.data()), static_cast<std::size_t>(length));
}

/** The value of the message's "type" field, tolerating blanks around the colon; empty if none. */
std::string_view event_type(std::string_view message) {
    auto at = message.find("\"type\"");
    if (at == std::string_view::npos) return {};
    at += 6;
    auto const skip_blanks = [&] {
        while (at < message.size() && (message[at] == ' ' || message[at] == '\t'))
            ++at;
    };
    skip_blanks();
    if (at == message.size() || message[at] != ':') return {};
    ++at;
    skip_blanks();
    if (at == message.size() || message[at] != '"') return {};
    auto const end = message.find('"', ++at);
    if (end == std::string_view::npos) return {};
    return message.substr(at, end - at);
}

/** A shuffled deck: no quote repeats before all others have been sent. */
class quote_deck {
public:
    explicit quote_deck(std::vector<std::string> quotes, fast_rng& rng)
        : quotes_(std::move(quotes))
        , order_(quotes_.size())
        , rng_(rng) {
        std::iota(order_.begin(), order_.end(), std::size_t{0});
        std::shuffle(order_.begin(), order_.end(), rng_);
    }

    std::string const& next() {
        if (position_ == order_.size()) {
            auto const last = order_.back();
            std::shuffle(order_.begin(), order_.end(), rng_);
            // No repeat across the reshuffle either.
            if (order_.size() > 1 && order_.front() == last) std::swap(order_.front(), order_.back());
            position_ = 0;
        }
        return quotes_[order_[position_++]];
    }

private:
    std::vector<std::string> quotes_;
    std::vector<std::size_t> order_;
    std::size_t position_ = 0;
    fast_rng& rng_;
};

enum class conn_state : std::uint8_t {
    free,       // no connection on this descriptor
    handshake,  // reading the upgrade request
    open,       // WebSocket open
    close_sent, // we sent close 1000 after `disconnect`; waiting for the client's close or EOF
    draining,   // done: close the socket as soon as the unsent bytes are out
};

/** One client, indexed by its descriptor. The strings stay empty (no heap) while it is idle. */
struct connection {
    std::string in;      // an incomplete request or frame, kept between reads
    std::string out;     // unsent bytes; EPOLLOUT is armed exactly while this is non-empty
    std::string message; // a fragmented text message being reassembled
    std::uint32_t sub_index = not_subscribed;
    conn_state state = conn_state::free;
    bool fragmented = false;
};

enum class send_result { sent, queued, dropped, closed };

/** The whole server: one epoll set, one thread, connections in a vector indexed by descriptor. */
class floor_server {
public:
    floor_server(floor_options options, std::vector<std::string> quotes)
        : options_(std::move(options))
        , deck_(std::move(quotes), rng_)
        , scratch_(scratch_size) {
        append_text_frame(confirmation_, R"({"type":"subscribe_confirmation","payload":{"status":"ok"}})");
    }

    floor_server(floor_server const&) = delete;
    floor_server& operator=(floor_server const&) = delete;

    ~floor_server() {
        for (std::size_t fd = 0; fd < conns_.size(); ++fd)
            if (conns_[fd].state != conn_state::free) ::close(static_cast<int>(fd));
        for (int const fd : {listen_fd_, timer_fd_, signal_fd_, epoll_fd_})
            if (fd >= 0) ::close(fd);
    }

    /** Sets up the listener, timer and signals, prints the port, runs until SIGINT or SIGTERM, prints the
     * summary. */
    int run() {
        if (!setup()) return 1;
        std::array<epoll_event, 256> events{};
        while (!stopping_) {
            int const n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail("epoll_wait");
                return 1;
            }
            for (int i = 0; i < n; ++i) {
                int const fd = events[static_cast<std::size_t>(i)].data.fd;
                auto const what = events[static_cast<std::size_t>(i)].events;
                if (fd == listen_fd_)
                    accept_all();
                else if (fd == timer_fd_)
                    tick();
                else if (fd == signal_fd_)
                    stopping_ = true;
                else
                    on_connection_event(fd, what);
            }
        }
        std::fprintf(stderr, "wolf-floor: ticks=%llu deliveries=%llu drops=%llu accepted=%llu\n",
                     static_cast<unsigned long long>(ticks_), static_cast<unsigned long long>(deliveries_),
                     static_cast<unsigned long long>(drops_), static_cast<unsigned long long>(accepted_));
        return 0;
    }

private:
    /** A setup or system-call failure: one line on stderr. */
    static bool fail(char const* what) {
        std::fprintf(stderr, "wolf-floor: %s: %s\n", what, std::strerror(errno));
        return false;
    }

    bool setup() {
        // RFC 6455's own example, computed once before listening: a self-check, and it pays libcrypto's
        // one-time initialisation (about 2 MB) up front instead of in the first connection's RSS.
        reply_.clear();
        append_accept_key(reply_, "dGhlIHNhbXBsZSBub25jZQ==");
        if (reply_ != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
            std::fprintf(stderr, "wolf-floor: SHA-1/base64 self-check failed\n");
            return false;
        }

        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd_ < 0) return fail("epoll_create1");

        sigset_t signals;
        sigemptyset(&signals);
        sigaddset(&signals, SIGINT);
        sigaddset(&signals, SIGTERM);
        ::sigprocmask(SIG_BLOCK, &signals, nullptr);
        std::signal(SIGPIPE, SIG_IGN); // MSG_NOSIGNAL covers send(); this covers stdout
        signal_fd_ = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
        if (signal_fd_ < 0 || !watch(signal_fd_, EPOLLIN)) return fail("signalfd");

        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo* found = nullptr;
        auto const port = std::to_string(options_.port);
        if (int const rc = ::getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &found); rc != 0)
            usage_error("--host: '" + options_.host + "': " + ::gai_strerror(rc));
        listen_fd_ = ::socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int const one = 1;
        bool const bound = listen_fd_ >= 0 &&
                           ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
                           ::bind(listen_fd_, found->ai_addr, found->ai_addrlen) == 0 &&
                           ::listen(listen_fd_, SOMAXCONN) == 0;
        ::freeaddrinfo(found);
        if (!bound || !watch(listen_fd_, EPOLLIN)) return fail("listen");

        timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        auto const ms = options_.interval.count();
        itimerspec period{};
        period.it_interval.tv_sec = static_cast<time_t>(ms / 1000);
        period.it_interval.tv_nsec = static_cast<long>(ms % 1000) * 1'000'000;
        period.it_value = period.it_interval;
        if (timer_fd_ < 0 || ::timerfd_settime(timer_fd_, 0, &period, nullptr) != 0 ||
            !watch(timer_fd_, EPOLLIN))
            return fail("timerfd");

        sockaddr_storage local{};
        socklen_t length = sizeof local;
        if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&local), &length) != 0)
            return fail("getsockname");
        auto const actual = local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(local).sin6_port
                                                        : reinterpret_cast<sockaddr_in&>(local).sin_port;
        std::printf("listening port=%u\n", static_cast<unsigned>(ntohs(actual)));
        std::fflush(stdout);
        return true;
    }

    bool watch(int fd, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        return ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
    }

    void set_events(int fd, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
    }

    void accept_all() {
        for (;;) {
            int const fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno == EMFILE || errno == ENFILE) {
                    // Out of descriptors: stop watching the listener (it would fire in a loop) until one
                    // closes.
                    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
                    accept_paused_ = true;
                    if (options_.verbose) std::fprintf(stderr, "accept paused: %s\n", std::strerror(errno));
                }
                return;
            }
            int const one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (!watch(fd, EPOLLIN)) {
                ::close(fd);
                continue;
            }
            if (static_cast<std::size_t>(fd) >= conns_.size())
                conns_.resize(static_cast<std::size_t>(fd) + 1);
            conns_[static_cast<std::size_t>(fd)].state = conn_state::handshake;
            ++accepted_;
            ++open_;
            if (options_.verbose) std::fprintf(stderr, "accept fd=%d open=%zu\n", fd, open_);
        }
    }

    void close_connection(int fd) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        unsubscribe(fd);
        ::close(fd); // also leaves the epoll set: nothing else holds the descriptor
        c = connection{};
        --open_;
        if (options_.verbose) std::fprintf(stderr, "close fd=%d open=%zu\n", fd, open_);
        if (accept_paused_ && watch(listen_fd_, EPOLLIN)) accept_paused_ = false;
    }

    void subscribe(int fd) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        if (c.sub_index != not_subscribed) return;
        c.sub_index = static_cast<std::uint32_t>(subscribers_.size());
        subscribers_.push_back(fd);
    }

    /** O(1): the last subscriber takes the leaver's place. */
    void unsubscribe(int fd) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        if (c.sub_index == not_subscribed) return;
        int const moved = subscribers_.back();
        subscribers_[c.sub_index] = moved;
        conns_[static_cast<std::size_t>(moved)].sub_index = c.sub_index;
        subscribers_.pop_back();
        c.sub_index = not_subscribed;
    }

    /**
     * Sends what the kernel takes now and queues the rest behind any earlier unsent bytes. A wisdom
     * (droppable) that would take the queue past max_pending is dropped; any other reply closes the
     * connection instead, as a client that reads nothing must not grow the queue without bound.
     */
    send_result send_or_queue(int fd, std::string_view bytes, bool droppable) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        if (!c.out.empty()) {
            if (c.out.size() + bytes.size() > max_pending) {
                if (droppable) return send_result::dropped;
                close_connection(fd);
                return send_result::closed;
            }
            c.out += bytes;
            return send_result::queued;
        }
        auto const n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(bytes.size())) return send_result::sent;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            close_connection(fd);
            return send_result::closed;
        }
        c.out.assign(bytes.substr(n < 0 ? 0 : static_cast<std::size_t>(n)));
        set_events(fd, EPOLLIN | EPOLLOUT);
        return send_result::queued;
    }

    /** send_or_queue for a reply; false when the connection is gone. */
    bool reply(int fd, std::string_view bytes) {
        return send_or_queue(fd, bytes, false) != send_result::closed;
    }

    /** Closes at once if nothing is left to send; otherwise when on_writable empties the queue. */
    void drain_and_close(int fd) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        unsubscribe(fd);
        c.state = conn_state::draining;
        if (c.out.empty()) close_connection(fd);
    }

    void on_connection_event(int fd, std::uint32_t what) {
        // A stale event for a descriptor closed earlier in this batch (and perhaps reused by accept) is
        // harmless: recv/send on it just find EAGAIN.
        if (static_cast<std::size_t>(fd) >= conns_.size()) return;
        if (conns_[static_cast<std::size_t>(fd)].state == conn_state::free) return;
        // Errors and hang-ups surface through recv (the error, or EOF after the last bytes).
        if (what & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(fd);
        if ((what & EPOLLOUT) && conns_[static_cast<std::size_t>(fd)].state != conn_state::free)
            on_writable(fd);
    }

    void on_writable(int fd) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        if (c.out.empty()) return;
        auto const n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) close_connection(fd);
            return;
        }
        if (static_cast<std::size_t>(n) < c.out.size()) {
            c.out.erase(0, static_cast<std::size_t>(n));
            return;
        }
        std::string{}.swap(c.out); // give the memory back: idle connections hold no heap
        if (c.state == conn_state::draining) return close_connection(fd);
        set_events(fd, EPOLLIN);
    }

    static constexpr std::size_t closed = std::numeric_limits<std::size_t>::max();

    void on_readable(int fd) {
        auto const n = ::recv(fd, scratch_.data(), scratch_.size(), 0);
        if (n == 0) return close_connection(fd);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) close_connection(fd);
            return;
        }
        auto& c = conns_[static_cast<std::size_t>(fd)];
        if (c.state == conn_state::draining) return; // we are only waiting to flush and close

        // Parse straight from the scratch buffer unless an earlier read left a partial request or frame.
        bool const from_in = !c.in.empty();
        char* data = scratch_.data();
        auto size = static_cast<std::size_t>(n);
        if (from_in) {
            c.in.append(scratch_.data(), size);
            data = c.in.data();
            size = c.in.size();
        }

        std::size_t used = 0;
        if (c.state == conn_state::handshake) {
            used = on_request(fd, std::string_view(data, size));
            if (used == closed) return;
        }
        if (used < size && c.state != conn_state::handshake) {
            auto const more = on_frames(fd, data + used, size - used);
            if (more == closed) return;
            used += more;
        }

        if (from_in) {
            if (used == size)
                std::string{}.swap(c.in);
            else
                c.in.erase(0, used);
        } else if (used < size) {
            c.in.assign(data + used, size - used);
        }
    }

    /** Answers a complete upgrade request; returns the bytes it used (0 while incomplete) or `closed`. */
    std::size_t on_request(int fd, std::string_view data) {
        auto const end = data.find("\r\n\r\n");
        if (end == std::string_view::npos || end + 4 > max_request) {
            if (data.size() < max_request) return 0;
            close_connection(fd);
            return closed;
        }
        auto const head = data.substr(0, end);
        auto const key = find_websocket_key(head);
        if (!head.starts_with("GET ") || key.empty()) {
            constexpr std::string_view bad_request =
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            if (reply(fd, bad_request)) drain_and_close(fd);
            return closed;
        }

        // The 101 and the initial frame go out in one send.
        reply_.assign("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: ");
        append_accept_key(reply_, key);
        reply_ += "\r\n\r\n";
        json_.assign(R"({"type":"initial","payload":{"id":")");
        append_uuid_v4(json_, rng_);
        json_ += R"("}})";
        append_text_frame(reply_, json_);
        conns_[static_cast<std::size_t>(fd)].state = conn_state::open;
        if (!reply(fd, reply_)) return closed;
        return end + 4;
    }

    /** Unmasks and handles every complete frame; returns the bytes used or `closed`. */
    std::size_t on_frames(int fd, char* data, std::size_t size) {
        std::size_t pos = 0;
        while (size - pos >= 2) {
            auto* const p = reinterpret_cast<unsigned char*>(data + pos);
            auto const avail = size - pos;
            bool const fin = (p[0] & 0x80) != 0;
            unsigned const opcode = p[0] & 0x0F;
            std::uint64_t length = p[1] & 0x7F;
            std::size_t header = 2;
            if (length == 126) {
                if (avail < 4) break;
                length = (std::uint64_t{p[2]} << 8) | p[3];
                header = 4;
            } else if (length == 127) {
                if (avail < 10) break;
                length = 0;
                for (std::size_t i = 2; i < 10; ++i)
                    length = (length << 8) | p[i];
                header = 10;
            }
            // No extensions were negotiated, client frames must be masked, control frames are short and
            // whole; anything else closes the socket.
            bool const control = opcode >= 0x8;
            if ((p[0] & 0x70) != 0 || (p[1] & 0x80) == 0 || length > max_message ||
                (control && (!fin || length > 125))) {
                close_connection(fd);
                return closed;
            }
            header += 4;
            if (avail < header + length) break;

            unsigned char const* const mask = p + header - 4;
            auto* const payload = p + header;
            for (std::size_t i = 0; i < length; ++i)
                payload[i] ^= mask[i & 3];
            pos += header + static_cast<std::size_t>(length);

            if (!on_frame(
                    fd, fin, opcode,
                    std::string_view(reinterpret_cast<char*>(payload), static_cast<std::size_t>(length))))
                return closed;
            if (conns_[static_cast<std::size_t>(fd)].state == conn_state::draining) return size;
        }
        return pos;
    }

    /** False when the connection was closed. */
    bool on_frame(int fd, bool fin, unsigned opcode, std::string_view payload) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        switch (opcode) {
        case 0x1: // text
            if (c.fragmented) break;
            if (fin) return on_message(fd, payload);
            c.fragmented = true;
            c.message.assign(payload);
            return true;
        case 0x0: { // continuation
            if (!c.fragmented || c.message.size() + payload.size() > max_message) break;
            c.message += payload;
            if (!fin) return true;
            c.fragmented = false;
            std::string whole;
            whole.swap(c.message); // freed on return: idle connections hold no heap
            return on_message(fd, whole);
        }
        case 0x8: { // close
            if (c.state == conn_state::close_sent || payload.size() == 1) break;
            // Echo the status code (not the reason), then close once it is out.
            std::array<char, 4> echo{'\x88', static_cast<char>(payload.empty() ? 0 : 2)};
            std::copy_n(payload.begin(), std::min<std::size_t>(payload.size(), 2), echo.begin() + 2);
            if (!reply(fd, std::string_view(echo.data(), 2 + static_cast<std::size_t>(echo[1]))))
                return false;
            drain_and_close(fd);
            return conns_[static_cast<std::size_t>(fd)].state != conn_state::free;
        }
        case 0x9:                                         // ping
            if (c.state != conn_state::open) return true; // nothing may follow our close frame
            reply_.clear();
            append_frame_header(reply_, 0xA, payload.size());
            reply_ += payload;
            return reply(fd, reply_);
        case 0xA: // pong
            return true;
        default: // binary and reserved opcodes
            break;
        }
        close_connection(fd);
        return false;
    }

    /** The contract's client events, told apart by their type alone; false when the connection was closed. */
    bool on_message(int fd, std::string_view message) {
        auto& c = conns_[static_cast<std::size_t>(fd)];
        if (c.state != conn_state::open) return true; // after our close, data frames are ignored
        auto const type = event_type(message);
        if (type == "subscribe") {
            subscribe(fd);
            return reply(fd, confirmation_);
        }
        if (type == "unsubscribe") {
            unsubscribe(fd);
        } else if (type == "disconnect") {
            unsubscribe(fd);
            c.state = conn_state::close_sent;
            return reply(fd, "\x88\x02\x03\xE8"sv); // close 1000
        }
        return true; // connect, ping and anything else: nothing to do
    }

    /** One quote, serialized once, one send() per subscriber. */
    void tick() {
        std::uint64_t expirations = 0;
        if (::read(timer_fd_, &expirations, sizeof expirations) != sizeof expirations) return;
        ++ticks_;
        json_.assign(R"({"type":"wisdom_distribution","payload":{"message":")");
        append_json_escaped(json_, deck_.next());
        json_ += R"("}})";
        frame_.clear();
        append_text_frame(frame_, json_);

        auto const recipients = subscribers_.size();
        // Backwards, so a subscriber closed by a failed send is replaced by one already served.
        for (auto i = subscribers_.size(); i-- > 0;) {
            switch (send_or_queue(subscribers_[i], frame_, true)) {
            case send_result::sent:
            case send_result::queued:
                ++deliveries_;
                break;
            case send_result::dropped:
                ++drops_;
                break;
            case send_result::closed:
                break;
            }
        }
        if (options_.verbose)
            std::fprintf(stderr, "tick %llu recipients=%zu connections=%zu\n",
                         static_cast<unsigned long long>(ticks_), recipients, open_);
    }

    floor_options options_;
    fast_rng rng_;
    quote_deck deck_;
    std::vector<char> scratch_;        // every read lands here first, shared by all connections
    std::vector<connection> conns_;    // indexed by descriptor
    std::vector<int> subscribers_;     // descriptors; connection::sub_index points back
    std::string reply_, json_, frame_; // reused so that steady state allocates nothing
    std::string confirmation_;         // the subscribe_confirmation frame, built once
    int epoll_fd_ = -1, listen_fd_ = -1, timer_fd_ = -1, signal_fd_ = -1;
    std::size_t open_ = 0;
    bool accept_paused_ = false;
    bool stopping_ = false;
    std::uint64_t ticks_ = 0, deliveries_ = 0, drops_ = 0, accepted_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    auto options = parse_options(argc, argv);
    auto quotes = options.quotes_file.empty()
                      ? std::vector<std::string>(builtin_quotes.begin(), builtin_quotes.end())
                      : load_quotes(options.quotes_file);
    floor_server server(std::move(options), std::move(quotes));
    return server.run();
}
