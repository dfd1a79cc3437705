#pragma once

#include "support/net.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <string>
#include <variant>

namespace wolf {

/** The stream of a connection on a TLS port (--tls-cert/--tls-key); a plain port uses beast::tcp_stream. */
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/**
 * A server context for --tls-cert (a PEM certificate chain) and --tls-key (its PEM private key), TLS 1.2
 * or later, or the one-line error that says which file could not be used and why.
 */
std::variant<net::ssl::context, std::string> load_tls_context(std::string const& cert_file,
                                                              std::string const& key_file);

} // namespace wolf
