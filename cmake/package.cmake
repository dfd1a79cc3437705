# The Debian package (scripts/package; `cmake --workflow --preset package`): CPack's DEB generator over
# the install tree of the release preset, which turns WOLF_PACKAGE on. Why CPack and not dpkg-buildpackage
# is in docs/operations.md#debian-package. The files below are made from the built binary itself by the
# `package_files` target (not part of `all`: only packaging needs help2man).

set(WOLF_DEBIAN "${CMAKE_CURRENT_SOURCE_DIR}/cmake/debian")
set(WOLF_PACKAGE_DIR "${CMAKE_CURRENT_BINARY_DIR}/package")
find_program(WOLF_HELP2MAN help2man)

# The man page, from --help and --version.
add_custom_command(
    OUTPUT "${WOLF_PACKAGE_DIR}/wolf-wisdom.1.gz"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${WOLF_PACKAGE_DIR}"
    COMMAND "$<IF:$<BOOL:${WOLF_HELP2MAN}>,${WOLF_HELP2MAN},help2man>" --no-info --section 1
            --name "real-time WebSocket broadcast server of wolf wisdom"
            --output "${WOLF_PACKAGE_DIR}/wolf-wisdom.1" "$<TARGET_FILE:wolf-wisdom>"
    COMMAND gzip -9nf "${WOLF_PACKAGE_DIR}/wolf-wisdom.1"
    DEPENDS wolf-wisdom
    COMMENT "Generating the man page with help2man"
    VERBATIM)
# /etc/wolf-wisdom/wolf-wisdom.conf: --print-config at the defaults, every setting commented out.
add_custom_command(
    OUTPUT "${WOLF_PACKAGE_DIR}/wolf-wisdom.conf"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${WOLF_PACKAGE_DIR}"
    COMMAND "${WOLF_DEBIAN}/make-conffile" "$<TARGET_FILE:wolf-wisdom>" "${WOLF_PACKAGE_DIR}/wolf-wisdom.conf"
    DEPENDS wolf-wisdom "${WOLF_DEBIAN}/make-conffile"
    VERBATIM)
# A native package's changelog.
configure_file("${WOLF_DEBIAN}/changelog.in" "${WOLF_PACKAGE_DIR}/changelog" @ONLY)
add_custom_command(
    OUTPUT "${WOLF_PACKAGE_DIR}/changelog.gz"
    COMMAND gzip -9nkf "${WOLF_PACKAGE_DIR}/changelog"
    DEPENDS "${WOLF_PACKAGE_DIR}/changelog"
    VERBATIM)
add_custom_target(package_files
    DEPENDS "${WOLF_PACKAGE_DIR}/wolf-wisdom.1.gz" "${WOLF_PACKAGE_DIR}/wolf-wisdom.conf"
            "${WOLF_PACKAGE_DIR}/changelog.gz")

install(FILES "${WOLF_PACKAGE_DIR}/wolf-wisdom.1.gz" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")
install(FILES "${WOLF_PACKAGE_DIR}/wolf-wisdom.conf" DESTINATION /etc/wolf-wisdom)
install(FILES "${WOLF_DEBIAN}/wolf-wisdom.service" DESTINATION /lib/systemd/system)
install(FILES assets/quotes.txt DESTINATION "${CMAKE_INSTALL_DATADIR}/wolf-wisdom")
install(FILES "${WOLF_DEBIAN}/copyright" "${WOLF_PACKAGE_DIR}/changelog.gz" README.md
        DESTINATION "${CMAKE_INSTALL_DOCDIR}")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME wolf-wisdom)
set(CPACK_PACKAGE_VENDOR "The Wolf Wisdom developers")
set(CPACK_PACKAGE_CONTACT "The Wolf Wisdom developers <wolf-wisdom@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # wolf-wisdom_<version>_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The synopsis, then the extended description (CPack indents its lines).
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "real-time WebSocket broadcast server of wolf wisdom")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "Clients connect over WebSocket, get an id and subscribe; one broadcaster
pushes the same quote to every subscriber at a fixed interval, and a watchdog
evicts clients that stop pinging. Lossless reconnect, Prometheus metrics, TLS,
and a cluster mode that shares one broadcast through Redis (with Sentinel and
TLS). An embedded web UI demonstrates it.")
# The libraries the binary links, computed by dpkg-shlibdeps; the maintainer scripts need
# deb-systemd-helper.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.54~)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${WOLF_DEBIAN}/conffiles" "${WOLF_DEBIAN}/postinst" "${WOLF_DEBIAN}/prerm" "${WOLF_DEBIAN}/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
