#include "fanout_ticks.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>

namespace wolf::bench {

std::uint64_t content_hash(std::string_view frame) noexcept {
    return std::hash<std::string_view>{}(frame);
}

std::vector<tick> group_ticks(std::vector<receipt>& receipts, std::int64_t interval_ns) {
    std::sort(receipts.begin(), receipts.end(), [](receipt const& a, receipt const& b) {
        return std::tie(a.content, a.received_ns) < std::tie(b.content, b.received_ns);
    });
    auto const reach = interval_ns / 2;
    std::vector<tick> ticks;
    std::vector<std::uint32_t> seen_in; // per node: the tick number (1-based) it last appeared in
    for (std::size_t i = 0; i < receipts.size();) {
        tick t{receipts[i].received_ns, receipts[i].received_ns, 0, receipts[i].received_ns, 0};
        auto const content = receipts[i].content;
        auto const number = static_cast<std::uint32_t>(ticks.size() + 1);
        for (; i < receipts.size() && receipts[i].content == content &&
               receipts[i].received_ns - t.first_ns <= reach;
             ++i) {
            t.last_ns = receipts[i].received_ns;
            ++t.receipts;
            // Sorted by time within the tick: a node's first receipt here is its earliest.
            auto const node = receipts[i].node;
            if (node >= seen_in.size()) seen_in.resize(node + 1, 0);
            if (seen_in[node] != number) {
                seen_in[node] = number;
                t.last_node_first_ns = receipts[i].received_ns;
                ++t.nodes;
            }
        }
        ticks.push_back(t);
    }
    std::sort(ticks.begin(), ticks.end(),
              [](tick const& a, tick const& b) { return a.first_ns < b.first_ns; });
    return ticks;
}

double percentile(std::vector<double>& values, double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    auto const rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
    return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

} // namespace wolf::bench
