#include "support/entropy.hpp"

#include <boost/uuid/detail/random_provider.hpp>
#include <cstdint>
#include <vector>

namespace wolf {

std::string random_hex(std::size_t bytes) {
    std::vector<std::uint8_t> random(bytes);
    boost::uuids::detail::random_provider().get_random_bytes(random.data(), random.size());
    constexpr char digits[] = "0123456789abcdef";
    std::string text;
    text.reserve(2 * bytes);
    for (auto const b : random) {
        text.push_back(digits[b >> 4]);
        text.push_back(digits[b & 0x0F]);
    }
    return text;
}

} // namespace wolf
