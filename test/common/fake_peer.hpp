#pragma once

// A peer without a socket, for the unit tests of what reaches connections through the registry: the
// registry itself, the broadcaster and the watchdog.

#include "registry.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wolf::test {

/** A peer that records what the server would have sent, with a queue bound like a session's. */
class fake_peer final : public peer {
public:
    explicit fake_peer(std::string id, registry* reg = nullptr, std::size_t capacity = 64)
        : peer(std::move(id))
        , registry_(reg)
        , capacity_(capacity) {}

    bool offer(shared_frame const& frame) override {
        if (frames.size() >= capacity_) return false;
        frames.push_back(frame);
        return true;
    }
    void close(std::uint16_t code, std::string_view reason) override {
        closes.push_back({code, std::string(reason)});
        if (registry_) registry_->begin_close(*this);
    }
    void abort() override { ++aborts; }
    bool transport_closing() const noexcept override { return failing; }
    std::optional<steady_clock::time_point> write_pending_since() const noexcept override {
        return write_started;
    }
    void write_began(steady_clock::time_point now) noexcept { write_started = now; }
    void write_ended() noexcept { write_started.reset(); }

    bool failing = false;
    std::optional<steady_clock::time_point> write_started; // a write waits on the socket since then
    std::vector<shared_frame> frames;
    std::vector<std::pair<std::uint16_t, std::string>> closes;
    int aborts = 0;

private:
    registry* registry_;
    std::size_t capacity_;
};

} // namespace wolf::test
