#include "common/certificates.hpp"

#include "common/process.hpp"
#include "tls.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <variant>

namespace wolf::test {

void run_openssl(std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/env", "openssl"});
    auto const result = run_command(args);
    BOOST_REQUIRE_MESSAGE(result.exit_code == 0,
                          "openssl " << args[2] << " failed (" << result.exit_code << "): " << result.output);
}

test_certificate::test_certificate() {
    std::string pattern = (std::filesystem::temp_directory_path() / "wolf-tls-XXXXXX").string();
    BOOST_REQUIRE_MESSAGE(::mkdtemp(pattern.data()) != nullptr, "mkdtemp " << pattern);
    dir_ = pattern;
    run_openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-days", "1", "-subj", "/CN=localhost", "-addext",
                 "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key().string(), "-out",
                 cert().string()});
}

test_certificate::~test_certificate() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

net::ssl::context test_certificate::server_context() const {
    auto loaded = load_tls_context(cert().string(), key().string());
    auto const* error = std::get_if<std::string>(&loaded);
    BOOST_REQUIRE_MESSAGE(!error, (error ? *error : ""));
    return std::get<net::ssl::context>(std::move(loaded));
}

net::ssl::context test_certificate::client_context() const {
    net::ssl::context context(net::ssl::context::tls_client);
    context.set_verify_mode(net::ssl::verify_peer);
    context.load_verify_file(cert().string());
    return context;
}

} // namespace wolf::test
