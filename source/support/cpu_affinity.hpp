#pragma once

// Placing event-loop threads on CPUs of their own (--cpu-affinity).

#include <optional>
#include <pthread.h>
#include <vector>

namespace wolf {

/** The CPUs this process may run on, ascending: its affinity mask, as a container or taskset left it. */
std::vector<int> allowed_cpus();

/** Runs `thread` (the calling one by default) on `cpu` only; false if the system refused. */
bool pin_thread(int cpu, pthread_t thread = pthread_self());

/**
 * The CPU event-loop thread `index` (0 for the main thread) should run on, with `threads` threads and
 * --cpu-affinity on: the allowed CPUs in turn. nullopt when pinning would not help: one thread, or one
 * allowed CPU.
 */
std::optional<int> cpu_for_thread(std::size_t index, std::size_t threads, std::vector<int> const& allowed);

} // namespace wolf
