#pragma once

#include "support/loop.hpp"
#include "support/net.hpp"

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <openssl/ssl.h>
#include <span>
#include <string>
#include <utility>

namespace wolf {

/**
 * A server's TLS connection over a TCP socket, in which OpenSSL reads and writes the socket itself: its BIO
 * (tls_socket.cpp) makes non-blocking system calls, and when OpenSSL would block, the operation waits for
 * the socket and calls OpenSSL again. So a connection holds OpenSSL's own state and little else: OpenSSL's
 * record buffers exist only while a record is in flight (SSL_MODE_RELEASE_BUFFERS, set on the context by
 * load_tls_context), and a quiet connection waits with a 96-byte read-ahead, as a plain one does. Asio's
 * ssl::stream keeps two 17 KiB buffers of its own and a BIO pair's two more on every connection, 68 KiB in
 * all, whatever its traffic (docs/architecture.md).
 *
 * An AsyncStream for Beast's HTTP and WebSocket layers (async_read_some, async_write_some), with the server
 * side's handshake and graceful close, a deadline like beast::tcp_stream's, and the non-blocking steps the
 * frame stream takes itself: write() for one whole frame, and the read-ahead. Movable while nothing is
 * pending; single-threaded, on the socket's executor.
 */
class tls_socket {
public:
    using next_layer_type = tcp_socket;
    using executor_type = next_layer_type::executor_type;

    /** What a non-blocking call of OpenSSL came to: done, or to be made again (with the same arguments)
     * once the socket is readable or writable, or failed. */
    enum class step { done, want_read, want_write, failed };

    tls_socket(next_layer_type socket, net::ssl::context& context);

    executor_type get_executor() noexcept { return core_->socket.get_executor(); }
    next_layer_type& next_layer() noexcept { return core_->socket; }
    next_layer_type const& next_layer() const noexcept { return core_->socket; }

    /** Closes the socket when `timeout` has passed: a pending operation then ends with beast::error::timeout,
     * as on a beast::tcp_stream. A new deadline replaces the last one. */
    void expires_after(duration timeout);
    /** True once a deadline has passed (and closed the socket). */
    bool expired() const noexcept { return core_->expired; }
    /** No deadline (and no timer held for one). */
    void expires_never() noexcept;
    /** Closes the socket; pending operations end with operation_aborted. No close_notify. */
    void close() noexcept;

    /** The server's handshake; `received` are bytes read from the socket before it (the ClientHello, read
     * to tell TLS from plain HTTP), which OpenSSL reads first. Completes with (ec, bytes of `received` used:
     * all of them). */
    template <class ConstBufferSequence, class Token>
    auto async_handshake(ConstBufferSequence const& received, Token&& token) {
        core_->received.resize(net::buffer_size(received));
        net::buffer_copy(net::buffer(core_->received), received);
        core_->received_taken = 0;
        return async_run(
            [size = core_->received.size()](core& c, beast::error_code& ec) {
                auto const result = c.finish(SSL_do_handshake(c.ssl.get()), ec);
                if (result == step::done) std::string().swap(c.received); // OpenSSL has read it all by now
                return std::pair{result, result == step::done ? size : 0};
            },
            std::forward<Token>(token));
    }

    /**
     * The server's end of the connection: close_notify (if the socket takes it) and the TCP FIN, then what
     * the peer still sends (its own close_notify, say) is read and dropped until it closes its side too,
     * and the socket is closed. Closing with unread bytes would reset the connection, and the peer could
     * lose what it had not yet read. Bound it with a deadline or close(). Completes with (ec): none once
     * the peer has closed.
     */
    template <class Token>
    auto async_close_gracefully(Token&& token) {
        notify_close();
        beast::error_code ignored;
        core_->socket.shutdown(next_layer_type::shutdown_send, ignored);
        return net::async_compose<Token, void(beast::error_code)>(
            [c = core_](auto& self, beast::error_code ec = {}, std::size_t = 0) mutable {
                if (!ec) return c->socket.async_read_some(net::buffer(c->inbox), std::move(self));
                beast::error_code closed;
                c->socket.close(closed);
                if (c->expired) ec = beast::error::timeout;
                self.complete(ec == net::error::eof ? beast::error_code{} : ec);
            },
            token, core_->socket);
    }

    /** AsyncReadStream: reads into the first non-empty buffer of `buffers`, as Asio's ssl::stream does. */
    template <class MutableBufferSequence, class Token>
    auto async_read_some(MutableBufferSequence const& buffers, Token&& token) {
        auto const into = first_buffer<net::mutable_buffer>(buffers);
        return async_run(
            [into](core& c, beast::error_code& ec) {
                if (into.size() == 0) return std::pair{step::done, std::size_t{0}};
                std::size_t read = 0;
                auto const result = c.finish(SSL_read_ex(c.ssl.get(), into.data(), into.size(), &read), ec);
                return std::pair{result, read};
            },
            std::forward<Token>(token));
    }

    /** AsyncWriteStream: writes the first non-empty buffer of `buffers`, as Asio's ssl::stream does. */
    template <class ConstBufferSequence, class Token>
    auto async_write_some(ConstBufferSequence const& buffers, Token&& token) {
        auto const from = first_buffer<net::const_buffer>(buffers);
        return async_run(
            [from](core& c, beast::error_code& ec) {
                if (from.size() == 0) return std::pair{step::done, std::size_t{0}};
                std::size_t written = 0;
                auto const result =
                    c.finish(SSL_write_ex(c.ssl.get(), from.data(), from.size(), &written), ec);
                return std::pair{result, written};
            },
            std::forward<Token>(token));
    }

    /**
     * One SSL_write of all of `bytes`: OpenSSL encrypts them into its record buffer and sends the records
     * with non-blocking sends. On want_read or want_write, OpenSSL holds the rest, and this must be called
     * again with the same bytes once the socket is ready.
     */
    step write(std::span<char const> bytes, beast::error_code& ec);
    /** Sends close_notify if the socket takes it now; never waits. */
    void notify_close() noexcept;

    /** True if OpenSSL or the read-ahead holds bytes read from the socket and not yet read through this. */
    bool has_buffered() const noexcept;
    /** Where the read-ahead reads: the whole buffer, which must be empty (has_buffered() false). */
    net::mutable_buffer read_ahead_space() noexcept { return net::buffer(core_->inbox); }
    /** The read-ahead took `size` bytes, which OpenSSL reads next. */
    void read_ahead_filled(std::size_t size) noexcept {
        core_->inbox_begin = 0;
        core_->inbox_end = static_cast<std::uint8_t>(size);
    }

private:
    struct ssl_free {
        void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
    };

    /** The state the BIO, the deadline and pending operations refer to: it stays put when the socket moves.
     */
    struct core {
        explicit core(next_layer_type s)
            : socket(std::move(s)) {}

        /** Before each call of OpenSSL: no error left from an earlier one. */
        void prepare_call() noexcept;
        /** What OpenSSL's `result` of a call means, from SSL_get_error; sets `ec` on failure. */
        step finish(int result, beast::error_code& ec);

        next_layer_type socket;
        std::unique_ptr<SSL, ssl_free> ssl;
        std::string received; // read before the handshake; OpenSSL reads it first
        std::size_t received_taken = 0;
        // The read-ahead: what a quiet connection's wait for the client took, and what a wait inside an
        // operation took; OpenSSL reads it before the socket.
        std::array<char, 96> inbox;
        std::uint8_t inbox_begin = 0;
        std::uint8_t inbox_end = 0;
        bool expired = false;           // the deadline passed and closed the socket
        std::uint32_t deadline_set = 0; // counts deadlines set and removed: a stale expiry does nothing
        beast::error_code bio_failure;  // the BIO's failed system call during the latest call of OpenSSL
        beast::error_code read_failure; // how a read-ahead ended (end of stream, reset): the BIO reports it
        std::unique_ptr<loop_timer> deadline;
    };

    friend struct tls_bio;

    template <class Buffer, class Sequence>
    static Buffer first_buffer(Sequence const& buffers) {
        for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it)
            if (Buffer const buffer(*it); buffer.size() > 0) return buffer;
        return Buffer();
    }

    /**
     * Calls `attempt(core, ec)` until it is done or fails, waiting between calls for what OpenSSL wants:
     * (each operation holds the core, which thus outlives it even if the tls_socket does not)
     * readability through the read-ahead (a speculative read, no system call to re-arm the socket),
     * writability through a wait. Completes with (ec, the size `attempt` returned); a deadline that passed
     * shows as beast::error::timeout.
     */
    template <class Attempt, class Token>
    auto async_run(Attempt attempt, Token&& token) {
        enum class state { start, reading, writing, completing };
        return net::async_compose<Token, void(beast::error_code, std::size_t)>(
            [c = core_, attempt, phase = state::start,
             result = std::pair{beast::error_code{}, std::size_t{0}}](auto& self, beast::error_code ec = {},
                                                                      std::size_t size = 0) mutable {
                if (phase == state::completing) return self.complete(result.first, result.second);
                if (phase == state::reading) {
                    if (!ec) {
                        c->inbox_begin = 0;
                        c->inbox_end = static_cast<std::uint8_t>(size);
                    } else if (ec != net::error::operation_aborted) {
                        c->read_failure = ec; // end of stream or reset: OpenSSL learns it from the BIO
                        ec = {};
                    }
                }
                if (!ec) {
                    c->prepare_call();
                    auto const [outcome, done_size] = attempt(*c, ec);
                    switch (outcome) {
                    case step::done:
                        result = {ec, done_size};
                        break;
                    case step::want_read:
                        phase = state::reading;
                        return c->socket.async_read_some(net::buffer(c->inbox), std::move(self));
                    case step::want_write:
                        phase = state::writing;
                        return c->socket.async_wait(next_layer_type::wait_write, std::move(self));
                    case step::failed: // a deadline that closed the socket between two waits shows so
                        result = {c->expired ? beast::error_code(beast::error::timeout) : ec, 0};
                        break;
                    }
                } else {
                    result = {c->expired ? beast::error_code(beast::error::timeout) : ec, 0};
                }
                if (phase != state::start) return self.complete(result.first, result.second);
                // Done without waiting: the completion is posted, never made inside the initiating call.
                phase = state::completing;
                net::post(c->socket.get_executor(), std::move(self));
            },
            token, core_->socket);
    }

    std::shared_ptr<core> core_;
};

} // namespace wolf
