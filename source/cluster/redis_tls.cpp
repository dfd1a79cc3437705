#include "cluster/redis_tls.hpp"

#include <boost/asio/ssl/error.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace wolf {

std::variant<std::shared_ptr<net::ssl::context>, std::string>
make_redis_tls_context(redis_tls_files const& files) {
    auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
    // What a failure leaves in OpenSSL's thread-local error queue must not surface later.
    struct clear_errors {
        ~clear_errors() { ERR_clear_error(); }
    } const cleanup;

    context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_compression);
    SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
    context->set_password_callback(
        [](std::size_t, net::ssl::context::password_purpose) { return std::string(); });
    context->set_verify_mode(net::ssl::verify_peer);

    boost::system::error_code ec;
    if (files.ca.empty()) {
        context->set_default_verify_paths(ec);
        if (ec) return "cannot use the system's certificate store: " + ec.message();
    } else {
        context->load_verify_file(files.ca, ec);
        if (ec) return "--redis-tls-ca: cannot load '" + files.ca + "': " + ec.message();
    }
    if (!files.cert.empty()) {
        context->use_certificate_chain_file(files.cert, ec);
        if (ec) return "--redis-tls-cert: cannot load '" + files.cert + "': " + ec.message();
        context->use_private_key_file(files.key, net::ssl::context::pem, ec);
        if (ec && ec.category() == net::error::get_ssl_category() &&
            ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
            return "--redis-tls-key: does not match --redis-tls-cert";
        if (ec) return "--redis-tls-key: cannot load '" + files.key + "': " + ec.message();
        if (SSL_CTX_check_private_key(context->native_handle()) != 1)
            return "--redis-tls-key: does not match --redis-tls-cert";
    }
    return context;
}

} // namespace wolf
