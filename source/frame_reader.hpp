#pragma once

// The read side of a connection's frame_stream: what the WebSocket layer reads passes through here, so the
// server can tell where client messages end in the byte stream, and between messages a quiet reader's small
// read-ahead replaces a parked WebSocket read.

#include "support/async.hpp" // sized_allocator
#include "support/loop.hpp"
#include "support/net.hpp"
#include "tls_socket.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_prefix.hpp>
#include <boost/beast/core/error.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <utility>

namespace wolf {

/**
 * Follows the frame headers in the bytes read from a client, without interpreting the frames (the WebSocket
 * layer does that), to tell where messages end in the byte stream. When the reader has taken a whole
 * message, it says whether anything read from the socket is still unread: if not, the WebSocket layer's
 * buffer is empty and the reader may wait for the socket itself instead of parking a read in that layer.
 */
class frame_boundaries {
public:
    /** Follows `bytes`, the next ones read from the connection. */
    void observe(std::span<unsigned char const> bytes) noexcept {
        while (!bytes.empty()) {
            if (in_payload_) {
                auto const take =
                    static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), frame_end_ - seen_));
                seen_ += take;
                bytes = bytes.subspan(take);
                in_payload_ = seen_ < frame_end_;
                continue;
            }
            header_[header_size_++] = bytes.front();
            bytes = bytes.subspan(1);
            ++seen_;
            if (header_size_ < 2 || header_size_ < header_length()) continue;
            auto const payload = payload_length();
            frame_end_ = payload > max_offset - seen_ ? max_offset : seen_ + payload;
            bool const fin = (header_[0] & 0x80) != 0;
            bool const data = (header_[0] & 0x0F) < 0x08; // continuation, text or binary: not a control frame
            if (fin && data) {
                ++messages_seen_;
                last_message_end_ = frame_end_;
            }
            header_size_ = 0;
            in_payload_ = frame_end_ > seen_;
        }
    }

    /** The reader took one whole message. True if no byte read after that message is still unread. */
    bool message_taken() noexcept {
        ++messages_taken_;
        // Only the latest message seen can be followed by nothing; messages arrive in order.
        return messages_taken_ == messages_seen_ && last_message_end_ == seen_;
    }

private:
    static constexpr std::uint64_t max_offset = std::numeric_limits<std::uint64_t>::max();

    std::size_t header_length() const noexcept {
        auto const length_code = header_[1] & 0x7F;
        std::size_t const extended = length_code == 126 ? 2 : length_code == 127 ? 8 : 0;
        std::size_t const mask = (header_[1] & 0x80) != 0 ? 4 : 0;
        return 2 + extended + mask;
    }
    std::uint64_t payload_length() const noexcept {
        auto const length_code = header_[1] & 0x7F;
        if (length_code < 126) return length_code;
        std::uint64_t length = 0;
        for (std::size_t i = 0; i < (length_code == 126 ? 2u : 8u); ++i)
            length = length << 8 | header_[2 + i];
        return length;
    }

    std::uint64_t seen_ = 0;             // bytes observed
    std::uint64_t frame_end_ = 0;        // offset where the current frame's payload ends
    std::uint64_t last_message_end_ = 0; // offset where the latest whole message seen ends
    std::uint64_t messages_seen_ = 0;    // final frames of messages seen
    std::uint64_t messages_taken_ = 0;
    std::array<unsigned char, 14> header_{}; // the current frame's header while it is incomplete
    std::uint8_t header_size_ = 0;
    bool in_payload_ = false;
};

namespace detail {

/** A read handler that shows the bytes read to a frame_boundaries before passing the result on. It keeps the
 * wrapped handler's executor, allocator and cancellation slot (the associator at the end of this file). */
template <class Handler, class Buffers>
struct observing_handler {
    Handler handler_;
    Buffers buffers_;
    frame_boundaries* boundaries_;

    void operator()(beast::error_code ec, std::size_t bytes) {
        auto const taken = beast::buffers_prefix(bytes, buffers_);
        for (auto it = net::buffer_sequence_begin(taken); it != net::buffer_sequence_end(taken); ++it) {
            net::const_buffer const buffer(*it);
            boundaries_->observe({static_cast<unsigned char const*>(buffer.data()), buffer.size()});
        }
        std::move(handler_)(ec, bytes);
    }
};

} // namespace detail

/**
 * The wait both readers' read-ahead makes: one read of what the client sends next into a small buffer,
 * allocated to its own size (it stays parked for as long as the client is quiet), and cancellable. A read
 * rather than a wait for readability: after a read that emptied the socket it is queued without a system
 * call, where a wait would re-arm the descriptor each time.
 */
class read_ahead {
public:
    /** Reads into `into`, then calls `handler(ec, size)`. */
    template <class Handler>
    void start(tcp_socket& socket, net::mutable_buffer into, Handler handler) {
        pending_ = true;
        auto done = [this, handler = std::move(handler)](beast::error_code ec, std::size_t size) mutable {
            pending_ = false;
            std::move(handler)(ec, size);
        };
        socket.async_read_some(
            into, net::bind_cancellation_slot(cancel_.slot(),
                                              net::bind_allocator(sized_allocator<void>(), std::move(done))));
    }

    /** Ends a pending read (its handler sees operation_aborted); nothing if none is pending. */
    void cancel() {
        if (pending_) cancel_.emit(net::cancellation_type::terminal);
    }

private:
    bool pending_ = false;
    net::cancellation_signal cancel_;
};

/** The read side of a frame_stream over `NextLayer`: a plain TCP socket or a tls_socket. */
template <class NextLayer>
class frame_reader;

/**
 * The read side over a plain TCP socket: it follows the frame boundaries of every byte read, and between
 * messages, with nothing unread, a 96-byte read-ahead waits for the client instead of a reader. What the
 * read-ahead took, the WebSocket layer's next read gets first, without a system call.
 */
template <>
class frame_reader<tcp_socket> {
public:
    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(tcp_socket& next, MutableBufferSequence const& buffers, ReadToken&& token) {
        return net::async_initiate<ReadToken, void(beast::error_code, std::size_t)>(
            [this, &next](auto handler, MutableBufferSequence const& into) {
                if (ahead_size_ > 0) {
                    auto const taken = net::buffer_copy(into, net::buffer(ahead_bytes_.data(), ahead_size_));
                    std::memmove(ahead_bytes_.data(), ahead_bytes_.data() + taken, ahead_size_ - taken);
                    ahead_size_ = static_cast<std::uint8_t>(ahead_size_ - taken);
                    auto executor = net::get_associated_executor(handler, next.get_executor());
                    net::post(executor,
                              beast::bind_front_handler(std::move(handler), beast::error_code{}, taken));
                    return;
                }
                using observing = detail::observing_handler<decltype(handler), MutableBufferSequence>;
                next.async_read_some(into, observing{std::move(handler), into, &boundaries_});
            },
            token, buffers);
    }

    /** The reader took a whole message; true if the WebSocket layer holds no unread byte after it. */
    bool message_taken() noexcept { return boundaries_.message_taken(); }

    /**
     * A quiet reader's wait: reads what the client sends next into a small buffer of this reader, which the
     * WebSocket layer's next read takes first. It costs a fraction of a parked WebSocket read. Calls
     * `handler(ec)`; cancel_read_ahead() ends it with operation_aborted. Only while the WebSocket layer
     * holds no unread byte and reads nothing itself.
     */
    template <class Handler>
    void async_read_ahead(tcp_socket& next, Handler handler) {
        ahead_.start(
            next, net::buffer(ahead_bytes_),
            [this, handler = std::move(handler)](beast::error_code ec, std::size_t size) mutable {
                if (!ec) {
                    boundaries_.observe({reinterpret_cast<unsigned char const*>(ahead_bytes_.data()), size});
                    ahead_size_ = static_cast<std::uint8_t>(size);
                }
                std::move(handler)(ec);
            });
    }

    /** Ends a pending read-ahead (its handler sees operation_aborted); nothing if none is pending. */
    void cancel_read_ahead() { ahead_.cancel(); }

private:
    frame_boundaries boundaries_;
    // The read-ahead: room for a typical client event, so a quiet client's next message costs one recv.
    std::array<char, 96> ahead_bytes_;
    std::uint8_t ahead_size_ = 0;
    read_ahead ahead_;
};

/**
 * The read side over TLS: the same boundaries, followed in the decrypted bytes, and the same quiet reader,
 * whose read-ahead waits in the tls_socket's own 96 bytes (OpenSSL reads them first). It starts only when
 * OpenSSL holds nothing unread either: a record may carry more than the message just taken.
 */
template <>
class frame_reader<tls_socket> {
public:
    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(tls_socket& next, MutableBufferSequence const& buffers, ReadToken&& token) {
        return net::async_initiate<ReadToken, void(beast::error_code, std::size_t)>(
            [this, &next](auto handler, MutableBufferSequence const& into) {
                using observing = detail::observing_handler<decltype(handler), MutableBufferSequence>;
                next.async_read_some(into, observing{std::move(handler), into, &boundaries_});
            },
            token, buffers);
    }

    bool message_taken() noexcept { return boundaries_.message_taken(); }

    /** As the plain reader's; with bytes already buffered under TLS it completes at once (posted). */
    template <class Handler>
    void async_read_ahead(tls_socket& next, Handler handler) {
        if (next.has_buffered()) {
            auto executor = next.get_executor();
            net::post(executor, beast::bind_front_handler(std::move(handler), beast::error_code{}));
            return;
        }
        ahead_.start(next.next_layer(), next.read_ahead_space(),
                     [&next, handler = std::move(handler)](beast::error_code ec, std::size_t size) mutable {
                         if (!ec) next.read_ahead_filled(size);
                         std::move(handler)(ec);
                     });
    }

    void cancel_read_ahead() { ahead_.cancel(); }

private:
    frame_boundaries boundaries_;
    read_ahead ahead_;
};

} // namespace wolf

template <template <class, class> class Associator, class Handler, class Buffers, class DefaultCandidate>
struct boost::asio::associator<Associator, wolf::detail::observing_handler<Handler, Buffers>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type
    get(wolf::detail::observing_handler<Handler, Buffers> const& h) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler_);
    }
    static auto get(wolf::detail::observing_handler<Handler, Buffers> const& h,
                    DefaultCandidate const& candidate) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler_, candidate);
    }
};
