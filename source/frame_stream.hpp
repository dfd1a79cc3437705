#pragma once

#include "frame.hpp"
#include "support/async.hpp" // sized_allocator
#include "support/net.hpp"

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
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/buffers_prefix.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sys/socket.h>
#include <sys/uio.h>
#include <type_traits>
#include <utility>
#include <vector>

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
        for (auto const& buffer : beast::buffers_prefix(bytes, buffers_))
            boundaries_->observe({static_cast<unsigned char const*>(buffer.data()), buffer.size()});
        std::move(handler_)(ec, bytes);
    }
};

} // namespace detail

/**
 * The layer under a server's websocket::stream that owns every byte written to the connection. Prebuilt
 * frames (a broadcast's shared wire_frame, the session's replies) go straight to the socket; the WebSocket
 * layer's own writes (the 101 response, pongs, close frames) are copied into the same queue. One queue
 * means one writer: frames never interleave, whoever wrote them.
 *
 * On a plain TCP socket a frame is written at once with a non-blocking send when nothing is queued ahead
 * of it, so a delivery that fits in the socket buffer costs one system call and no handler; what the
 * socket does not take waits for writability and then goes out in one gather write with everything queued
 * behind it. Under TLS each frame is written with async_write, one at a time. The queue and its state exist
 * only while something waits: an idle connection carries one pointer for them.
 *
 * Single-threaded: every call comes from the connection's executor. Pending waits hold the owner (the
 * session) alive through keep_alive_with().
 */
template <class NextLayer>
class frame_stream {
public:
    using executor_type = typename NextLayer::executor_type;
    using next_layer_type = NextLayer;

    /** True on a plain socket: frames are written in place, and the reader may end between messages while
     * a read-ahead waits for the client (message_taken, async_read_ahead). Under TLS the TLS layer owns
     * the bytes, so neither applies. */
    static constexpr bool plain_socket = std::is_same_v<NextLayer, net::ip::tcp::socket>;

    template <class... Args>
    explicit frame_stream(Args&&... args)
        : next_(std::forward<Args>(args)...) {}

    executor_type get_executor() noexcept { return next_.get_executor(); }
    next_layer_type& next_layer() noexcept { return next_; }
    next_layer_type const& next_layer() const noexcept { return next_; }

    /** The object that owns this stream; a pending wait holds it so the stream outlives the wait. */
    void keep_alive_with(std::weak_ptr<void> owner) { owner_ = std::move(owner); }

    /** True once the WebSocket layer has written a close frame through this stream. */
    bool close_written() const noexcept { return close_written_; }

    /** Frames queued and not fully written (the one being written included). */
    std::size_t queued() const noexcept { return backlog_ ? backlog_->size() : 0; }

    /** Since when a queued frame has waited on the socket; nullopt when nothing waits. */
    std::optional<std::chrono::steady_clock::time_point> blocked_since() const noexcept {
        if (!backlog_ || !backlog_->in_flight) return std::nullopt;
        return backlog_->blocked_since;
    }

    /** Writes `frame` after everything queued before it; what the socket does not take now is queued. */
    void send(shared_frame const& frame) { push(frame, true); }

    /** Holds writes back until uncork(), which sends everything held in one gather write: the 101 response
     * and `initial` leave in one segment. */
    void cork() {
        if (!backlog_) backlog_ = std::make_unique<backlog>();
        backlog_->corked = true;
    }
    void uncork() {
        if (!backlog_ || !backlog_->corked) return;
        backlog_->corked = false;
        if (error_ || backlog_->in_flight) return;
        if constexpr (plain_socket)
            flush();
        else if (backlog_->empty())
            drained();
        else
            write_next();
    }

    /** Drops queued frames of send() that have not begun to go out; the transport's own frames stay. */
    void drop_unsent() {
        if (!backlog_ || backlog_->corked) return;
        auto& items = backlog_->items;
        // Begun: some of it written, or (under TLS) its write in flight. On a plain socket a frame waiting
        // for writability with no byte written has not begun.
        bool const front_started = backlog_->offset > 0 || (!plain_socket && backlog_->in_flight);
        std::vector<entry> kept;
        for (auto i = backlog_->head; i < items.size(); ++i)
            if (!items[i].droppable || (i == backlog_->head && front_started))
                kept.push_back(std::move(items[i]));
        if (!front_started) backlog_->offset = 0;
        items = std::move(kept);
        backlog_->head = 0;
        if (items.empty() && !backlog_->in_flight) drained();
    }

    // AsyncReadStream: reads go to the next layer; on a plain socket the frame boundaries are followed, and
    // what a read-ahead took is handed over first, without a system call.
    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(MutableBufferSequence const& buffers, ReadToken&& token) {
        if constexpr (plain_socket) {
            return net::async_initiate<ReadToken, void(beast::error_code, std::size_t)>(
                [this](auto handler, MutableBufferSequence const& into) {
                    if (ahead_size_ > 0) {
                        auto const taken = net::buffer_copy(into, net::buffer(ahead_.data(), ahead_size_));
                        std::memmove(ahead_.data(), ahead_.data() + taken, ahead_size_ - taken);
                        ahead_size_ = static_cast<std::uint8_t>(ahead_size_ - taken);
                        auto executor = net::get_associated_executor(handler, get_executor());
                        net::post(executor,
                                  beast::bind_front_handler(std::move(handler), beast::error_code{}, taken));
                        return;
                    }
                    using observing = detail::observing_handler<decltype(handler), MutableBufferSequence>;
                    next_.async_read_some(into, observing{std::move(handler), into, &boundaries_});
                },
                token, buffers);
        } else {
            return next_.async_read_some(buffers, std::forward<ReadToken>(token));
        }
    }

    /** The reader took a whole message; true if the WebSocket layer holds no unread byte after it. */
    bool message_taken() noexcept {
        if constexpr (plain_socket) return boundaries_.message_taken();
        return false;
    }

    /**
     * A quiet reader's wait (plain socket): reads what the client sends next into a small buffer of this
     * stream, which the WebSocket layer's next read takes first. It costs a fraction of a parked WebSocket
     * read, and after a read that emptied the socket it is queued without a system call (a wait for
     * readability would re-arm the descriptor each time). Calls `handler(ec)`; cancel_read_ahead() ends it
     * with operation_aborted. Only while the WebSocket layer holds no unread byte and reads nothing itself.
     */
    template <class Handler>
    void async_read_ahead(Handler handler) {
        ahead_pending_ = true;
        next_.async_read_some(
            net::buffer(ahead_),
            net::bind_cancellation_slot(
                ahead_cancel_.slot(),
                net::bind_allocator(sized_allocator<void>(), [this, handler = std::move(handler)](
                                                                 beast::error_code ec,
                                                                 std::size_t size) mutable {
                    ahead_pending_ = false;
                    if (!ec) {
                        boundaries_.observe({reinterpret_cast<unsigned char const*>(ahead_.data()), size});
                        ahead_size_ = static_cast<std::uint8_t>(size);
                    }
                    std::move(handler)(ec);
                })));
    }

    /** Ends a pending read-ahead (its handler sees operation_aborted); nothing if none is pending. */
    void cancel_read_ahead() {
        if (ahead_pending_) ahead_cancel_.emit(net::cancellation_type::terminal);
    }

    // AsyncWriteStream, for the WebSocket layer's own writes: the bytes are copied into the queue, behind
    // any frame already there, and the write completes at once with all of them taken. A failure shows on
    // the next write and, as the socket is closed, on the reader.
    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(ConstBufferSequence const& buffers, WriteToken&& token) {
        return net::async_initiate<WriteToken, void(beast::error_code, std::size_t)>(
            [this](auto handler, ConstBufferSequence const& data) {
                auto const size = net::buffer_size(data);
                auto const ec = error_;
                if (!ec && size > 0) { // an empty write has nothing to queue
                    std::string bytes(size, '\0');
                    net::buffer_copy(net::buffer(bytes), data);
                    // A close frame (FIN and opcode 8) from the WebSocket layer: it is closing, perhaps on
                    // its own after a protocol violation. Its writes always begin at a frame's header.
                    if (!bytes.empty() && static_cast<unsigned char>(bytes.front()) == 0x88)
                        close_written_ = true;
                    push(std::make_shared<wire_frame const>(wire_frame::prebuilt, std::move(bytes)), false);
                }
                auto executor = net::get_associated_executor(handler, get_executor());
                net::post(executor, beast::bind_front_handler(std::move(handler), ec, ec ? 0 : size));
            },
            token, buffers);
    }

    /** Calls `action` once everything queued is written (or the stream failed); at once if nothing is. */
    template <class Action>
    void after_drain(Action&& action) {
        if (!backlog_ || error_) return action();
        backlog_->on_drained = std::make_unique<callback<std::decay_t<Action>>>(std::forward<Action>(action));
    }

private:
    static constexpr std::size_t max_gather = 64; // buffers per gather write, well under IOV_MAX

    struct entry {
        shared_frame frame;
        bool droppable; // queued by send(), not by the WebSocket layer
    };

    struct callback_base {
        virtual ~callback_base() = default;
        virtual void run() = 0;
    };
    template <class F>
    struct callback final : callback_base {
        explicit callback(F f)
            : f_(std::move(f)) {}
        void run() override { f_(); }
        F f_;
    };

    /** What exists only while frames wait: the queue (a vector with a moving head) and its write state. */
    struct backlog {
        std::vector<entry> items;
        std::size_t head = 0;
        std::size_t offset = 0; // bytes of the front frame already written
        bool in_flight = false; // a wait for writability, or a TLS write, is pending
        bool corked = false;    // hold writes until uncork()
        std::chrono::steady_clock::time_point blocked_since;
        std::unique_ptr<callback_base> on_drained;

        std::size_t size() const noexcept { return items.size() - head; }
        bool empty() const noexcept { return head == items.size(); }
        entry& front() noexcept { return items[head]; }
        void pop() noexcept {
            items[head++].frame.reset();
            offset = 0;
        }
    };

    void push(shared_frame const& frame, bool droppable) {
        if (error_) return;
        if (backlog_) {
            backlog_->items.push_back({frame, droppable});
            if constexpr (!plain_socket)
                if (!backlog_->corked) write_next();
            return;
        }
        std::size_t written = 0;
        if constexpr (plain_socket) {
            // Nothing ahead of it: hand it to the socket now; only a remainder is queued.
            auto const bytes = frame->bytes();
            net::const_buffer const buffer(bytes.data(), bytes.size());
            beast::error_code ec;
            written = send_now({&buffer, 1}, ec);
            if (ec) return fail(ec);
            if (written == bytes.size()) return;
        }
        backlog_ = std::make_unique<backlog>();
        backlog_->items.push_back({frame, droppable});
        backlog_->offset = written;
        if constexpr (plain_socket)
            wait_writable();
        else
            write_next();
    }

    // Plain TCP: everything queued goes out in one gather write per wake-up, until the socket is full again.
    void wait_writable() {
        backlog_->in_flight = true;
        backlog_->blocked_since = std::chrono::steady_clock::now();
        next_.async_wait(net::socket_base::wait_write, [this, owner = owner_.lock()](beast::error_code ec) {
            backlog_->in_flight = false;
            if (ec) return fail(ec);
            flush();
        });
    }

    void flush() {
        auto& queue = *backlog_;
        while (!queue.empty()) {
            std::array<net::const_buffer, max_gather> buffers;
            std::size_t count = 0;
            for (auto i = queue.head; i < queue.items.size() && count < max_gather; ++i) {
                auto const bytes = queue.items[i].frame->bytes();
                auto const skip = count == 0 ? queue.offset : 0;
                buffers[count++] = net::buffer(bytes.data() + skip, bytes.size() - skip);
            }
            beast::error_code ec;
            auto written = send_now({buffers.data(), count}, ec);
            if (ec) return fail(ec);
            if (written == 0) return wait_writable();
            // Pop what went out whole; keep the offset into the first frame that did not.
            while (written > 0) {
                auto const left = queue.front().frame->bytes().size() - queue.offset;
                if (written < left) {
                    queue.offset += written;
                    break;
                }
                written -= left;
                queue.pop();
            }
        }
        drained();
    }

    // TLS: one frame at a time through the TLS stream's own write.
    void write_next() {
        auto& queue = *backlog_;
        if (queue.in_flight) return;
        queue.in_flight = true;
        queue.blocked_since = std::chrono::steady_clock::now();
        auto const bytes = queue.front().frame->bytes();
        net::async_write(next_, net::buffer(bytes.data(), bytes.size()),
                         [this, owner = owner_.lock()](beast::error_code ec, std::size_t) {
                             backlog_->in_flight = false;
                             if (ec) return fail(ec);
                             backlog_->pop();
                             if (backlog_->empty()) return drained();
                             write_next();
                         });
    }

    /**
     * One non-blocking gather send of `buffers`: the bytes the socket took, 0 if it is full. The socket is
     * already in non-blocking mode for Asio's own operations; MSG_DONTWAIT keeps this send from ever
     * blocking regardless, and MSG_NOSIGNAL turns a vanished peer into EPIPE instead of SIGPIPE.
     */
    std::size_t send_now(std::span<net::const_buffer const> buffers, beast::error_code& ec) {
        std::array<::iovec, max_gather> vectors;
        for (std::size_t i = 0; i < buffers.size(); ++i)
            vectors[i] = {const_cast<void*>(buffers[i].data()), buffers[i].size()};
        ::msghdr message{};
        message.msg_iov = vectors.data();
        message.msg_iovlen = buffers.size();
        for (;;) {
            // One buffer (every delivery that finds the queue empty) goes through send(), which the kernel
            // takes without copying in a vector of buffers.
            constexpr int flags = MSG_DONTWAIT | MSG_NOSIGNAL;
            auto const sent = buffers.size() == 1
                                  ? ::send(next_.native_handle(), buffers[0].data(), buffers[0].size(), flags)
                                  : ::sendmsg(next_.native_handle(), &message, flags);
            if (sent >= 0) return static_cast<std::size_t>(sent);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) ec.assign(errno, boost::system::system_category());
            return 0;
        }
    }

    /** Nothing waits any more: the backlog goes, and whoever waited for that runs. */
    void drained() {
        auto action = backlog_ ? std::move(backlog_->on_drained) : nullptr;
        backlog_.reset();
        if (action) action->run();
    }

    void fail(beast::error_code ec) {
        error_ = ec;
        // The reader sees the failure too and ends the session.
        beast::close_socket(beast::get_lowest_layer(next_));
        if (backlog_ && backlog_->in_flight) {
            // The pending wait or write still refers to the backlog; it ends, aborted, and comes back here.
            backlog_->items.erase(backlog_->items.begin() + static_cast<std::ptrdiff_t>(backlog_->head),
                                  backlog_->items.end());
            backlog_->head = backlog_->items.size();
            return;
        }
        drained();
    }

    // The queue pointer and the error come first: with the socket's descriptor they are all a delivery reads.
    std::unique_ptr<backlog> backlog_; // null while nothing waits
    beast::error_code error_;
    bool close_written_ = false;
    NextLayer next_;
    std::weak_ptr<void> owner_;
    frame_boundaries boundaries_;
    // The read-ahead: room for a typical client event, so a quiet client's next message costs one recv.
    std::array<char, 96> ahead_;
    std::uint8_t ahead_size_ = 0;
    bool ahead_pending_ = false;
    net::cancellation_signal ahead_cancel_;
};

/**
 * Beast's closing handshake ends by tearing the transport down, once the queued frames (the close frame
 * among them) are written. Beast calls this only after both close frames have crossed, so on a plain socket
 * the server closes it at once (RFC 6455 section 7.1.1: the server closes the TCP connection first); there
 * is nothing left to read, and no shutdown-and-drain round is needed. Under TLS the TLS layer's own
 * teardown sends its close_notify.
 */
template <class NextLayer, class TeardownHandler>
void async_teardown(beast::role_type role, frame_stream<NextLayer>& stream, TeardownHandler&& handler) {
    stream.after_drain([role, &stream, handler = std::forward<TeardownHandler>(handler)]() mutable {
        if constexpr (frame_stream<NextLayer>::plain_socket) {
            if (role == beast::role_type::server) {
                beast::error_code ec;
                stream.next_layer().close(ec);
                auto executor = net::get_associated_executor(handler, stream.get_executor());
                net::post(executor, beast::bind_front_handler(std::move(handler), ec));
                return;
            }
        }
        using beast::websocket::async_teardown;
        async_teardown(role, stream.next_layer(), std::move(handler));
    });
}

/** The synchronous form Beast names; the server only ever closes asynchronously. */
template <class NextLayer>
void teardown(beast::role_type role, frame_stream<NextLayer>& stream, beast::error_code& ec) {
    using beast::websocket::teardown;
    teardown(role, stream.next_layer(), ec);
}

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
