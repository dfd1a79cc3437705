#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace wolf {

/**
 * Where the cluster's Redis is and how to log in: what a `redis://` URL says, or a `redis+sentinel://` one,
 * whose sentinels name the master (host and port are then those of the master they named, once asked).
 */
struct redis_endpoint {
    struct host_port {
        std::string host; // a name or an address (an IPv6 address without its brackets)
        std::uint16_t port = 0;
    };

    std::string host;
    std::uint16_t port = 6379;
    std::string username; // Redis 6 ACL user; empty: AUTH with the password alone
    std::string password; // empty: no AUTH
    unsigned db = 0;      // SELECT unless 0
    bool tls = false;     // rediss://: TLS, the server's certificate verified

    // Sentinel: the sentinels to ask, in order, for the master named `master_name`, and their own login.
    std::vector<host_port> sentinels; // empty: `host` and `port` are the Redis to use
    std::string master_name;
    std::string sentinel_username;
    std::string sentinel_password;

    /** "host:port" of the Redis (an IPv6 host in brackets). */
    std::string address() const;
    /** The URL again with every password replaced by `***`: what logs and --print-config show. */
    std::string display() const;
};

/** What a `rediss://` connection trusts and shows: --redis-tls-ca, --redis-tls-cert, --redis-tls-key. */
struct redis_tls_files {
    std::string ca;   // PEM certificates to trust; empty: the system's store
    std::string cert; // PEM client certificate (chain), for a Redis with tls-auth-clients; empty: none
    std::string key;  // its PEM private key
};

/**
 * Reads `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://` for TLS (user and password
 * percent-decoded, an IPv6 host in brackets, port 6379 and database 0 by default), or
 * `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB][?sentinel_user=U&sentinel_password=P]`
 * (`rediss+sentinel://` for TLS to the sentinels and the master; sentinels on port 26379 by default; the
 * user information is the master's login, the query the sentinels'; '@' in a query value percent-encoded).
 * Returns the endpoint, or the reason the text is not one, in words that never repeat the password.
 */
std::variant<redis_endpoint, std::string> parse_redis_url(std::string_view text);

/** `text` with the password of a URL-shaped value masked, for an error message about it. */
std::string mask_redis_url(std::string_view text);

} // namespace wolf
