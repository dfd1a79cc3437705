# Warnings live on an INTERFACE target that our own targets link privately, so they never leak
# into Boost's headers (imported targets are -isystem) or into a consumer's flags.
add_library(wolf_warnings INTERFACE)
target_compile_options(wolf_warnings INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Wunused -Woverloaded-virtual -Wimplicit-fallthrough
    # GCC 12 misreports Asio's awaitable frame allocator (operator new/delete pair) as mismatched.
    $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>)
