#pragma once

// What /proc says about another process: resident memory, open descriptors, CPU time. Linux only.

#include <cstdint>
#include <optional>
#include <sys/types.h>

namespace wolf::bench {

/** One reading of a process's resources. */
struct proc_sample {
    std::uint64_t rss_kib = 0;  // VmRSS in /proc/PID/status
    std::uint64_t open_fds = 0; // entries in /proc/PID/fd
    double cpu_seconds = 0;     // utime + stime in /proc/PID/stat
};

/** VmRSS in KiB; nullopt if the process is gone or the field is missing (a zombie has none). */
std::optional<std::uint64_t> read_rss_kib(pid_t pid);

/** The number of open file descriptors; nullopt if /proc/PID/fd cannot be read (gone, not ours). */
std::optional<std::uint64_t> count_open_fds(pid_t pid);

/** User plus system CPU time in seconds, from the clock ticks in /proc/PID/stat. */
std::optional<double> read_cpu_seconds(pid_t pid);

/** All three at once; nullopt if any of them cannot be read. */
std::optional<proc_sample> sample_process(pid_t pid);

} // namespace wolf::bench
