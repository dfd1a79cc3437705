#pragma once

// A TCP stream layer for websocket::stream that learns when the kernel received what each read returns
// (SO_TIMESTAMPNS), so a load generator can time the server's sends rather than its own scheduling.

#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <chrono>
#include <cstddef>
#include <sys/uio.h>
#include <utility>

namespace wolf::bench {

/**
 * A `tcp::socket` whose async_read_some reads with a non-blocking recvmsg and remembers the kernel's
 * receive time of the data it returned (SCM_TIMESTAMPNS, CLOCK_REALTIME; once enable_timestamps() has
 * run). Writes, connect and close go to the socket itself (next_layer()), so Beast's get_lowest_layer,
 * close_socket and the websocket timeouts work as with a plain socket.
 *
 * A read first tries recvmsg and waits for readability only when there is nothing to read: Asio's
 * reactor is edge-triggered, so a wait started while data is already queued would not end until more
 * arrives. Nothing runs the reactor between that recvmsg and the wait as long as the io_context has one
 * thread, which is how the benchmarks run it.
 */
class timestamp_socket {
public:
    using executor_type = net::any_io_executor;
    using next_layer_type = net::ip::tcp::socket;
    using lowest_layer_type = net::ip::tcp::socket::lowest_layer_type; // for ssl::stream over this layer
    using clock = std::chrono::system_clock;

    explicit timestamp_socket(executor_type executor)
        : socket_(std::move(executor)) {}

    executor_type get_executor() noexcept { return socket_.get_executor(); }
    next_layer_type& next_layer() noexcept { return socket_; }
    next_layer_type const& next_layer() const noexcept { return socket_; }
    lowest_layer_type& lowest_layer() noexcept { return socket_.lowest_layer(); }

    /** Asks the kernel to timestamp what this socket receives; call once the socket is open. */
    void enable_timestamps(beast::error_code& ec) noexcept;

    /** The kernel's receive time of the newest segment the last successful read took bytes from; the
     * epoch if it carried none (timestamps not enabled). */
    clock::time_point last_received() const noexcept { return last_received_; }

    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(MutableBufferSequence const& buffers, ReadToken&& token) {
        return net::async_compose<ReadToken, void(beast::error_code, std::size_t)>(
            read_some_op<MutableBufferSequence>{*this, buffers}, token, socket_);
    }

    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(ConstBufferSequence const& buffers, WriteToken&& token) {
        return socket_.async_write_some(buffers, std::forward<WriteToken>(token));
    }

private:
    static constexpr std::size_t max_iovecs = 16;

    /** One non-blocking recvmsg into `count` iovecs: bytes read, or 0 with ec (would_block, eof, ...). */
    std::size_t receive(iovec* iov, std::size_t count, beast::error_code& ec) noexcept;

    template <class MutableBufferSequence>
    std::size_t receive(MutableBufferSequence const& buffers, beast::error_code& ec) noexcept {
        iovec iov[max_iovecs];
        std::size_t count = 0;
        for (auto it = net::buffer_sequence_begin(buffers);
             it != net::buffer_sequence_end(buffers) && count < max_iovecs; ++it) {
            net::mutable_buffer const b = *it;
            if (b.size() == 0) continue;
            iov[count++] = iovec{b.data(), b.size()};
        }
        if (count == 0) return 0; // an empty read completes at once with 0 bytes
        return receive(iov, count, ec);
    }

    /** read_some: recvmsg now; if nothing is there, wait for readability and try again. */
    template <class MutableBufferSequence>
    struct read_some_op {
        timestamp_socket& stream;
        MutableBufferSequence buffers;
        bool initiating = true;
        bool posted = false;
        beast::error_code result{};
        std::size_t bytes = 0;

        template <class Self>
        void operator()(Self& self, beast::error_code ec = {}) {
            if (posted) return self.complete(result, bytes); // an immediate result, now delivered
            bool const first = std::exchange(initiating, false);
            // Closed while the wait's completion was queued (a websocket timeout): what Asio's own read
            // would report, not EBADF from a recvmsg on no descriptor.
            if (!ec && !stream.socket_.is_open()) ec = net::error::operation_aborted;
            if (!ec) {
                bytes = stream.receive(buffers, ec);
                if (ec == net::error::would_block) {
                    stream.socket_.async_wait(net::socket_base::wait_read, std::move(self));
                    return;
                }
            }
            if (first) {
                // Never complete inside the initiating call: post the result to ourselves first.
                result = ec;
                posted = true;
                net::post(std::move(self));
                return;
            }
            self.complete(ec, bytes);
        }
    };

    net::ip::tcp::socket socket_;
    clock::time_point last_received_{};
};

/** Beast's teardown of a websocket over this layer is the plain socket's. */
inline void teardown(beast::role_type role, timestamp_socket& stream, beast::error_code& ec) {
    websocket::teardown(role, stream.next_layer(), ec);
}

template <class TeardownHandler>
void async_teardown(beast::role_type role, timestamp_socket& stream, TeardownHandler&& handler) {
    websocket::async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}

} // namespace wolf::bench
