#pragma once

// The client threads of the load generators: one io_context per thread, sessions dealt round robin.

#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace wolf::bench {

/**
 * The io_contexts the client sessions run on, one thread each. A session lives on one context for its
 * whole life, so its frames never cross threads, and each context has a single thread (which the
 * timestamp_socket relies on).
 */
class worker_pool {
public:
    /** `program` names who failed if a thread dies of an exception (a bug: I/O errors are values). */
    worker_pool(std::size_t threads, std::string program) {
        for (std::size_t i = 0; i < threads; ++i) {
            contexts_.push_back(std::make_unique<net::io_context>(1));
            guards_.push_back(net::make_work_guard(*contexts_.back()));
        }
        for (auto& context : contexts_)
            threads_.emplace_back([&ctx = *context, program] {
                try {
                    ctx.run();
                } catch (std::exception const& e) {
                    // Stop loudly rather than report nonsense.
                    std::cerr << program << ": client thread failed: " << e.what() << '\n';
                    std::abort();
                }
            });
    }
    worker_pool(worker_pool const&) = delete;
    worker_pool& operator=(worker_pool const&) = delete;
    ~worker_pool() {
        // Every session has ended by now (or is past its bounded waits): nothing is left to run.
        guards_.clear();
        for (auto& context : contexts_)
            context->stop();
        for (auto& thread : threads_)
            thread.join();
    }

    std::size_t size() const noexcept { return contexts_.size(); }
    /** The next context, round robin, by index or by executor; from the control thread only. */
    std::size_t next_index() noexcept { return next_++ % contexts_.size(); }
    net::any_io_executor next() { return at(next_index()); }
    /** Context `i`'s executor. */
    net::any_io_executor at(std::size_t i) { return contexts_[i]->get_executor(); }

private:
    std::vector<std::unique_ptr<net::io_context>> contexts_;
    std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
    std::vector<std::thread> threads_;
    std::size_t next_ = 0;
};

} // namespace wolf::bench
