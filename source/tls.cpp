#include "tls.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace wolf {

std::variant<net::ssl::context, std::string> load_tls_context(std::string const& cert_file,
                                                              std::string const& key_file) {
    net::ssl::context context(net::ssl::context::tls_server);
    // What the first failure leaves in OpenSSL's thread-local error queue must not surface later.
    struct clear_errors {
        ~clear_errors() { ERR_clear_error(); }
    } const cleanup;

    context.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_compression);
    SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_mode(context.native_handle(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(context.native_handle(), 1);
    SSL_CTX_set_options(context.native_handle(), SSL_OP_NO_RENEGOTIATION);
    // An encrypted key fails to load instead of prompting for a passphrase on the terminal.
    context.set_password_callback(
        [](std::size_t, net::ssl::context::password_purpose) { return std::string(); });

    boost::system::error_code ec;
    context.use_certificate_chain_file(cert_file, ec);
    if (ec) return "--tls-cert: cannot load '" + cert_file + "': " + ec.message();
    std::string const mismatch = "--tls-key: does not match --tls-cert";
    context.use_private_key_file(key_file, net::ssl::context::pem, ec);
    // OpenSSL compares the key with the certificate already loaded as it loads the key.
    if (ec && ec.category() == net::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
        return mismatch;
    if (ec) return "--tls-key: cannot load '" + key_file + "': " + ec.message();
    if (SSL_CTX_check_private_key(context.native_handle()) != 1) return mismatch;
    return context;
}

} // namespace wolf
