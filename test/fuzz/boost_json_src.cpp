// Boost.JSON compiled into the fuzzers with their instrumentation, instead of Debian's uninstrumented
// libboost_json: libFuzzer then sees the parser's branches, and ASan its memory.
#include <boost/json/src.hpp>
