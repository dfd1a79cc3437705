#pragma once

// A server-to-client WebSocket frame built once, in full, and shared by every connection it is written
// to: the broadcaster encodes a quote's header and payload a single time per tick, and each connection
// hands the same bytes to its socket. Nothing here knows about sockets.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace wolf {

/**
 * One complete, unmasked, final text frame (RFC 6455 section 5.2): the 2-, 4- or 10-byte header and the
 * payload, contiguous, so it goes to a socket as one buffer.
 */
class wire_frame {
public:
    /** Encodes `payload` (valid UTF-8, e.g. one serialized event) as a text frame; a broadcast's frame
     * carries the broadcast's offset too (protocol section 10). */
    explicit wire_frame(std::string_view payload, std::uint64_t offset = 0);

    /** Bytes that are already framed: what the WebSocket layer writes itself (a pong, a close frame). */
    static constexpr struct prebuilt_t {
    } prebuilt{};
    wire_frame(prebuilt_t, std::string bytes) noexcept
        : bytes_(std::move(bytes))
        , header_size_(0)
        , offset_(0) {}

    /** The whole frame, header first. */
    std::string_view bytes() const noexcept { return bytes_; }
    /** The payload: the event's JSON text. */
    std::string_view payload() const noexcept { return std::string_view(bytes_).substr(header_size_); }
    /** The broadcast's offset; 0 for any other frame. */
    std::uint64_t offset() const noexcept { return offset_; }

private:
    std::string bytes_;
    std::size_t header_size_;
    std::uint64_t offset_;
};

/** A frame shared by every connection it is queued on; immutable once made. */
using shared_frame = std::shared_ptr<wire_frame const>;

/** A shared text frame carrying `payload` (a broadcast's, at `offset`). */
shared_frame make_text_frame(std::string_view payload, std::uint64_t offset = 0);

} // namespace wolf
