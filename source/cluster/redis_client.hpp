#pragma once

#include "cluster/redis_url.hpp"
#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace wolf {

/** One Redis (RESP2) reply, copied out of hiredis's. A Redis error (`-ERR ...`) is a reply of kind error. */
struct redis_reply {
    enum class kind { nil, status, error, integer, string, array };
    kind type = kind::nil;
    std::string text; // status, error and string
    long long integer = 0;
    std::vector<redis_reply> elements;
};

/** A command's outcome: the reply, or why there is none (timed out, connection lost, not connected). */
struct redis_result {
    std::string failure; // empty: `reply` holds the answer
    redis_reply reply;
    bool ok() const noexcept { return failure.empty(); }
};

/**
 * One connection to Redis, plain TCP or TLS (`rediss://`), on Asio: the socket and any TLS layer are Asio's
 * (`ssl::stream`, as for the server's own `wss://`), and hiredis is only the RESP writer and reader
 * (redisFormatCommandArgv, redisReader), so there is no thread of its own, no blocking call and no I/O in
 * hiredis. A host name is resolved with Asio's resolver; an address is used as it is. Over TLS the server's
 * certificate is verified against the context's trust store and the host name (SNI is sent for a name).
 *
 * Nothing waits on Redis unboundedly: resolving, connecting, the TLS handshake, every command and a
 * subscription's confirmation must be done within `timeout`, or the connection is dropped and everything
 * pending fails. Commands are pipelined and answered in order. Completions, messages and the loss are
 * posted. One-shot: once lost or closed it stays so, and a new client reconnects. Single-threaded: use it
 * from its executor only (a strand if the io_context runs on several threads).
 */
class redis_client {
public:
    /** A message on a subscribed channel: the channel and the payload. */
    using message_handler = std::function<void(std::string channel, std::string payload)>;
    /** Why a connected client ended: Redis closed it, an I/O error, a timeout. */
    using lost_handler = std::function<void(std::string why)>;

    /** `tls`: the context for a `rediss://` endpoint (it must outlive the client); null: plain TCP only. */
    redis_client(net::any_io_executor executor, duration timeout, net::ssl::context* tls = nullptr);
    /** Closes the connection; pending commands fail with "closed". */
    ~redis_client();
    redis_client(redis_client const&) = delete;
    redis_client& operator=(redis_client const&) = delete;

    /** Connects (and completes the TLS handshake for `rediss://`), then AUTH and SELECT as `to` asks, then
     * PING: returns once Redis has answered, with an empty string, or why it could not. */
    net::awaitable<std::string> connect(redis_endpoint const& to);

    /** One command, its arguments sent binary-safe. */
    net::awaitable<redis_result> command(std::vector<std::string> args);

    /** SUBSCRIBE: once Redis confirms (empty string returned), `on_message` gets every message on
     * `channel` until the connection ends; no other command may follow on this client. */
    net::awaitable<std::string> subscribe(std::string channel, message_handler on_message);

    /** Called (posted) once if the connection ends after connect() succeeded, unless by close(). */
    void on_lost(lost_handler handler);

    /** connect() succeeded and the connection has not ended since. */
    bool connected() const noexcept;

    /** Drops the connection at once: pending commands fail, no message or loss is reported after it. */
    void close();

private:
    struct impl;
    /** connect() but for the one-shot rule: every step to a usable connection, or why it failed. */
    static net::awaitable<std::string> open(std::shared_ptr<impl> self, redis_endpoint const& to);
    static net::awaitable<redis_result> send_command(std::shared_ptr<impl> self,
                                                     std::vector<std::string> args);

    std::shared_ptr<impl> impl_; // shared with the reads, writes and timers still queued after a close
};

} // namespace wolf
