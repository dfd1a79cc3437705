#include "support/process_stats.hpp"

#include <charconv>
#include <dirent.h>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

namespace wolf {
namespace {

std::optional<std::uint64_t> to_number(std::string_view text) {
    std::uint64_t value = 0;
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data()) return std::nullopt;
    return value;
}

std::optional<std::uint64_t> count_entries(std::string const& directory) {
    DIR* dir = ::opendir(directory.c_str());
    if (!dir) return std::nullopt;
    std::uint64_t count = 0;
    while (dirent const* entry = ::readdir(dir)) {
        std::string_view const name = entry->d_name;
        if (name != "." && name != "..") ++count;
    }
    ::closedir(dir);
    return count;
}

/** The fields of /proc/PID/stat from field 3 (state) on: element i is field i + 3. */
std::optional<std::vector<std::string>> read_stat_fields(std::string const& proc) {
    std::ifstream file(proc + "/stat");
    std::string stat;
    if (!std::getline(file, stat)) return std::nullopt;
    // The command name (field 2) is in parentheses and may hold spaces or ')': count from the last ')'.
    auto const close = stat.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream rest(stat.substr(close + 1));
    std::vector<std::string> fields;
    for (std::string field; rest >> field;)
        fields.push_back(std::move(field));
    return fields;
}

/** The soft limit on the line "Max open files  1024  1048576  files" of /proc/PID/limits. */
std::optional<std::uint64_t> read_max_fds(std::string const& proc) {
    std::ifstream file(proc + "/limits");
    std::string line;
    constexpr std::string_view label = "Max open files";
    while (std::getline(file, line)) {
        if (!line.starts_with(label)) continue;
        std::istringstream values(line.substr(label.size()));
        std::string soft;
        if (!(values >> soft)) return std::nullopt;
        if (soft == "unlimited") return std::numeric_limits<std::uint64_t>::max();
        return to_number(soft);
    }
    return std::nullopt;
}

/** When the machine booted, in seconds since the epoch: "btime N" in /proc/stat. */
std::optional<std::uint64_t> read_boot_time() {
    std::ifstream file("/proc/stat");
    std::string line;
    while (std::getline(file, line))
        if (line.starts_with("btime ")) return to_number(std::string_view(line).substr(6));
    return std::nullopt;
}

std::optional<process_stats> read_at(std::string const& proc) {
    auto const fields = read_stat_fields(proc);
    // Fields 14, 15 (utime, stime), 22 (starttime), 23 (vsize), 24 (rss) are elements 11, 12, 19, 20, 21.
    if (!fields || fields->size() < 22) return std::nullopt;
    auto const field = [&](int number) { return to_number((*fields)[static_cast<std::size_t>(number - 3)]); };
    auto const utime = field(14);
    auto const stime = field(15);
    auto const start_ticks = field(22);
    auto const vsize = field(23);
    auto const rss_pages = field(24);
    auto const open_fds = count_entries(proc + "/fd");
    auto const max_fds = read_max_fds(proc);
    auto const boot_time = read_boot_time();
    auto const ticks_per_second = ::sysconf(_SC_CLK_TCK);
    auto const page_size = ::sysconf(_SC_PAGESIZE);
    if (!utime || !stime || !start_ticks || !vsize || !rss_pages || !open_fds || !max_fds || !boot_time ||
        ticks_per_second <= 0 || page_size <= 0)
        return std::nullopt;

    auto const hz = static_cast<double>(ticks_per_second);
    process_stats stats;
    stats.resident_memory_bytes = *rss_pages * static_cast<std::uint64_t>(page_size);
    stats.virtual_memory_bytes = *vsize;
    stats.open_fds = *open_fds;
    stats.max_fds = *max_fds;
    stats.cpu_seconds = static_cast<double>(*utime + *stime) / hz;
    stats.user_cpu_seconds = static_cast<double>(*utime) / hz;
    stats.system_cpu_seconds = static_cast<double>(*stime) / hz;
    stats.start_time_seconds = static_cast<double>(*boot_time) + static_cast<double>(*start_ticks) / hz;
    return stats;
}

std::string proc_of(pid_t pid) {
    return "/proc/" + std::to_string(pid);
}

} // namespace

std::optional<process_stats> read_process_stats() {
    return read_at("/proc/self");
}

std::optional<process_stats> read_process_stats(pid_t pid) {
    return read_at(proc_of(pid));
}

std::optional<std::uint64_t> count_open_fds(pid_t pid) {
    return count_entries(proc_of(pid) + "/fd");
}

std::optional<descriptor_limit> raise_descriptor_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
    descriptor_limit result{limit.rlim_cur, limit.rlim_cur, limit.rlim_max};
    auto target = limit.rlim_max;
    if (target == RLIM_INFINITY) {
        // The kernel refuses more than fs.nr_open descriptors whatever the limit says.
        std::ifstream nr_open("/proc/sys/fs/nr_open");
        std::uint64_t most = 0;
        target = nr_open >> most && most > 0 ? most : 1u << 20;
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
        limit.rlim_cur = target;
        if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) result.soft = target;
    }
    return result;
}

} // namespace wolf
