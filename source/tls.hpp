#pragma once

#include "support/net.hpp"

#include <boost/asio/ssl/context.hpp>
#include <string>
#include <variant>

namespace wolf {

/**
 * A server context for --tls-cert (a PEM certificate chain) and --tls-key (its PEM private key), TLS 1.2
 * or later, or the one-line error that says which file could not be used and why. Its connections are
 * tls_sockets (tls_socket.hpp): record buffers are released while idle, OpenSSL reads ahead (one recv per
 * batch of records), a frame it could not send whole is retried from wherever it now is, and clients
 * cannot renegotiate.
 */
std::variant<net::ssl::context, std::string> load_tls_context(std::string const& cert_file,
                                                              std::string const& key_file);

} // namespace wolf
