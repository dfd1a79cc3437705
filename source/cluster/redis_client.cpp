#include "cluster/redis_client.hpp"

#include "support/async.hpp"
#include "support/duration.hpp"

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <optional>
#include <utility>

namespace wolf {
namespace {

using text_handler = net::any_completion_handler<void(std::string)>;
using result_handler = net::any_completion_handler<void(redis_result)>;

redis_reply copy_reply(redisReply const& r) {
    redis_reply out;
    switch (r.type) {
    case REDIS_REPLY_STRING:
        out.type = redis_reply::kind::string;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_STATUS:
        out.type = redis_reply::kind::status;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_ERROR:
        out.type = redis_reply::kind::error;
        out.text.assign(r.str, r.len);
        break;
    case REDIS_REPLY_INTEGER:
        out.type = redis_reply::kind::integer;
        out.integer = r.integer;
        break;
    case REDIS_REPLY_ARRAY:
        out.type = redis_reply::kind::array;
        out.elements.reserve(r.elements);
        for (std::size_t i = 0; i < r.elements; ++i)
            out.elements.push_back(copy_reply(*r.element[i]));
        break;
    default:
        break; // nil
    }
    return out;
}

/** One command in RESP, as hiredis writes it (binary-safe arguments). */
std::string format_command(std::vector<std::string> const& args) {
    std::vector<char const*> argv;
    std::vector<std::size_t> lengths;
    for (auto const& arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    char* text = nullptr;
    auto const length =
        redisFormatCommandArgv(&text, static_cast<int>(argv.size()), argv.data(), lengths.data());
    if (length < 0 || !text) return {};
    std::string command(text, static_cast<std::size_t>(length));
    redisFreeCommand(text);
    return command;
}

struct reader_deleter {
    void operator()(redisReader* reader) const noexcept { redisReaderFree(reader); }
};
struct reply_deleter {
    void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};

} // namespace

/**
 * The connection's state, shared with every read, write and timer still queued. Invariant: once `ended`,
 * the socket is closed, nothing is pending and nothing is written or reported any more (but the loss, once).
 */
struct redis_client::impl : std::enable_shared_from_this<impl> {
    /** A command or a SUBSCRIBE on its way: who waits for the reply, and by when it must come. */
    struct pending {
        std::string what; // the command's name, for a timeout's message
        steady_clock::time_point due;
        std::optional<result_handler> on_reply;    // a command
        std::optional<text_handler> on_subscribed; // a SUBSCRIBE
    };

    impl(net::any_io_executor ex, duration t, net::ssl::context* tls)
        : executor(ex)
        , timeout(t)
        , tls_context(tls)
        , plain(ex)
        , deadline(ex)
        , reader(redisReaderCreate()) {}

    net::any_io_executor executor;
    duration timeout;
    net::ssl::context* tls_context;
    net::ip::tcp::socket plain; // the connection, until a TLS layer takes it
    std::optional<net::ssl::stream<net::ip::tcp::socket>> secure; // rediss://: the TLS layer over it
    net::steady_timer deadline;                                   // fires at the oldest pending reply's time
    std::unique_ptr<redisReader, reader_deleter> reader;
    std::deque<pending> waiting; // in the order sent, which is the order Redis answers
    std::string outbox;          // commands not yet handed to a write
    std::string sending;         // what the write in flight holds
    bool writing = false;
    bool deadline_armed = false;
    bool subscribed = false; // the SUBSCRIBE was confirmed: every reply is a message now
    bool up = false;         // connect() succeeded and nothing has ended the connection since
    bool ended = false;      // failed or closed
    bool closing = false;    // close() was called: nothing is reported to the owner any more
    std::string failure;     // why it ended
    message_handler on_message;
    lost_handler on_lost;

    net::ip::tcp::socket& lowest() noexcept { return secure ? secure->next_layer() : plain; }

    template <class Handler, class Value>
    void complete(Handler handler, Value value) {
        net::post(executor, [handler = std::move(handler), value = std::move(value)]() mutable {
            std::move(handler)(std::move(value));
        });
    }

    /** Ends the connection: closes the socket, fails what waits, reports the loss once if it was up. */
    void fail(std::string reason) {
        if (ended) return;
        ended = true;
        failure = std::move(reason);
        boost::system::error_code ignored;
        lowest().close(ignored); // the read and any write end, aborted
        deadline.cancel();
        for (auto& p : std::exchange(waiting, {})) {
            if (p.on_reply) complete(std::move(*p.on_reply), redis_result{failure, {}});
            if (p.on_subscribed) complete(std::move(*p.on_subscribed), failure);
        }
        if (std::exchange(up, false) && !closing && on_lost)
            net::post(executor, [self = shared_from_this()] {
                if (!self->closing) self->on_lost(self->failure);
            });
    }

    void send(std::string what, std::string text, std::optional<result_handler> on_reply,
              std::optional<text_handler> on_subscribed) {
        outbox += text;
        waiting.push_back(
            {std::move(what), steady_clock::now() + timeout, std::move(on_reply), std::move(on_subscribed)});
        arm_deadline();
        flush();
    }

    void flush() {
        if (writing || outbox.empty() || ended) return;
        writing = true;
        sending = std::exchange(outbox, {});
        auto done = [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
            self->writing = false;
            if (self->ended) return;
            if (ec) return self->fail("write: " + ec.message());
            self->flush();
        };
        if (secure)
            net::async_write(*secure, net::buffer(sending), std::move(done));
        else
            net::async_write(plain, net::buffer(sending), std::move(done));
    }

    void arm_deadline() {
        if (deadline_armed || waiting.empty() || ended) return;
        deadline_armed = true;
        deadline.expires_at(waiting.front().due);
        deadline.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            self->deadline_armed = false;
            if (ec || self->ended || self->waiting.empty()) return;
            if (self->waiting.front().due <= steady_clock::now()) {
                // Bytes waiting in the socket are a reply whose read is queued behind this handler: a busy
                // event loop is not a silent Redis. Look again in a moment.
                boost::system::error_code available_ec;
                if (self->lowest().available(available_ec) > 0 && !available_ec) {
                    self->waiting.front().due = steady_clock::now() + std::chrono::milliseconds(10);
                } else {
                    auto const& what = self->waiting.front().what;
                    return self->fail(what + " timed out after " + format_duration(self->timeout));
                }
            }
            self->arm_deadline();
        });
    }

    /** One reply from Redis: the oldest waiting command's, or (subscribed) a message. */
    void dispatch(redisReply const& raw) {
        if (subscribed) {
            if (raw.type == REDIS_REPLY_ARRAY && raw.elements == 3 &&
                raw.element[0]->type == REDIS_REPLY_STRING &&
                std::string_view(raw.element[0]->str, raw.element[0]->len) == "message" && on_message)
                on_message(std::string(raw.element[1]->str, raw.element[1]->len),
                           std::string(raw.element[2]->str, raw.element[2]->len));
            return;
        }
        if (waiting.empty()) return fail("a reply nobody asked for");
        auto p = std::move(waiting.front());
        waiting.pop_front();
        if (p.on_subscribed) {
            auto const reply = copy_reply(raw);
            if (reply.type == redis_reply::kind::error) {
                complete(std::move(*p.on_subscribed), "SUBSCRIBE: " + reply.text);
                return;
            }
            subscribed = true;
            complete(std::move(*p.on_subscribed), std::string());
        } else {
            complete(std::move(*p.on_reply), redis_result{{}, copy_reply(raw)});
        }
        arm_deadline();
    }

    net::awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(net::mutable_buffer buffer) {
        if (secure) return secure->async_read_some(buffer, use_nothrow);
        return plain.async_read_some(buffer, use_nothrow);
    }

    /** Reads until the connection ends, feeding hiredis's reader and dispatching each whole reply. */
    static net::awaitable<void> read_loop(std::shared_ptr<impl> self) {
        std::array<char, 16 * 1024> buffer{};
        for (;;) {
            auto const [ec, size] = co_await self->read_some(net::buffer(buffer));
            if (self->ended) co_return;
            if (ec)
                co_return self->fail(ec == net::error::eof || ec == net::ssl::error::stream_truncated
                                         ? std::string("connection closed by Redis")
                                     : ec == net::error::connection_reset
                                         ? std::string("connection reset by Redis")
                                         : ec.message());
            if (redisReaderFeed(self->reader.get(), buffer.data(), size) != REDIS_OK)
                co_return self->fail("protocol error");
            for (;;) {
                void* raw = nullptr;
                if (redisReaderGetReply(self->reader.get(), &raw) != REDIS_OK)
                    co_return self->fail(std::string("protocol error: ") + self->reader->errstr);
                if (!raw) break;
                std::unique_ptr<redisReply, reply_deleter> const reply(static_cast<redisReply*>(raw));
                self->dispatch(*reply);
                if (self->ended) co_return;
            }
        }
    }
};

namespace {

/** Closes `socket` if the step it guards is not done within `limit`; expired() says whether it did. */
class step_deadline {
public:
    step_deadline(net::any_io_executor executor, net::ip::tcp::socket& socket, duration limit)
        : timer_(executor)
        , expired_(std::make_shared<bool>(false)) {
        timer_.expires_after(limit);
        timer_.async_wait([&socket, expired = expired_](boost::system::error_code ec) {
            if (ec) return;
            *expired = true;
            boost::system::error_code ignored;
            socket.close(ignored);
        });
    }
    ~step_deadline() { timer_.cancel(); }
    step_deadline(step_deadline const&) = delete;
    step_deadline& operator=(step_deadline const&) = delete;
    bool expired() const noexcept { return *expired_; }

private:
    net::steady_timer timer_;
    std::shared_ptr<bool> expired_;
};

} // namespace

redis_client::redis_client(net::any_io_executor executor, duration timeout, net::ssl::context* tls)
    : impl_(std::make_shared<impl>(std::move(executor), timeout, tls)) {
}

redis_client::~redis_client() {
    close();
}

net::awaitable<std::string> redis_client::connect(redis_endpoint const& to) {
    auto const self = impl_;
    if (self->up || self->ended || self->lowest().is_open()) co_return "already used";
    auto why = co_await open(self, to);
    if (why.empty()) co_return why;
    self->fail(why); // one-shot: nothing more on this client
    co_return self->closing ? std::string("closed") : why;
}

net::awaitable<std::string> redis_client::open(std::shared_ptr<impl> self, redis_endpoint const& to) {
    if (to.tls && !self->tls_context) co_return "TLS (rediss://) without a TLS context";
    auto const where = to.host + ":" + std::to_string(to.port);

    // An address is used as it is; a name is resolved here, bounded.
    boost::system::error_code ec;
    auto address = net::ip::make_address(to.host, ec);
    bool const host_is_address = !ec;
    if (!host_is_address) {
        auto resolver = std::make_shared<net::ip::tcp::resolver>(self->executor);
        net::steady_timer limit(self->executor);
        limit.expires_after(self->timeout);
        limit.async_wait([resolver](boost::system::error_code timer_ec) {
            if (!timer_ec) resolver->cancel();
        });
        auto [resolve_ec, results] =
            co_await resolver->async_resolve(to.host, std::to_string(to.port), use_nothrow);
        limit.cancel();
        if (resolve_ec == net::error::operation_aborted && !self->closing)
            co_return "resolving " + to.host + " timed out after " + format_duration(self->timeout);
        if (resolve_ec || results.empty())
            co_return "cannot resolve " + to.host + ": " + resolve_ec.message();
        // One address is tried: the first IPv4 one if there is any, as Redis listens on IPv4 by default.
        address = results.begin()->endpoint().address();
        for (auto const& entry : results)
            if (entry.endpoint().address().is_v4()) {
                address = entry.endpoint().address();
                break;
            }
    }
    if (self->closing) co_return "closed";

    net::ip::tcp::endpoint const target(address, to.port);
    {
        step_deadline const limit(self->executor, self->plain, self->timeout);
        auto const [connect_ec] = co_await self->plain.async_connect(target, use_nothrow);
        if (self->closing) co_return "closed";
        if (limit.expired())
            co_return "connect to " + where + " timed out after " + format_duration(self->timeout);
        if (connect_ec) co_return "connect to " + where + ": " + connect_ec.message();
    }
    self->plain.set_option(net::ip::tcp::no_delay(true), ec);

    if (to.tls) {
        self->secure.emplace(std::move(self->plain), *self->tls_context);
        auto& tls = *self->secure;
        // SNI for a name (never for an address), and the certificate must be the host's.
        if (!host_is_address) // SSL_set_tlsext_host_name, without the macro's C cast
            SSL_ctrl(tls.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(to.host.c_str()));
        tls.set_verify_mode(net::ssl::verify_peer);
        tls.set_verify_callback(net::ssl::host_name_verification(to.host));
        step_deadline const limit(self->executor, self->lowest(), self->timeout);
        auto const [handshake_ec] = co_await tls.async_handshake(net::ssl::stream_base::client, use_nothrow);
        if (self->closing) co_return "closed";
        // A plain port answers a ClientHello with RESP, or waits for the end of a line that never comes.
        std::string const plain_port_hint = " (a plain port? it takes redis://)";
        if (limit.expired())
            co_return "TLS handshake with " + where + " timed out after " + format_duration(self->timeout) +
                plain_port_hint;
        if (handshake_ec) {
            bool const refused_certificate =
                handshake_ec.category() == net::error::get_ssl_category() &&
                ERR_GET_REASON(static_cast<unsigned long>(handshake_ec.value())) ==
                    SSL_R_CERTIFICATE_VERIFY_FAILED;
            co_return "TLS handshake with " + where + ": " + handshake_ec.message() +
                (refused_certificate ? std::string() : plain_port_hint);
        }
    }
    net::co_spawn(self->executor, impl::read_loop(self), net::detached);

    std::vector<std::vector<std::string>> login;
    if (!to.password.empty()) {
        if (to.username.empty())
            login.push_back({"AUTH", to.password});
        else
            login.push_back({"AUTH", to.username, to.password});
    }
    if (to.db != 0) login.push_back({"SELECT", std::to_string(to.db)});
    login.push_back({"PING"});
    for (auto& args : login) {
        auto const name = args.front();
        auto const result = co_await send_command(self, std::move(args));
        if (!result.ok()) {
            // Redis drops a connection that speaks plain RESP to its TLS port.
            if (!to.tls && result.failure.starts_with("connection ") && result.failure.ends_with(" by Redis"))
                co_return result.failure + " during " + name + " (a TLS port? it takes rediss://)";
            co_return result.failure;
        }
        if (result.reply.type == redis_reply::kind::error) co_return name + ": " + result.reply.text;
    }
    if (self->ended) co_return self->failure;
    self->up = true;
    co_return std::string();
}

// Not coroutines: async_initiate's lambda would be a temporary inside co_await, which GCC 12 destroys twice
// (PR 99576).

net::awaitable<redis_result> redis_client::command(std::vector<std::string> args) {
    return send_command(impl_, std::move(args));
}

net::awaitable<redis_result> redis_client::send_command(std::shared_ptr<impl> self,
                                                        std::vector<std::string> args) {
    return net::async_initiate<decltype(net::use_awaitable), void(redis_result)>(
        [self = std::move(self), args = std::move(args)](result_handler handler) {
            if (self->ended || !self->lowest().is_open() || args.empty()) {
                auto const why = args.empty()             ? std::string("empty command")
                                 : !self->failure.empty() ? self->failure
                                                          : std::string("not connected");
                return self->complete(std::move(handler), redis_result{why, {}});
            }
            if (self->subscribed)
                return self->complete(std::move(handler), redis_result{"subscribed: no commands", {}});
            self->send(args.front(), format_command(args), std::move(handler), std::nullopt);
        },
        net::use_awaitable);
}

net::awaitable<std::string> redis_client::subscribe(std::string channel, message_handler on_message) {
    impl_->on_message = std::move(on_message);
    return net::async_initiate<decltype(net::use_awaitable), void(std::string)>(
        [self = impl_, channel = std::move(channel)](text_handler handler) {
            if (self->ended || !self->up)
                return self->complete(std::move(handler),
                                      self->failure.empty() ? std::string("not connected") : self->failure);
            std::vector<std::string> const args{"SUBSCRIBE", channel};
            self->send("SUBSCRIBE", format_command(args), std::nullopt, std::move(handler));
        },
        net::use_awaitable);
}

void redis_client::on_lost(lost_handler handler) {
    impl_->on_lost = std::move(handler);
}

bool redis_client::connected() const noexcept {
    return impl_->up;
}

void redis_client::close() {
    impl_->closing = true;
    impl_->fail("closed");
}

} // namespace wolf
