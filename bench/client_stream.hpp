#pragma once

// The stream under a benchmark client's websocket::stream: a timestamp_socket, with TLS over it once
// start_tls() has run (wss://). One type for both, so a client_session is the same code either way and the
// kernel's receive times are read from the same socket under TLS as without it.

#include "timestamp_socket.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace wolf::bench {

/**
 * What a client needs for wss://: the context (the CA to trust) and, for resumption, the latest session a
 * server gave this client's sessions. Shared by every session of a run, across threads.
 */
class tls_client {
public:
    tls_client(std::shared_ptr<net::ssl::context> context, bool resume);
    ~tls_client();
    tls_client(tls_client const&) = delete;
    tls_client& operator=(tls_client const&) = delete;

    net::ssl::context& context() noexcept { return *context_; }
    bool resume() const noexcept { return resume_; }

    /** Offers the latest session kept to `ssl` (SSL_set_session); nothing without one, or with resume off. */
    void offer(SSL* ssl);
    /** Keeps the session `ssl` holds, if the server made it resumable. */
    void keep(SSL* ssl);

    /** A context that trusts `ca_file` (PEM) and checks the server's certificate against it; the error in
     * words if the file cannot be loaded. */
    static std::shared_ptr<net::ssl::context> make_context(std::string const& ca_file, std::string& error);

private:
    std::shared_ptr<net::ssl::context> context_;
    bool resume_;
    std::mutex mutex_;
    SSL_SESSION* latest_ = nullptr; // owned: one reference
};

/** A timestamp_socket, plain or under TLS: AsyncStream for websocket::stream. */
class client_stream {
public:
    using executor_type = timestamp_socket::executor_type;
    using next_layer_type = timestamp_socket;
    using tls_type = net::ssl::stream<timestamp_socket&>;

    explicit client_stream(executor_type executor)
        : socket_(std::move(executor)) {}

    executor_type get_executor() noexcept { return socket_.get_executor(); }
    timestamp_socket& next_layer() noexcept { return socket_; }
    timestamp_socket const& next_layer() const noexcept { return socket_; }

    /** From now on everything goes through TLS; the handshake is the caller's (tls()->async_handshake). */
    tls_type& start_tls(net::ssl::context& context) { return tls_.emplace(socket_, context); }
    /** The TLS layer, once started; nullptr on a plain connection. */
    tls_type* tls() noexcept { return tls_ ? &*tls_ : nullptr; }

    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(MutableBufferSequence const& buffers, ReadToken&& token) {
        return net::async_initiate<ReadToken, void(beast::error_code, std::size_t)>(
            [this](auto handler, MutableBufferSequence const& into) {
                if (tls_)
                    tls_->async_read_some(into, std::move(handler));
                else
                    socket_.async_read_some(into, std::move(handler));
            },
            token, buffers);
    }

    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(ConstBufferSequence const& buffers, WriteToken&& token) {
        return net::async_initiate<WriteToken, void(beast::error_code, std::size_t)>(
            [this](auto handler, ConstBufferSequence const& data) {
                if (tls_)
                    tls_->async_write_some(data, std::move(handler));
                else
                    socket_.async_write_some(data, std::move(handler));
            },
            token, buffers);
    }

private:
    timestamp_socket socket_;
    std::optional<tls_type> tls_;
};

/** Beast's teardown: TLS's close_notify first when under TLS (Beast's own for ssl::stream), then the
 * socket's. The synchronous form is never used by the benchmarks, which only close asynchronously: it closes
 * the socket. */
inline void teardown(beast::role_type role, client_stream& stream, beast::error_code& ec) {
    teardown(role, stream.next_layer(), ec);
}

template <class TeardownHandler>
void async_teardown(beast::role_type role, client_stream& stream, TeardownHandler&& handler) {
    if (auto* tls = stream.tls())
        beast::async_teardown(role, *tls, std::forward<TeardownHandler>(handler));
    else
        async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}

} // namespace wolf::bench
