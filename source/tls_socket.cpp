#include "tls_socket.hpp"

#include <algorithm>
#include <boost/asio/ssl/error.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstring>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

namespace wolf {

/**
 * The BIO under a tls_socket's SSL: what was read before the handshake first, then the read-ahead, then the
 * socket itself, with non-blocking recv and send. "Would block" is OpenSSL's retry, which the socket's
 * operations turn into a wait.
 */
struct tls_bio {
    using core = tls_socket::core;

    static BIO_METHOD* method() {
        static BIO_METHOD* const bio_method = [] {
            auto* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wolf-wisdom tls_socket");
            if (!m || BIO_meth_set_read(m, &read) != 1 || BIO_meth_set_write(m, &write) != 1 ||
                BIO_meth_set_ctrl(m, &ctrl) != 1 || BIO_meth_set_create(m, &create) != 1)
                throw std::bad_alloc();
            return m;
        }();
        return bio_method;
    }

    static int create(BIO* bio) {
        BIO_set_init(bio, 1);
        return 1;
    }

    /** Copies from `bytes[taken..]` into `out`; the count copied. */
    template <class Bytes, class Index>
    static int take(Bytes const& bytes, Index& taken, std::size_t end, char* out, std::size_t size) {
        auto const count = std::min(size, end - taken);
        std::memcpy(out, bytes.data() + taken, count);
        taken = static_cast<Index>(taken + count);
        return static_cast<int>(count);
    }

    static int read(BIO* bio, char* out, int size) {
        BIO_clear_retry_flags(bio);
        if (size <= 0) return 0;
        auto& c = *static_cast<core*>(BIO_get_data(bio));
        auto const want = static_cast<std::size_t>(size);
        if (c.received_taken < c.received.size())
            return take(c.received, c.received_taken, c.received.size(), out, want);
        if (c.inbox_begin < c.inbox_end) return take(c.inbox, c.inbox_begin, c.inbox_end, out, want);
        if (c.read_failure == net::error::eof) return end_of_stream(bio);
        if (c.read_failure) {
            c.bio_failure = c.read_failure;
            return -1;
        }
        for (;;) {
            auto const got = ::recv(c.socket.native_handle(), out, want, MSG_DONTWAIT);
            if (got > 0) return static_cast<int>(got);
            if (got == 0) return end_of_stream(bio);
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                BIO_set_retry_read(bio);
            else
                c.bio_failure.assign(errno, boost::system::system_category());
            return -1;
        }
    }

    static int write(BIO* bio, char const* in, int size) {
        BIO_clear_retry_flags(bio);
        if (size <= 0) return 0;
        auto& c = *static_cast<core*>(BIO_get_data(bio));
        for (;;) {
            // MSG_NOSIGNAL: a vanished peer is EPIPE, not SIGPIPE.
            auto const sent = ::send(c.socket.native_handle(), in, static_cast<std::size_t>(size),
                                     MSG_DONTWAIT | MSG_NOSIGNAL);
            if (sent >= 0) return static_cast<int>(sent);
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                BIO_set_retry_write(bio);
            else
                c.bio_failure.assign(errno, boost::system::system_category());
            return -1;
        }
    }

    /** The peer closed: OpenSSL asks BIO_eof() to tell that from a failed read, as on its own socket BIO. */
    static int end_of_stream(BIO* bio) {
        BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
        return 0;
    }

    static long ctrl(BIO* bio, int command, long, void*) {
        switch (command) {
        case BIO_CTRL_FLUSH:
            return 1; // every write is sent as it is made
        case BIO_CTRL_EOF:
            return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
        default:
            return 0;
        }
    }
};

tls_socket::tls_socket(next_layer_type socket, net::ssl::context& context)
    : core_(std::make_shared<core>(std::move(socket))) {
    auto& c = *core_;
    c.ssl.reset(SSL_new(context.native_handle()));
    BIO* const bio = c.ssl ? BIO_new(tls_bio::method()) : nullptr;
    if (!bio) {
        boost::system::error_code const ec(static_cast<int>(ERR_get_error()), net::error::get_ssl_category());
        ERR_clear_error();
        throw boost::system::system_error(ec, "tls_socket");
    }
    BIO_set_data(bio, &c);
    SSL_set_bio(c.ssl.get(), bio, bio); // the SSL owns it
    SSL_set_accept_state(c.ssl.get());
}

void tls_socket::expires_after(duration timeout) {
    auto& c = *core_;
    if (!c.deadline) c.deadline = std::make_unique<loop_timer>(c.socket.get_executor());
    c.expired = false;
    auto const set = ++c.deadline_set;
    c.deadline->expires_after(timeout);
    c.deadline->async_wait([weak = std::weak_ptr<core>(core_), set](beast::error_code ec) {
        if (ec) return;
        auto const passed = weak.lock();
        if (!passed || passed->deadline_set != set) return; // replaced or removed since
        passed->expired = true;
        beast::error_code ignored;
        passed->socket.close(ignored);
    });
}

void tls_socket::expires_never() noexcept {
    ++core_->deadline_set;
    core_->deadline.reset();
}

void tls_socket::close() noexcept {
    beast::error_code ignored;
    core_->socket.close(ignored);
}

tls_socket::step tls_socket::write(std::span<char const> bytes, beast::error_code& ec) {
    auto& c = *core_;
    c.prepare_call();
    std::size_t written = 0;
    return c.finish(SSL_write_ex(c.ssl.get(), bytes.data(), bytes.size(), &written), ec);
}

void tls_socket::notify_close() noexcept {
    auto& c = *core_;
    if (!SSL_is_init_finished(c.ssl.get())) return;
    c.prepare_call();
    SSL_shutdown(c.ssl.get()); // sent if the socket takes it; a peer that does not read gets no more
    ERR_clear_error();
}

bool tls_socket::has_buffered() const noexcept {
    auto const& c = *core_;
    return c.received_taken < c.received.size() || c.inbox_begin < c.inbox_end ||
           SSL_has_pending(c.ssl.get()) == 1;
}

void tls_socket::core::prepare_call() noexcept {
    ERR_clear_error(); // SSL_get_error reads the thread's error queue
    bio_failure = {};
}

tls_socket::step tls_socket::core::finish(int result, beast::error_code& ec) {
    if (result > 0) return step::done;
    switch (SSL_get_error(ssl.get(), result)) {
    case SSL_ERROR_WANT_READ:
        return step::want_read;
    case SSL_ERROR_WANT_WRITE:
        return step::want_write;
    case SSL_ERROR_ZERO_RETURN: // the peer's close_notify
        ec = net::error::eof;
        break;
    case SSL_ERROR_SYSCALL: // the socket failed, or ended without close_notify
        ec = bio_failure ? bio_failure : beast::error_code(net::ssl::error::stream_truncated);
        break;
    default: {
        auto const error = ERR_get_error();
        // OpenSSL 3 reports an end without close_notify so; Asio's ssl::stream calls it stream_truncated.
        // No error queued: a want this server never asks for (an X509 lookup, a callback), a failure still.
        if (ERR_GET_REASON(error) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            ec = net::ssl::error::stream_truncated;
        else if (error == 0)
            ec = net::ssl::error::unspecified_system_error;
        else
            ec.assign(static_cast<int>(error), net::error::get_ssl_category());
    }
    }
    ERR_clear_error();
    return step::failed;
}

} // namespace wolf
