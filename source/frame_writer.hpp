#pragma once

// The write side of a connection's frame_stream: every byte written to the connection goes through one queue
// of shared frames, so frames never interleave, whoever wrote them. A frame reaches the socket at once when
// nothing waits ahead of it: with a non-blocking send on a plain TCP socket, with one SSL_write under TLS.

#include "frame.hpp"
#include "support/loop.hpp"
#include "support/net.hpp"
#include "tls_socket.hpp"

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <cerrno>
#include <cstddef>
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
 * What both writers share: the frames that wait, with their write state, and what waits for them to be
 * written. The queue and its state exist only while something waits: an idle connection carries one pointer
 * for them. A frame is queued by send() (a broadcast or a reply: droppable when the connection closes), by
 * resend() (a broadcast sent again to a recovering subscriber: droppable, but not counted by queued()) or
 * by send_transport() (the WebSocket layer's own bytes, which always go out). `Writer`, the derived writer,
 * says how a frame reaches the socket (push) and whether the front frame has begun to go out.
 *
 * Single-threaded: every call comes from the connection's executor. Pending waits hold the owner (the
 * session) alive through keep_alive_with().
 */
template <class Writer>
class frame_writer_base {
public:
    /** Writes `frame` after everything queued before it. */
    template <class NextLayer>
    void send(NextLayer& next, shared_frame const& frame) {
        writer().push(next, {frame, true, true});
    }

    /** A broadcast sent again (lossless reconnect): after everything queued, droppable at a close, and not
     * counted by queued(), since a replay is not subject to the drop rule that bound enforces. */
    template <class NextLayer>
    void resend(NextLayer& next, shared_frame const& frame) {
        writer().push(next, {frame, true, false});
    }

    /** The WebSocket layer's own bytes: after everything queued, and never dropped. A close frame (FIN and
     * opcode 8: its writes always begin at a frame's header) is noted: the layer may write one on its own
     * after a protocol violation. */
    template <class NextLayer>
    void send_transport(NextLayer& next, shared_frame const& frame) {
        auto const bytes = frame->bytes();
        if (!bytes.empty() && static_cast<unsigned char>(bytes.front()) == 0x88) close_written_ = true;
        writer().push(next, {frame, false, true});
    }

    /** Drops queued frames of send() that have not begun to go out; the WebSocket layer's own frames stay.
     */
    void drop_unsent() {
        if (!backlog_ || backlog_->corked) return;
        bool const front_begun = writer().front_begun();
        auto& items = backlog_->items;
        std::vector<entry> kept;
        backlog_->uncounted = 0;
        for (auto i = backlog_->head; i < items.size(); ++i)
            if (!items[i].droppable || (i == backlog_->head && front_begun)) {
                backlog_->uncounted += items[i].counted ? 0 : 1;
                kept.push_back(std::move(items[i]));
            }
        if (!front_begun) backlog_->offset = 0;
        items = std::move(kept);
        backlog_->head = 0;
        if (items.empty() && !backlog_->in_flight) drained();
    }

    /** The object that owns the stream; a pending wait holds it so the stream outlives the wait. */
    void keep_alive_with(std::weak_ptr<void> owner) { owner_ = std::move(owner); }

    /** The error that ended the stream's writes, if any. */
    beast::error_code error() const noexcept { return error_; }
    /** True once the WebSocket layer has written a close frame. */
    bool close_written() const noexcept { return close_written_; }

    /** Frames queued and not fully written (the one being written included), but for those resent. */
    std::size_t queued() const noexcept { return backlog_ ? backlog_->size() - backlog_->uncounted : 0; }
    /** Frames queued by resend() and not fully written. */
    std::size_t resent_queued() const noexcept { return backlog_ ? backlog_->uncounted : 0; }

    /** Since when a queued frame has waited on the socket; nullopt when nothing waits. */
    std::optional<steady_clock::time_point> blocked_since() const noexcept {
        if (!backlog_ || !backlog_->in_flight) return std::nullopt;
        return backlog_->blocked_since;
    }

    /** Holds writes back until uncork(), which sends everything held at once: the 101 response and `initial`
     * leave together (one segment on a plain socket; two records, sent back to back, under TLS). */
    void cork() {
        if (!backlog_) {
            backlog_ = std::make_unique<backlog>();
            backlog_->items.reserve(2); // what a cork holds: the 101 response and `initial`
        }
        backlog_->corked = true;
    }

    /** Calls `action` once everything queued is written (or the stream failed); at once if nothing is. */
    template <class Action>
    void after_drain(Action&& action) {
        if (!backlog_ || error_) return action();
        backlog_->on_drained = std::make_unique<callback<std::decay_t<Action>>>(std::forward<Action>(action));
    }

protected:
    struct entry {
        shared_frame frame;
        bool droppable; // queued by send() or resend(), not by the WebSocket layer
        bool counted;   // by queued(): all but what resend() queued
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
        std::size_t uncounted = 0; // entries from resend()
        std::size_t offset = 0;    // bytes of the front frame already written
        bool in_flight = false;    // a wait for the socket is pending
        bool corked = false;       // hold writes until uncork()
        steady_clock::time_point blocked_since;
        std::unique_ptr<callback_base> on_drained;

        std::size_t size() const noexcept { return items.size() - head; }
        bool empty() const noexcept { return head == items.size(); }
        entry& front() noexcept { return items[head]; }
        void pop() noexcept {
            if (!items[head].counted) --uncounted;
            items[head++].frame.reset();
            offset = 0;
        }
        void push(entry e) {
            if (!e.counted) ++uncounted;
            items.push_back(std::move(e));
        }
    };

    /** Nothing waits any more: the backlog goes, and whoever waited for that runs. */
    void drained() {
        auto action = backlog_ ? std::move(backlog_->on_drained) : nullptr;
        backlog_.reset();
        if (action) action->run();
    }

    /** The stream failed: the socket under `next` is closed, so the reader sees the failure too and ends the
     * session. */
    template <class NextLayer>
    void fail(NextLayer& next, beast::error_code ec) {
        error_ = ec;
        beast::close_socket(beast::get_lowest_layer(next));
        if (backlog_ && backlog_->in_flight) {
            // The pending wait or write still refers to the backlog; it ends, aborted, and comes back here.
            backlog_->items.erase(backlog_->items.begin() + static_cast<std::ptrdiff_t>(backlog_->head),
                                  backlog_->items.end());
            backlog_->head = backlog_->items.size();
            backlog_->uncounted = 0;
            return;
        }
        drained();
    }

    // The queue pointer and the error come first: with the socket's descriptor they are all a delivery reads.
    std::unique_ptr<backlog> backlog_; // null while nothing waits
    beast::error_code error_;
    bool close_written_ = false;
    std::weak_ptr<void> owner_;

private:
    Writer& writer() noexcept { return static_cast<Writer&>(*this); }
};

/** The write side of a frame_stream over `NextLayer`: a plain TCP socket or a tls_socket. */
template <class NextLayer>
class frame_writer;

/**
 * The writer over a plain TCP socket: a frame is written at once with a non-blocking send when nothing is
 * queued ahead of it, so a delivery that fits in the socket buffer costs one system call and no handler;
 * what the socket does not take waits for writability and then goes out in one gather write with everything
 * queued behind it.
 */
template <>
class frame_writer<tcp_socket> : public frame_writer_base<frame_writer<tcp_socket>> {
    friend frame_writer_base;

public:
    using socket = tcp_socket;

    void uncork(socket& next) {
        if (!backlog_ || !backlog_->corked) return;
        backlog_->corked = false;
        if (!error_ && !backlog_->in_flight) flush(next);
    }

private:
    static constexpr std::size_t max_gather = 64; // buffers per gather write, well under IOV_MAX

    /** Some of the front frame is written; one waiting for writability with no byte written has not begun. */
    bool front_begun() const noexcept { return backlog_->offset > 0; }

    void push(socket& next, entry e) {
        if (error_) return;
        if (backlog_) {
            backlog_->push(std::move(e));
            return;
        }
        // Nothing ahead of it: hand it to the socket now; only a remainder is queued.
        auto const bytes = e.frame->bytes();
        net::const_buffer const buffer(bytes.data(), bytes.size());
        beast::error_code ec;
        auto const written = send_now(next, {&buffer, 1}, ec);
        if (ec) return fail(next, ec);
        if (written == bytes.size()) return;
        backlog_ = std::make_unique<backlog>();
        backlog_->push(std::move(e));
        backlog_->offset = written;
        wait_writable(next);
    }

    // Everything queued goes out in one gather write per wake-up, until the socket is full again.
    void wait_writable(socket& next) {
        backlog_->in_flight = true;
        backlog_->blocked_since = steady_clock::now();
        next.async_wait(socket::wait_write, [this, &next, owner = owner_.lock()](beast::error_code ec) {
            backlog_->in_flight = false;
            if (ec) return fail(next, ec);
            flush(next);
        });
    }

    void flush(socket& next) {
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
            auto written = send_now(next, {buffers.data(), count}, ec);
            if (ec) return fail(next, ec);
            if (written == 0) return wait_writable(next);
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

    /**
     * One non-blocking gather send of `buffers`: the bytes the socket took, 0 if it is full. The socket is
     * already in non-blocking mode for Asio's own operations; MSG_DONTWAIT keeps this send from ever
     * blocking regardless, and MSG_NOSIGNAL turns a vanished peer into EPIPE instead of SIGPIPE.
     */
    static std::size_t send_now(socket& next, std::span<net::const_buffer const> buffers,
                                beast::error_code& ec) {
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
                                  ? ::send(next.native_handle(), buffers[0].data(), buffers[0].size(), flags)
                                  : ::sendmsg(next.native_handle(), &message, flags);
            if (sent >= 0) return static_cast<std::size_t>(sent);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) ec.assign(errno, boost::system::system_category());
            return 0;
        }
    }
};

/**
 * The writer over TLS, on the plain writer's plan: a frame is handed to OpenSSL at once (one SSL_write, which
 * encrypts it into OpenSSL's record buffer and sends it with a non-blocking send) when nothing is queued
 * ahead of it. When the socket does not take it all, OpenSSL keeps the rest of its records and the frame
 * waits at the front of the queue, begun, until the socket is writable and the same SSL_write goes on; the
 * frames behind it follow one SSL_write each.
 */
template <>
class frame_writer<tls_socket> : public frame_writer_base<frame_writer<tls_socket>> {
    friend frame_writer_base;

public:
    void uncork(tls_socket& next) {
        if (!backlog_ || !backlog_->corked) return;
        backlog_->corked = false;
        if (!error_ && !backlog_->in_flight) flush(next);
    }

private:
    using step = tls_socket::step;

    /** OpenSSL holds part of the front frame: it must be given that frame again (offset 1 says so). */
    bool front_begun() const noexcept { return backlog_->offset > 0; }

    void push(tls_socket& next, entry e) {
        if (error_) return;
        if (backlog_) {
            backlog_->push(std::move(e));
            return;
        }
        beast::error_code ec;
        auto const result = next.write(e.frame->bytes(), ec);
        if (result == step::done) return;
        if (result == step::failed) return fail(next, ec);
        if (result == step::want_read) return fail(next, renegotiation_refused());
        backlog_ = std::make_unique<backlog>();
        backlog_->push(std::move(e));
        backlog_->offset = 1;
        wait_writable(next);
    }

    /**
     * OpenSSL reads before it writes only in a renegotiation, which the context refuses (TLS 1.3 has none):
     * a write that wants to read ends the stream rather than wait beside the reader's read-ahead, which
     * would take the bytes first.
     */
    static beast::error_code renegotiation_refused() noexcept { return net::error::operation_not_supported; }

    /** Waits until the socket takes more of what OpenSSL holds of the front frame. */
    void wait_writable(tls_socket& next) {
        backlog_->in_flight = true;
        backlog_->blocked_since = steady_clock::now();
        next.next_layer().async_wait(tcp_socket::wait_write,
                                     [this, &next, owner = owner_.lock()](beast::error_code ec) {
                                         backlog_->in_flight = false;
                                         if (ec) return fail(next, ec);
                                         flush(next);
                                     });
    }

    void flush(tls_socket& next) {
        auto& queue = *backlog_;
        while (!queue.empty()) {
            beast::error_code ec;
            auto const result = next.write(queue.front().frame->bytes(), ec);
            if (result == step::failed) return fail(next, ec);
            if (result == step::want_read) return fail(next, renegotiation_refused());
            if (result == step::want_write) {
                queue.offset = 1;
                return wait_writable(next);
            }
            queue.pop();
        }
        drained();
    }
};

} // namespace wolf
