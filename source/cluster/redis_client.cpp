#include "cluster/redis_client.hpp"

#include "support/async.hpp"
#include "support/duration.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <map>
#include <mutex>
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

bool is_string(redisReply const* r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

} // namespace

/** A command on its way: who waits for the reply, and its entry among the deadlines. */
struct pending_command {
    std::uint64_t deadline_id;
    result_handler handler;
};

/**
 * The state hiredis's hooks and callbacks reach through `ac->data`/`ev.data`. The hooks only flip flags and
 * arm waits; the waits call back into hiredis from the event loop. Invariant: `context` is null once hiredis
 * has called the cleanup hook (the context is being or has been freed); nothing touches it after that.
 */
struct redis_client::impl : std::enable_shared_from_this<impl> {
    impl(net::any_io_executor ex, duration t)
        : executor(ex)
        , socket(ex)
        , deadline(ex)
        , timeout(t) {}

    net::any_io_executor executor;
    net::posix::stream_descriptor socket; // hiredis's fd: released, never closed
    net::steady_timer deadline;           // fires at the earliest pending deadline
    duration timeout;
    redisAsyncContext* context = nullptr;

    bool tcp_connected = false; // hiredis reported connect(2) done
    bool up = false;            // connect() succeeded and nothing has ended the connection since
    bool closing = false;       // close() was called: nothing is reported to the owner any more
    bool want_read = false, want_write = false;
    bool read_waiting = false, write_waiting = false;
    bool deadline_armed = false;
    std::string failure; // why the connection ended, once it has

    // What is waiting for Redis, by the order it was sent; each must be answered by its time.
    std::map<std::uint64_t, std::pair<steady_clock::time_point, std::string>> deadlines;
    std::uint64_t next_deadline_id = 0;

    std::optional<text_handler> connect_waiter;
    std::uint64_t connect_deadline_id = 0;
    std::optional<text_handler> subscribe_waiter;
    std::uint64_t subscribe_deadline_id = 0;
    message_handler on_message;
    lost_handler on_lost;

    /** Runs `handler(value)` later, never inside hiredis. On the client's executor, which is its callers'. */
    template <class Handler, class Value>
    void complete(Handler handler, Value value) {
        net::post(executor, [handler = std::move(handler), value = std::move(value)]() mutable {
            std::move(handler)(std::move(value));
        });
    }

    /** Why a context that is going away went: the first reason recorded, else hiredis's error. */
    std::string why(redisAsyncContext const* ac) const {
        if (!failure.empty()) return failure;
        if (ac && ac->c.err) return ac->c.errstr;
        return "connection closed";
    }

    std::uint64_t add_deadline(std::string what) {
        auto const id = ++next_deadline_id;
        deadlines.emplace(id, std::pair{steady_clock::now() + timeout, std::move(what)});
        arm_deadline();
        return id;
    }

    void arm_deadline() {
        if (deadline_armed || deadlines.empty() || !context) return;
        deadline_armed = true;
        deadline.expires_at(deadlines.begin()->second.first);
        deadline.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            self->deadline_armed = false;
            if (ec || !self->context) return;
            // A reply may be waiting in the socket behind a handler queued after this one: read it first, so
            // a busy event loop is not mistaken for a silent Redis. (Not while connecting: hiredis would take
            // the read for the end of connect(2).)
            if (self->tcp_connected) redisAsyncHandleRead(self->context);
            if (!self->context) return;
            auto const now = steady_clock::now();
            if (!self->deadlines.empty() && self->deadlines.begin()->second.first <= now) {
                auto const& what = self->deadlines.begin()->second.second;
                self->fail(what + " timed out after " + format_duration(self->timeout));
                return;
            }
            self->arm_deadline();
        });
    }

    /** Frees the context: hiredis fails every pending command, then calls the cleanup hook. */
    void fail(std::string reason) {
        if (!context) return;
        if (failure.empty()) failure = std::move(reason);
        redisAsyncFree(context);
    }

    void arm_read() {
        if (!want_read || read_waiting || !context) return;
        read_waiting = true;
        socket.async_wait(net::posix::descriptor_base::wait_read,
                          [self = shared_from_this()](boost::system::error_code ec) {
                              self->read_waiting = false;
                              if (ec == net::error::operation_aborted || !self->context) return;
                              if (self->want_read) redisAsyncHandleRead(self->context);
                              self->arm_read();
                          });
    }

    void arm_write() {
        if (!want_write || write_waiting || !context) return;
        write_waiting = true;
        socket.async_wait(net::posix::descriptor_base::wait_write,
                          [self = shared_from_this()](boost::system::error_code ec) {
                              self->write_waiting = false;
                              if (ec == net::error::operation_aborted || !self->context) return;
                              if (self->want_write) redisAsyncHandleWrite(self->context);
                              self->arm_write();
                          });
    }

    /** hiredis's cleanup hook: the context is going away. Called before hiredis closes the fd. */
    void detach() {
        if (!context) return;
        if (failure.empty()) failure = why(context);
        context = nullptr;
        want_read = want_write = false;
        socket.release(); // cancels the waits; hiredis closes the fd itself
        deadline.cancel();
        deadlines.clear();
        if (connect_waiter) complete(std::move(*connect_waiter), failure);
        connect_waiter.reset();
        if (subscribe_waiter) complete(std::move(*subscribe_waiter), failure);
        subscribe_waiter.reset();
        bool const was_up = std::exchange(up, false);
        if (was_up && !closing && on_lost)
            net::post(executor, [self = shared_from_this()] {
                if (!self->closing) self->on_lost(self->failure);
            });
    }

    // hiredis's hooks and callbacks.
    static void add_read(void* data) {
        auto* self = static_cast<impl*>(data);
        self->want_read = true;
        self->arm_read();
    }
    static void del_read(void* data) { static_cast<impl*>(data)->want_read = false; }
    static void add_write(void* data) {
        auto* self = static_cast<impl*>(data);
        self->want_write = true;
        self->arm_write();
    }
    static void del_write(void* data) { static_cast<impl*>(data)->want_write = false; }
    static void cleanup(void* data) { static_cast<impl*>(data)->detach(); }

    static void on_connect(redisAsyncContext const* ac, int status) {
        auto* self = static_cast<impl*>(ac->data);
        // On failure hiredis frees the context right after this returns; the cleanup hook reports it.
        if (status != REDIS_OK) return;
        self->tcp_connected = true;
        self->deadlines.erase(self->connect_deadline_id);
        if (self->connect_waiter) self->complete(std::move(*self->connect_waiter), std::string());
        self->connect_waiter.reset();
    }

    static void on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
        std::unique_ptr<pending_command> pending(static_cast<pending_command*>(privdata));
        auto* self = static_cast<impl*>(ac->data);
        self->deadlines.erase(pending->deadline_id);
        redis_result result;
        if (reply)
            result.reply = copy_reply(*static_cast<redisReply*>(reply));
        else
            result.failure = self->why(ac);
        self->complete(std::move(pending->handler), std::move(result));
    }

    /** Every reply on the subscribed channel: the confirmation first, then the messages. */
    static void on_subscription(redisAsyncContext* ac, void* reply, void* privdata) {
        auto* self = static_cast<impl*>(privdata);
        auto const* r = static_cast<redisReply*>(reply);
        (void)ac;
        if (!r) return; // the context is being freed; the cleanup hook reports it
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_string(r->element[0])) return;
        std::string_view const kind(r->element[0]->str, r->element[0]->len);
        if (kind == "subscribe") {
            self->deadlines.erase(self->subscribe_deadline_id);
            if (self->subscribe_waiter) self->complete(std::move(*self->subscribe_waiter), std::string());
            self->subscribe_waiter.reset();
        } else if (kind == "message" && is_string(r->element[1]) && is_string(r->element[2])) {
            net::post(self->executor,
                      [self = self->shared_from_this(),
                       channel = std::string(r->element[1]->str, r->element[1]->len),
                       payload = std::string(r->element[2]->str, r->element[2]->len)]() mutable {
                          if (!self->closing && self->on_message)
                              self->on_message(std::move(channel), std::move(payload));
                      });
        }
    }

    /** Takes a fresh context and hooks it to the event loop. False (and the context freed) on failure. */
    bool attach(redisAsyncContext* ac) {
        boost::system::error_code ec;
        socket.assign(ac->c.fd, ec);
        if (ec) {
            failure = "cannot watch the socket: " + ec.message();
            redisAsyncFree(ac);
            return false;
        }
        context = ac;
        ac->data = this;
        ac->ev.data = this;
        ac->ev.addRead = &impl::add_read;
        ac->ev.delRead = &impl::del_read;
        ac->ev.addWrite = &impl::add_write;
        ac->ev.delWrite = &impl::del_write;
        ac->ev.cleanup = &impl::cleanup;
        redisAsyncSetConnectCallback(ac, &impl::on_connect); // asks for a write event: connect(2) finished
        return true;
    }

    /** Completes when hiredis reports connect(2) done, or with why the context went away first. */
    net::awaitable<std::string> wait_connected() {
        return net::async_initiate<decltype(net::use_awaitable), void(std::string)>(
            [self = shared_from_this()](text_handler handler) {
                if (self->context)
                    self->connect_waiter.emplace(std::move(handler));
                else
                    self->complete(std::move(handler), self->failure);
            },
            net::use_awaitable);
    }

    void start_subscribe(std::string const& channel, text_handler handler) {
        if (!context) {
            complete(std::move(handler), why(nullptr));
            return;
        }
        char const* argv[] = {"SUBSCRIBE", channel.c_str()};
        std::size_t const lengths[] = {9, channel.size()};
        subscribe_deadline_id = add_deadline("SUBSCRIBE");
        if (redisAsyncCommandArgv(context, &impl::on_subscription, this, 2, argv, lengths) != REDIS_OK) {
            deadlines.erase(subscribe_deadline_id);
            complete(std::move(handler), std::string("cannot send SUBSCRIBE"));
            return;
        }
        subscribe_waiter.emplace(std::move(handler));
    }

    void start_command(std::vector<std::string> const& args, result_handler handler) {
        if (!context || args.empty()) {
            complete(std::move(handler), redis_result{context           ? "empty command"
                                                      : failure.empty() ? "not connected"
                                                                        : failure,
                                                      {}});
            return;
        }
        std::vector<char const*> argv;
        std::vector<std::size_t> lengths;
        for (auto const& arg : args) {
            argv.push_back(arg.data());
            lengths.push_back(arg.size());
        }
        // Constructed with the handler: Boost 1.81's any_completion_handler recurses forever on move
        // assignment.
        std::unique_ptr<pending_command> pending(
            new pending_command{add_deadline(args.front()), std::move(handler)});
        if (redisAsyncCommandArgv(context, &impl::on_reply, pending.get(), static_cast<int>(argv.size()),
                                  argv.data(), lengths.data()) != REDIS_OK) {
            deadlines.erase(pending->deadline_id);
            complete(std::move(pending->handler), redis_result{"cannot send " + args.front(), {}});
            return;
        }
        pending.release(); // hiredis owns it until on_reply, which runs exactly once
    }
};

redis_client::redis_client(net::any_io_executor executor, duration timeout)
    : impl_(std::make_shared<impl>(std::move(executor), timeout)) {
    // hiredis writes with write(2), which raises SIGPIPE on a socket Redis has closed; the server's own
    // sockets send with MSG_NOSIGNAL, so nothing in the process wants the signal.
    static std::once_flag ignore_sigpipe;
    std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
}

redis_client::~redis_client() {
    close();
}

net::awaitable<std::string> redis_client::connect(redis_endpoint const& to) {
    auto const self = impl_;
    if (self->context || self->closing || !self->failure.empty()) co_return "already used";

    // hiredis would resolve a name with a blocking getaddrinfo: resolve it here, bounded, and hand over
    // the address.
    boost::system::error_code ec;
    auto address = net::ip::make_address(to.host, ec);
    if (ec) {
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

    auto* const ac = redisAsyncConnect(address.to_string().c_str(), to.port);
    if (!ac) co_return "out of memory";
    if (ac->err) {
        std::string const why = ac->errstr;
        redisAsyncFree(ac);
        co_return why;
    }
    if (!self->attach(ac)) co_return self->failure;
    self->connect_deadline_id = self->add_deadline("connect");
    auto const connected = co_await self->wait_connected();
    if (!connected.empty()) co_return connected;

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
        auto const result = co_await command(std::move(args));
        if (!result.ok()) co_return result.failure;
        if (result.reply.type == redis_reply::kind::error) {
            auto why = name + ": " + result.reply.text;
            self->fail(why);
            co_return why;
        }
    }
    if (!self->context) co_return self->why(nullptr);
    self->up = true;
    co_return std::string();
}

// Not coroutines: async_initiate's lambda would be a temporary inside co_await, which GCC 12 destroys twice
// (PR 99576).

net::awaitable<redis_result> redis_client::command(std::vector<std::string> args) {
    return net::async_initiate<decltype(net::use_awaitable), void(redis_result)>(
        [self = impl_, args = std::move(args)](result_handler handler) {
            self->start_command(args, std::move(handler));
        },
        net::use_awaitable);
}

net::awaitable<std::string> redis_client::subscribe(std::string channel, message_handler on_message) {
    impl_->on_message = std::move(on_message);
    return net::async_initiate<decltype(net::use_awaitable), void(std::string)>(
        [self = impl_, channel = std::move(channel)](text_handler handler) {
            self->start_subscribe(channel, std::move(handler));
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
