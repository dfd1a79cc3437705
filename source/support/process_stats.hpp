#pragma once

// What /proc says about a process, read the way the Prometheus client libraries' process collector reads
// it. Linux only. The server reports its own figures at /metrics; the benchmarks read the server's.

#include <cstdint>
#include <optional>
#include <sys/types.h>

namespace wolf {

/** One reading of a process's resources. */
struct process_stats {
    std::uint64_t resident_memory_bytes = 0; // rss (/proc/PID/stat field 24) × the page size
    std::uint64_t virtual_memory_bytes = 0;  // vsize (field 23)
    std::uint64_t open_fds = 0;              // entries in /proc/PID/fd
    std::uint64_t max_fds = 0;     // soft "Max open files" of /proc/PID/limits; UINT64_MAX: unlimited
    double cpu_seconds = 0;        // utime + stime (fields 14 and 15)
    double user_cpu_seconds = 0;   // utime: in the program
    double system_cpu_seconds = 0; // stime: in the kernel on its behalf
    double start_time_seconds = 0; // since the Unix epoch: starttime (field 22) + btime of /proc/stat
};

/** This process (/proc/self); nullopt if any figure cannot be read. */
std::optional<process_stats> read_process_stats();
/** Another process; nullopt if it is gone, not ours, or any figure cannot be read. */
std::optional<process_stats> read_process_stats(pid_t pid);

/** Only the open descriptors of a process (cheaper than the whole reading), or nullopt. */
std::optional<std::uint64_t> count_open_fds(pid_t pid);

/** This process's RLIMIT_NOFILE: the soft limit before and after raise_descriptor_limit, and the hard one. */
struct descriptor_limit {
    std::uint64_t was = 0;
    std::uint64_t soft = 0;
    std::uint64_t hard = 0;
};

/** Raises this process's soft RLIMIT_NOFILE to its hard limit (to fs.nr_open where the hard one is
 * unlimited), as Go's runtime and nginx's worker_rlimit_nofile do; nullopt if the limit cannot be read. */
std::optional<descriptor_limit> raise_descriptor_limit();

} // namespace wolf
