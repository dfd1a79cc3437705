#pragma once

#include "config.hpp"

#include <boost/program_options/errors.hpp>
#include <cstdint>
#include <string>

namespace wolf {

/**
 * Option values read as text and validated by hand, so every mistake is one clear line. Shared by the
 * server's command line and the benchmarks'.
 */
struct bad_option_value : boost::program_options::error {
    /** `option` is named as the user wrote it: "--port", "WOLF_PORT" or "wolf.ini: port". */
    bad_option_value(std::string const& option, std::string const& value, std::string const& expected)
        : boost::program_options::error(option + ": '" + value + "' is not " + expected) {}
};

/** A whole number in [min, max], or bad_option_value naming `option`. */
std::uint64_t parse_count(std::string const& option, std::string const& text, std::uint64_t min,
                          std::uint64_t max);

/** A duration as parse_duration reads it, or bad_option_value. */
duration parse_duration_option(std::string const& option, std::string const& text);

} // namespace wolf
