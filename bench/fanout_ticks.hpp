#pragma once

// Telling broadcast ticks apart from what subscribers received. The protocol has no tick number, so a
// tick is a set of receipts with the same frame content, close together in time.

#include <cstdint>
#include <string_view>
#include <vector>

namespace wolf::bench {

/** One wisdom_distribution received by one subscriber. */
struct receipt {
    std::uint64_t content = 0;    // hash of the whole frame
    std::int64_t received_ns = 0; // kernel receive time, CLOCK_REALTIME nanoseconds
    std::int64_t lag_ns = 0;      // from the kernel's receipt to the client processing it
    std::uint32_t node = 0;       // which server (of several --port values) the subscriber is connected to
};

/** One tick as the subscribers saw it. */
struct tick {
    std::int64_t first_ns = 0; // earliest receipt
    std::int64_t last_ns = 0;  // latest receipt
    std::uint64_t receipts = 0;
    // Each node's earliest receipt: the latest of those and the earliest (= first_ns), and how many nodes.
    std::int64_t last_node_first_ns = 0;
    std::uint32_t nodes = 0;
    std::int64_t spread_ns() const noexcept { return last_ns - first_ns; }
    /** Between the first node and the last one delivering this tick (their earliest receipts). */
    std::int64_t node_spread_ns() const noexcept { return last_node_first_ns - first_ns; }
};

/** The hash receipts are grouped by. */
std::uint64_t content_hash(std::string_view frame) noexcept;

/**
 * Groups receipts into ticks: a receipt joins the tick of the same content whose first receipt is at most
 * half an interval earlier, else it starts a new one. (A quote repeats only after the whole deck has been
 * dealt, dozens of intervals later, so content alone would merge ticks. Nodes of one cluster send the same
 * bytes for a tick, so their receipts group together.) Sorts `receipts` in place; the ticks come back
 * ordered by their first receipt.
 */
std::vector<tick> group_ticks(std::vector<receipt>& receipts, std::int64_t interval_ns);

/** The nearest-rank percentile (0 < p <= 100) of `values`, which it sorts; 0 for none. */
double percentile(std::vector<double>& values, double p);

} // namespace wolf::bench
