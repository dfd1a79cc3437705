#pragma once

// Namespace aliases only; include what you use from Boost where you use it.
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
} // namespace wolf
