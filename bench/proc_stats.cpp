#include "proc_stats.hpp"

#include <charconv>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <unistd.h>

namespace wolf::bench {
namespace {

std::string proc_path(pid_t pid, std::string_view leaf) {
    return "/proc/" + std::to_string(pid) + "/" + std::string(leaf);
}

std::optional<std::uint64_t> to_number(std::string_view text) {
    std::uint64_t value = 0;
    auto const [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data()) return std::nullopt;
    return value;
}

} // namespace

std::optional<std::uint64_t> read_rss_kib(pid_t pid) {
    std::ifstream status(proc_path(pid, "status"));
    std::string line;
    // "VmRSS:\t    5124 kB"
    while (std::getline(status, line)) {
        if (!line.starts_with("VmRSS:")) continue;
        auto const digits = line.find_first_of("0123456789");
        if (digits == std::string::npos) return std::nullopt;
        return to_number(std::string_view(line).substr(digits));
    }
    return std::nullopt;
}

std::optional<std::uint64_t> count_open_fds(pid_t pid) {
    DIR* dir = ::opendir(proc_path(pid, "fd").c_str());
    if (!dir) return std::nullopt;
    std::uint64_t count = 0;
    while (dirent const* entry = ::readdir(dir)) {
        std::string_view const name = entry->d_name;
        if (name != "." && name != "..") ++count;
    }
    ::closedir(dir);
    return count;
}

std::optional<double> read_cpu_seconds(pid_t pid) {
    std::ifstream file(proc_path(pid, "stat"));
    std::string stat;
    if (!std::getline(file, stat)) return std::nullopt;
    // The command name (field 2) is in parentheses and may hold spaces or ')': fields are counted from the
    // last ')'. After it come field 3 (state) ... field 14 (utime) and 15 (stime).
    auto const close = stat.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(stat.substr(close + 1));
    std::string field;
    std::uint64_t utime = 0;
    std::uint64_t stime = 0;
    for (int number = 3; number <= 15 && fields >> field; ++number) {
        if (number == 14 || number == 15) {
            auto const value = to_number(field);
            if (!value) return std::nullopt;
            (number == 14 ? utime : stime) = *value;
        }
    }
    if (!fields) return std::nullopt;
    auto const ticks_per_second = ::sysconf(_SC_CLK_TCK);
    if (ticks_per_second <= 0) return std::nullopt;
    return static_cast<double>(utime + stime) / static_cast<double>(ticks_per_second);
}

std::optional<proc_sample> sample_process(pid_t pid) {
    auto const rss = read_rss_kib(pid);
    auto const fds = count_open_fds(pid);
    auto const cpu = read_cpu_seconds(pid);
    if (!rss || !fds || !cpu) return std::nullopt;
    return proc_sample{*rss, *fds, *cpu};
}

} // namespace wolf::bench
