#include "support/cpu_affinity.hpp"

#include <sched.h>

namespace wolf {

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    return cpus;
}

bool pin_thread(int cpu, pthread_t thread) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(thread, sizeof set, &set) == 0;
}

std::optional<int> cpu_for_thread(std::size_t index, std::size_t threads, std::vector<int> const& allowed) {
    if (threads < 2 || allowed.size() < 2) return std::nullopt;
    return allowed[index % allowed.size()];
}

} // namespace wolf
