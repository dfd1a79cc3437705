#include "frame.hpp"

#include <cstdint>

namespace wolf {

wire_frame::wire_frame(std::string_view payload, std::uint64_t offset)
    : offset_(offset) {
    constexpr unsigned char fin_text = 0x81; // FIN set, opcode 1 (text); server frames carry no mask
    auto const size = static_cast<std::uint64_t>(payload.size());
    header_size_ = size < 126 ? 2 : size <= 0xFFFF ? 4 : 10;
    bytes_.resize(header_size_ + payload.size());
    auto* out = reinterpret_cast<unsigned char*>(bytes_.data());
    out[0] = fin_text;
    if (header_size_ == 2) {
        out[1] = static_cast<unsigned char>(size);
    } else {
        // 126: a 16-bit length follows; 127: a 64-bit one; both in network byte order.
        out[1] = header_size_ == 4 ? 126 : 127;
        auto const length_bytes = header_size_ - 2;
        for (std::size_t i = 0; i < length_bytes; ++i)
            out[2 + i] = static_cast<unsigned char>(size >> (8 * (length_bytes - 1 - i)));
    }
    payload.copy(bytes_.data() + header_size_, payload.size());
}

shared_frame make_text_frame(std::string_view payload, std::uint64_t offset) {
    return std::make_shared<wire_frame const>(payload, offset);
}

} // namespace wolf
