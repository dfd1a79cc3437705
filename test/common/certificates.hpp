#pragma once

#include "support/net.hpp"

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <string>
#include <vector>

namespace wolf::test {

/** Runs the openssl CLI (from PATH) with these arguments; the test fails unless it exits 0. */
void run_openssl(std::vector<std::string> args);

/**
 * A fresh self-signed certificate for CN=localhost (names localhost and 127.0.0.1; EC P-256, one day) and its
 * key, made with the openssl CLI in a new temporary directory that goes away with this object.
 */
class test_certificate {
public:
    test_certificate();
    test_certificate(test_certificate const&) = delete;
    test_certificate& operator=(test_certificate const&) = delete;
    ~test_certificate();

    /** The directory holding cert.pem and key.pem; tests may put more files in it. */
    std::filesystem::path const& dir() const noexcept { return dir_; }
    std::filesystem::path cert() const { return dir_ / "cert.pem"; }
    std::filesystem::path key() const { return dir_ / "key.pem"; }

    /** The server's context, loaded as wolf-wisdom loads --tls-cert and --tls-key. */
    net::ssl::context server_context() const;
    /** A client context that trusts this certificate only and requires the server to present it. */
    net::ssl::context client_context() const;

private:
    std::filesystem::path dir_;
};

} // namespace wolf::test
