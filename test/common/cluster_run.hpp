#pragma once

// A cluster of real wolf-wisdom nodes sharing one Redis, a WebSocket subscriber on each, and what they
// received: for the suites labelled `redis`.

#include "common/binary.hpp"
#include "common/clients.hpp"
#include "common/test_server.hpp"
#include "protocol.hpp"
#include "support/async.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace wolf::test {

/** One wisdom_distribution a subscriber received. */
struct wisdom {
    std::uint64_t tick = 0; // 0: none (an operator's message)
    std::string message;
    std::chrono::steady_clock::time_point at;
    std::uint64_t offset = 0; // its position in the cluster's sequence
};

/** What one subscriber has received so far, and whether its connection ended. */
struct feed {
    std::vector<wisdom> got;
    bool closed = false;
    std::string why;

    std::vector<std::uint64_t> ticks() const {
        std::vector<std::uint64_t> numbers;
        for (auto const& w : got)
            if (w.tick) numbers.push_back(w.tick);
        return numbers;
    }
    std::size_t tick_count() const { return ticks().size(); }
    std::uint64_t last_tick() const {
        auto const numbers = ticks();
        return numbers.empty() ? 0 : numbers.back();
    }
};

/** Reads until the connection ends (the test closes it, or the node dies), recording every wisdom and
 * announcing each to `fed`. */
inline net::awaitable<void> read_feed(ws_client& client, std::shared_ptr<feed> shared, notifier& fed) {
    auto& out = *shared; // shared: a reader may end after a failed check has ended the test body
    beast::flat_buffer buffer;
    for (;;) {
        buffer.clear();
        auto [ec, n] = co_await client.stream().async_read(buffer, use_nothrow);
        if (ec) {
            out.closed = true;
            out.why = ec.message();
            fed.notify();
            co_return;
        }
        auto const value = boost::json::parse(beast::buffers_to_string(buffer.data()));
        auto const& object = value.as_object();
        if (event_type(object) != protocol::event::wisdom_distribution) continue;
        auto const& payload = object.at("payload").as_object();
        wisdom w{0, std::string(payload.at("message").as_string()), std::chrono::steady_clock::now(),
                 payload.at("offset").to_number<std::uint64_t>()};
        if (auto const* tick = payload.if_contains("tick")) w.tick = tick->to_number<std::uint64_t>();
        out.got.push_back(std::move(w));
        fed.notify();
    }
}

/** The subscribers, one per node. They live in the test's coroutine, inside its io_context. */
struct subscribers {
    subscribers() = default;
    subscribers(subscribers const&) = delete;
    subscribers& operator=(subscribers const&) = delete;
    /** Closes the sockets, which ends the readers (after a failed check too). */
    ~subscribers() {
        for (auto& client : clients) {
            boost::system::error_code ignored;
            beast::get_lowest_layer(client->stream()).socket().close(ignored);
        }
    }
    std::vector<std::unique_ptr<ws_client>> clients;
};

/** Three nodes, what their subscribers received, and the checks the test cases share. */
class cluster_run {
public:
    /** `count` wolf-wisdom nodes of the cluster at `redis_url`, each started with `node_args`. */
    cluster_run(std::string const& redis_url, std::vector<std::string> const& node_args,
                std::size_t count = 3) {
        for (std::size_t i = 0; i < count; ++i)
            nodes_.push_back(std::make_unique<cluster_node>(WOLF_BINARY, redis_url, node_args));
    }

    /** Connects and subscribes one client per node, and starts reading. */
    net::awaitable<void> subscribe_all(subscribers& subs) {
        auto const executor = co_await net::this_coro::executor;
        for (auto const& n : nodes_) {
            subs.clients.push_back(std::make_unique<ws_client>(co_await ws_client::open(n->port)));
            co_await subs.clients.back()->connect_and_subscribe();
            feeds_.push_back(std::make_shared<feed>());
        }
        for (std::size_t i = 0; i < subs.clients.size(); ++i)
            net::co_spawn(executor, read_feed(*subs.clients[i], feeds_[i], fed_), [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
    }

    /**
     * With a subscriber on every node, each of which has received `first` ticks, runs `body`; then closes
     * the subscribers and waits for their readers to end.
     */
    void with_subscribers(std::size_t first, std::function<net::awaitable<void>()> body,
                          std::chrono::seconds limit = 30s) {
        run_coro(
            [&]() -> net::awaitable<void> {
                subscribers subs;
                co_await subscribe_all(subs);
                BOOST_REQUIRE_MESSAGE(co_await ticks_grow(first, 5s), tails());
                co_await body();
                co_await finish(subs);
            },
            limit);
    }

    /** Closes the clients' sockets and waits for the readers to end. */
    net::awaitable<void> finish(subscribers& subs) {
        for (auto& client : subs.clients) {
            boost::system::error_code ignored;
            beast::get_lowest_layer(client->stream()).socket().close(ignored);
        }
        BOOST_REQUIRE(co_await fed_.until(
            [&] {
                return std::all_of(feeds_.begin(), feeds_.end(), [](auto const& f) { return f->closed; });
            },
            2s));
        subs.clients.clear();
    }

    /** Waits until every live node's subscriber has `more` ticks beyond what it had. */
    net::awaitable<bool> ticks_grow(std::size_t more, std::chrono::milliseconds limit) {
        std::vector<std::size_t> before;
        for (auto const& f : feeds_)
            before.push_back(f->tick_count());
        co_return co_await fed_.until(
            [&] {
                for (std::size_t i = 0; i < feeds_.size(); ++i)
                    if (alive(i) && feeds_[i]->tick_count() < before[i] + more) return false;
                return true;
            },
            limit);
    }

    /** Each live subscriber's ticks go up by one each time, and every tick number came with the same quote
     * on every node that delivered it. */
    void check_same_consecutive_ticks() const {
        for (std::size_t i = 0; i < feeds_.size(); ++i) {
            std::uint64_t previous = 0;
            for (auto const& w : feeds_[i]->got) {
                if (!w.tick) continue;
                if (previous) BOOST_TEST(w.tick == previous + 1, "node " << i << " after tick " << previous);
                previous = w.tick;
            }
        }
        check_same_quote_per_tick();
    }

    /** Every tick number above `after` came with the same quote on every node that delivered it. */
    void check_same_quote_per_tick(std::uint64_t after = 0) const {
        std::map<std::uint64_t, std::string> quote_of;
        for (std::size_t i = 0; i < feeds_.size(); ++i)
            for (auto const& w : feeds_[i]->got)
                if (w.tick > after) {
                    auto const [it, first] = quote_of.emplace(w.tick, w.message);
                    if (!first) BOOST_TEST(it->second == w.message, "tick " << w.tick << " on node " << i);
                }
    }

    net::awaitable<std::vector<health>> all_health() {
        std::vector<health> result;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (alive(i)) result.push_back(co_await healthz(nodes_[i]->port));
        co_return result;
    }

    /** Waits until every live node has logged `event` (broker_connected, broker_disconnected: each node
     * logs its broker state once it has changed) after what the test last waited for; false if one did
     * not within `limit`. */
    net::awaitable<bool> broker_event(std::string_view event, std::chrono::milliseconds limit) {
        auto const until = std::chrono::steady_clock::now() + limit;
        auto const needle = " " + std::string(event) + " ";
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now());
            if (alive(i) && !co_await nodes_[i]->server.async_wait_for_line(needle, std::max(left, 0ms)))
                co_return false;
        }
        co_return true;
    }

    /** Whether `condition` holds for the /healthz of every live node. */
    template <class Condition>
    net::awaitable<bool> health_is(Condition condition) {
        auto const states = co_await all_health();
        co_return std::all_of(states.begin(), states.end(), condition);
    }

    /** Waits for what the subscribers receive, announced as it arrives. */
    net::awaitable<bool> until(std::function<bool()> condition, std::chrono::milliseconds limit) {
        return fed_.until(std::move(condition), limit);
    }

    net::awaitable<std::size_t> leader_index() {
        std::optional<std::size_t> found;
        std::size_t leaders = 0;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (alive(i) && (co_await healthz(nodes_[i]->port)).leader) {
                found = i;
                ++leaders;
            }
        BOOST_REQUIRE_MESSAGE(leaders == 1u, leaders << " nodes say they lead");
        co_return *found;
    }

    /** SIGTERM to every live node; each must exit 0 (under ASan, with nothing leaked). */
    void terminate_all() {
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (alive(i)) nodes_[i]->server.send_signal(SIGTERM);
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (alive(i))
                BOOST_TEST(nodes_[i]->server.wait(10s).value_or(-1) == 0, "node " << i << ":\n" << tails());
    }

    /** Whether node `i` wrote a line containing `text`. */
    bool logged(std::size_t i, std::string_view text) const {
        auto const lines = nodes_[i]->server.lines();
        return std::any_of(lines.begin(), lines.end(), [&](output_line const& line) {
            return line.text.find(text) != std::string::npos;
        });
    }

    void kill(std::size_t i) {
        nodes_[i]->server.send_signal(SIGKILL);
        BOOST_REQUIRE(nodes_[i]->server.wait(5s));
        dead_.push_back(i);
    }
    bool alive(std::size_t i) const { return std::find(dead_.begin(), dead_.end(), i) == dead_.end(); }

    cluster_node& at(std::size_t i) { return *nodes_[i]; }
    feed const& feed_of(std::size_t i) const { return *feeds_[i]; }
    /** The highest tick number any subscriber has received so far. */
    std::uint64_t highest_tick() const {
        std::uint64_t highest = 0;
        for (auto const& f : feeds_)
            highest = std::max(highest, f->last_tick());
        return highest;
    }
    std::size_t size() const { return nodes_.size(); }

    std::string tails() const {
        std::string text;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            text += "--- node " + std::to_string(i) + ":\n" + nodes_[i]->server.tail(1500);
        return text;
    }

private:
    std::vector<std::unique_ptr<cluster_node>> nodes_;
    std::vector<std::shared_ptr<feed>> feeds_;
    notifier fed_; // every wisdom and every end of a feed
    std::vector<std::size_t> dead_;
};

} // namespace wolf::test
