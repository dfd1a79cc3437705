#define BOOST_TEST_MODULE frame
// A broadcast frame built once: its header and payload, as RFC 6455 and Beast's client read them.
#include "common/loopback.hpp"
#include "frame.hpp"

#include <boost/test/unit_test.hpp>

using namespace wolf;
using namespace wolf::test;
using namespace std::chrono_literals;
using tcp = net::ip::tcp;

BOOST_AUTO_TEST_SUITE(wire_frames)

BOOST_AUTO_TEST_CASE(the_header_is_0x81_then_the_shortest_length_form_without_a_mask) {
    struct expectation {
        std::size_t size;
        std::vector<unsigned char> header;
    };
    std::vector<expectation> const cases{
        {0, {0x81, 0x00}},
        {1, {0x81, 0x01}},
        {125, {0x81, 0x7D}},
        {126, {0x81, 0x7E, 0x00, 0x7E}},
        {127, {0x81, 0x7E, 0x00, 0x7F}},
        {65535, {0x81, 0x7E, 0xFF, 0xFF}},
        {65536, {0x81, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}},
        {70000, {0x81, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x70}},
    };
    for (auto const& c : cases) {
        BOOST_TEST_CONTEXT("payload of " << c.size << " bytes") {
            wire_frame const frame(numbered_payload(c.size, c.size));
            auto const bytes = as_bytes(frame.bytes());
            BOOST_TEST_REQUIRE(bytes.size() == c.header.size() + c.size);
            std::vector<unsigned char> const header(bytes.begin(),
                                                    bytes.begin() + static_cast<long>(c.header.size()));
            BOOST_TEST(header == c.header, boost::test_tools::per_element());
        }
    }
}

BOOST_AUTO_TEST_CASE(payload_is_exactly_the_payload_and_follows_the_header) {
    for (std::size_t size : {0, 1, 125, 126, 65535, 65536, 70000}) {
        BOOST_TEST_CONTEXT("payload of " << size << " bytes") {
            auto const payload = numbered_payload(size, size);
            wire_frame const frame(payload);
            BOOST_TEST(frame.payload() == payload);
            BOOST_TEST(frame.bytes().ends_with(payload));
            BOOST_TEST(frame.bytes().size() - frame.payload().size() == (size < 126     ? 2u
                                                                         : size < 65536 ? 4u
                                                                                        : 10u));
        }
    }
}

BOOST_AUTO_TEST_CASE(make_text_frame_encodes_the_same_bytes_as_wire_frame) {
    for (std::size_t size : {0, 125, 126, 65536}) {
        auto const payload = numbered_payload(size, size);
        auto const shared = make_text_frame(payload);
        BOOST_REQUIRE(shared);
        BOOST_TEST(shared->bytes() == wire_frame(payload).bytes());
        BOOST_TEST(shared->payload() == payload);
    }
}

BOOST_AUTO_TEST_CASE(a_prebuilt_frame_is_written_as_given_without_a_second_header) {
    // A close frame with code 1000, as the WebSocket layer makes it.
    std::string const bytes("\x88\x02\x03\xe8", 4);
    wire_frame const frame(wire_frame::prebuilt, bytes);
    BOOST_TEST(frame.bytes() == bytes);
}

BOOST_AUTO_TEST_CASE(a_beast_client_reads_wire_frames_of_every_length_form) {
    websocket_pair pair;
    std::vector<std::string> payloads;
    for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 70000})
        payloads.push_back(numbered_payload(size, size));
    for (auto const& payload : payloads)
        pair.server->frames.send(make_text_frame(payload));
    for (auto const& payload : payloads) {
        auto const got = pair.client_reads();
        BOOST_TEST(got.size() == payload.size());
        BOOST_TEST((got == payload));
    }
}

BOOST_AUTO_TEST_SUITE_END()
