#pragma once

#include "cluster/redis_url.hpp"
#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
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
 * One connection to Redis through hiredis's asynchronous API, driven by the caller's executor: the socket
 * hiredis owns is watched with a stream_descriptor (released, never closed), and hiredis reads and writes
 * only when Asio says it can, so there is no thread of its own and no blocking call. A host name is
 * resolved with Asio's resolver; an address is used as it is.
 *
 * Nothing waits on Redis unboundedly: the connect, every command and a subscription's confirmation must
 * be answered within `timeout`, or the connection is dropped and everything pending fails. Completions,
 * messages and the loss are posted, never run inside hiredis. One-shot: once lost or closed it stays so,
 * and a new client reconnects. Single-threaded: use it from its executor only (a strand if the
 * io_context runs on several threads).
 */
class redis_client {
public:
    /** A message on a subscribed channel: the channel and the payload. */
    using message_handler = std::function<void(std::string channel, std::string payload)>;
    /** Why a connected client ended: Redis closed it, an I/O error, a timeout. */
    using lost_handler = std::function<void(std::string why)>;

    redis_client(net::any_io_executor executor, duration timeout);
    /** Closes the connection; pending commands fail with "closed". */
    ~redis_client();
    redis_client(redis_client const&) = delete;
    redis_client& operator=(redis_client const&) = delete;

    /** Connects, then AUTH and SELECT as `to` asks, then PING: returns once Redis has answered, with an
     * empty string, or why it could not. */
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
    std::shared_ptr<impl> impl_; // shared with the socket waits and timers still queued after a close
};

} // namespace wolf
