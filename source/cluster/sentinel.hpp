#pragma once

#include "cluster/redis_url.hpp"
#include "support/net.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace wolf {

/** What the sentinels said: the master's endpoint, and which sentinel said it. */
struct sentinel_answer {
    redis_endpoint master;    // the URL's endpoint with the master's host and port
    std::size_t sentinel = 0; // its index in the URL's list
};

/** The endpoint for sentinel `index` of `endpoint`: its address, the sentinels' login, TLS as the URL says.
 */
redis_endpoint sentinel_endpoint(redis_endpoint const& endpoint, std::size_t index);

/**
 * Asks the sentinels of `endpoint` in the URL's order (SENTINEL GET-MASTER-ADDR-BY-NAME), skipping any that
 * cannot be reached or do not know the master, each bounded by `timeout`. Returns the first answer, or why
 * none came (every sentinel's reason).
 */
net::awaitable<std::variant<sentinel_answer, std::string>> ask_sentinels(net::any_io_executor executor,
                                                                         redis_endpoint const& endpoint,
                                                                         duration timeout,
                                                                         net::ssl::context* tls);

/** The new master of a `+switch-master` message ("name old-ip old-port new-ip new-port") about `master`. */
std::optional<redis_endpoint::host_port> parse_switch_master(std::string_view payload,
                                                             std::string_view master);

} // namespace wolf
