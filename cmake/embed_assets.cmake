# wolf_embed_assets(OUTPUT file.cpp FILES a b c)
#
# Generates a translation unit holding every file as a byte array plus a table of
# {name, bytes}; see source/assets.hpp for the interface it implements. Regenerated when any
# input changes, so editing assets/ and rebuilding is enough.
set(WOLF_EMBED_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/embed_assets_run.cmake")

function(wolf_embed_assets)
    cmake_parse_arguments(ARG "" "OUTPUT" "FILES" ${ARGN})
    list(SORT ARG_FILES)
    string(REPLACE ";" "|" files_arg "${ARG_FILES}")
    add_custom_command(
        OUTPUT "${ARG_OUTPUT}"
        COMMAND "${CMAKE_COMMAND}" "-DOUTPUT=${ARG_OUTPUT}" "-DFILES=${files_arg}" -P "${WOLF_EMBED_SCRIPT}"
        DEPENDS ${ARG_FILES} "${WOLF_EMBED_SCRIPT}"
        COMMENT "Embedding ${CMAKE_CURRENT_SOURCE_DIR}/assets"
        VERBATIM)
endfunction()
