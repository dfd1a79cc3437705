#pragma once

// Completion tokens and spawn handlers shared by every coroutine of the server.

#include "support/logger.hpp"
#include "support/net.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <string_view>

namespace wolf {

/** Errors as values on the I/O path: `auto [ec, n] = co_await op(..., use_nothrow);`. */
inline constexpr auto use_nothrow = net::as_tuple(net::use_awaitable);

/**
 * Plain new and delete under a type of their own. Asio takes std::allocator to mean "the per-thread cache",
 * whose blocks are as large as the largest operation that used them; an operation that stays parked for
 * minutes on every connection (a wait for the next message) is better allocated to its own size.
 */
template <class T>
struct sized_allocator : std::allocator<T> {
    using value_type = T;
    sized_allocator() = default;
    template <class U>
    sized_allocator(sized_allocator<U> const&) noexcept {}
};

/** Logs an exception that escaped a coroutine: event `failed`, what=<what> error=<message>. */
inline void log_failure(std::string_view what, std::exception_ptr const& error) {
    try {
        std::rethrow_exception(error);
    } catch (std::exception const& e) {
        log_error("failed", kv("what", what), kv("error", e.what()));
    } catch (...) {
        log_error("failed", kv("what", what), kv("error", "unknown exception"));
    }
}

/** Spawn handler for the server's long-lived actors: an escaped exception is logged and rethrown out of
 * io_context::run, so a bug is loud, never silent. */
struct log_and_rethrow {
    std::string_view what;
    void operator()(std::exception_ptr error) const {
        if (!error) return;
        log_failure(what, error);
        std::rethrow_exception(error);
    }
};

/** Spawn handler for one connection: an escaped exception is logged and ends that connection only. */
struct log_and_contain {
    std::string_view what;
    void operator()(std::exception_ptr error) const {
        if (error) log_failure(what, error);
    }
};

} // namespace wolf
