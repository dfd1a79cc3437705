#pragma once

// Namespace aliases and the time types every component shares; include what you use from Boost where
// you use it.
#include <chrono>

namespace boost::asio::ip {}
namespace boost::beast::http {}
namespace boost::beast::websocket {}
namespace boost::json {}
namespace boost::asio::ssl {
class context; // named by pointer in headers; tls.hpp has the definition
} // namespace boost::asio::ssl

namespace wolf {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace json = boost::json;

using steady_clock = std::chrono::steady_clock;
using duration = std::chrono::milliseconds; // every setting's and timer's unit
} // namespace wolf
