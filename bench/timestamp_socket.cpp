#include "timestamp_socket.hpp"

#include <boost/asio/error.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/socket.h>

namespace wolf::bench {

void timestamp_socket::enable_timestamps(beast::error_code& ec) noexcept {
    int const on = 1;
    if (::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0)
        ec.assign(errno, net::error::get_system_category());
    else
        ec = {};
}

std::size_t timestamp_socket::receive(iovec* iov, std::size_t count, beast::error_code& ec) noexcept {
    // Room for SCM_TIMESTAMPNS and whatever else a kernel might add; a truncated control part only loses
    // the timestamp, never data.
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec)) * 2];
    msghdr message{};
    message.msg_iov = iov;
    message.msg_iovlen = count;
    for (;;) {
        message.msg_control = control;
        message.msg_controllen = sizeof control;
        auto const n = ::recvmsg(socket_.native_handle(), &message, MSG_DONTWAIT);
        if (n > 0) {
            for (auto* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
                    c->cmsg_len >= CMSG_LEN(sizeof(timespec))) {
                    timespec ts{};
                    std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    last_received_ = clock::time_point(std::chrono::duration_cast<clock::duration>(
                        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
                }
            ec = {};
            return static_cast<std::size_t>(n);
        }
        if (n == 0) {
            ec = net::error::eof;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            ec = net::error::would_block;
        else
            ec.assign(errno, net::error::get_system_category());
        return 0;
    }
}

} // namespace wolf::bench
