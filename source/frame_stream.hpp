#pragma once

#include "frame.hpp"
#include "frame_reader.hpp"
#include "frame_writer.hpp"
#include "support/net.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace wolf {

/**
 * The layer under a server's websocket::stream: the AsyncStream the WebSocket layer reads and writes, made
 * of a frame_writer, which owns every byte written to the connection, and a frame_reader, which sees every
 * byte read. Prebuilt frames (a broadcast's shared wire_frame, the session's replies) go straight to the
 * writer; the WebSocket layer's own writes (the 101 response, pongs, close frames) are copied into the same
 * queue, so frames never interleave, whoever wrote them. Each side has its way for the stream under it, a
 * plain TCP socket or a tls_socket; both send in place and read quietly.
 *
 * Single-threaded: every call comes from the connection's executor.
 */
template <class NextLayer>
class frame_stream {
public:
    using executor_type = typename NextLayer::executor_type;
    using next_layer_type = NextLayer;

    template <class... Args>
    explicit frame_stream(Args&&... args)
        : next_(std::forward<Args>(args)...) {}

    executor_type get_executor() noexcept { return next_.get_executor(); }
    next_layer_type& next_layer() noexcept { return next_; }
    next_layer_type const& next_layer() const noexcept { return next_; }

    // The write side.

    /** The object that owns this stream; a pending wait holds it so the stream outlives the wait. */
    void keep_alive_with(std::weak_ptr<void> owner) { writer_.keep_alive_with(std::move(owner)); }
    /** True once the WebSocket layer has written a close frame through this stream. */
    bool close_written() const noexcept { return writer_.close_written(); }
    /** Frames queued and not fully written (the one being written included). */
    std::size_t queued() const noexcept { return writer_.queued(); }
    /** Frames queued by resend() and not fully written. */
    std::size_t resent_queued() const noexcept { return writer_.resent_queued(); }
    /** Since when a queued frame has waited on the socket; nullopt when nothing waits. */
    std::optional<steady_clock::time_point> blocked_since() const noexcept { return writer_.blocked_since(); }
    /** Writes `frame` after everything queued before it. */
    void send(shared_frame const& frame) { writer_.send(next_, frame); }
    /** A broadcast sent again to a recovering subscriber: like send(), but not counted by queued(). */
    void resend(shared_frame const& frame) { writer_.resend(next_, frame); }
    /** Holds writes back until uncork(), which sends everything held at once. */
    void cork() { writer_.cork(); }
    void uncork() { writer_.uncork(next_); }
    /** Drops queued frames of send() that have not begun to go out; the transport's own frames stay. */
    void drop_unsent() { writer_.drop_unsent(); }
    /** Calls `action` once everything queued is written (or the stream failed); at once if nothing is. */
    template <class Action>
    void after_drain(Action&& action) {
        writer_.after_drain(std::forward<Action>(action));
    }

    // The read side.

    /** The reader took a whole message; true if the WebSocket layer holds no unread byte after it. */
    bool message_taken() noexcept { return reader_.message_taken(); }
    /** A quiet reader's wait for the client's next bytes (frame_reader has the details). */
    template <class Handler>
    void async_read_ahead(Handler handler) {
        reader_.async_read_ahead(next_, std::move(handler));
    }
    /** Ends a pending read-ahead (its handler sees operation_aborted); nothing if none is pending. */
    void cancel_read_ahead() { reader_.cancel_read_ahead(); }

    // AsyncReadStream: through the reader.
    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(MutableBufferSequence const& buffers, ReadToken&& token) {
        return reader_.async_read_some(next_, buffers, std::forward<ReadToken>(token));
    }

    // AsyncWriteStream, for the WebSocket layer's own writes: the bytes are copied into the writer's queue,
    // behind any frame already there, and the write completes at once with all of them taken. A failure
    // shows on the next write and, as the socket is closed, on the reader.
    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(ConstBufferSequence const& buffers, WriteToken&& token) {
        return net::async_initiate<WriteToken, void(beast::error_code, std::size_t)>(
            [this](auto handler, ConstBufferSequence const& data) {
                // One pass over the buffers (Beast's are deep views, slow to walk): room for a 101 response
                // or a close frame at once, then each piece appended.
                std::string bytes;
                bytes.reserve(256);
                for (auto const piece : beast::buffers_range_ref(data))
                    bytes.append(static_cast<char const*>(piece.data()), piece.size());
                auto const size = bytes.size();
                auto const ec = writer_.error();
                if (!ec && size > 0) // an empty write has nothing to queue
                    writer_.send_transport(
                        next_, std::make_shared<wire_frame const>(wire_frame::prebuilt, std::move(bytes)));
                auto executor = net::get_associated_executor(handler, get_executor());
                net::post(executor, beast::bind_front_handler(std::move(handler), ec, ec ? 0 : size));
            },
            token, buffers);
    }

private:
    frame_writer<NextLayer> writer_; // leads: a delivery reads the queue pointer, the error and the socket
    NextLayer next_;
    frame_reader<NextLayer> reader_;
};

/**
 * Beast's closing handshake ends by tearing the transport down, once the queued frames (the close frame
 * among them) are written. Beast calls this only after both close frames have crossed, so the server closes
 * the connection at once (RFC 6455 section 7.1.1: the server closes the TCP connection first); there is
 * nothing left to read, and no shutdown-and-drain round is needed. Under TLS the client may still send its
 * close_notify, which must be read before the close (unread, it would turn the close into a reset): the
 * server sends its own and the FIN, and closes once the client has closed (tls_socket's graceful close,
 * bounded by the session's close deadline).
 */
template <class NextLayer, class TeardownHandler>
void async_teardown(beast::role_type role, frame_stream<NextLayer>& stream, TeardownHandler&& handler) {
    stream.after_drain([role, &stream, handler = std::forward<TeardownHandler>(handler)]() mutable {
        if constexpr (std::is_same_v<NextLayer, tcp_socket>) {
            if (role == beast::role_type::client) { // the tests' clients only
                using beast::websocket::async_teardown;
                return async_teardown(role, stream.next_layer(), std::move(handler));
            }
        } else {
            return stream.next_layer().async_close_gracefully(std::move(handler));
        }
        beast::error_code ec;
        beast::get_lowest_layer(stream).close(ec);
        auto executor = net::get_associated_executor(handler, stream.get_executor());
        net::post(executor, beast::bind_front_handler(std::move(handler), ec));
    });
}

/** The synchronous form Beast names; the server only ever closes asynchronously. */
template <class NextLayer>
void teardown(beast::role_type role, frame_stream<NextLayer>& stream, beast::error_code& ec) {
    if constexpr (std::is_same_v<NextLayer, tcp_socket>) {
        using beast::websocket::teardown;
        teardown(role, stream.next_layer(), ec);
    } else {
        stream.next_layer().notify_close();
        beast::get_lowest_layer(stream).close(ec);
    }
}

} // namespace wolf
