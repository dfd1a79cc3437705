#pragma once

#include <cstddef>
#include <string>

namespace wolf {

/** `bytes` bytes of the operating system's entropy as lowercase hex digits (twice as many characters). */
std::string random_hex(std::size_t bytes);

} // namespace wolf
