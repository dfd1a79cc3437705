#pragma once

#include "cluster/redis_url.hpp"
#include "support/net.hpp"

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <variant>

namespace wolf {

/**
 * A client context for Redis over TLS 1.2 or later: the server's certificate is verified against `files.ca`
 * (or the system's store), and the client certificate is shown if given. Or the one-line error that names
 * the setting whose file could not be used, and why.
 */
std::variant<std::shared_ptr<net::ssl::context>, std::string>
make_redis_tls_context(redis_tls_files const& files);

} // namespace wolf
