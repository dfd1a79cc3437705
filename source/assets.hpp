#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace wolf {

/** A file compiled into the binary by cmake/embed_assets.cmake. */
struct embedded_file {
    std::string_view name;
    std::string_view data;
};

/** Every file of assets/, embedded at build time (generated). */
std::span<embedded_file const> embedded_files() noexcept;

/** The embedded file of that name, if any. */
std::optional<std::string_view> embedded_file_data(std::string_view name) noexcept;

/** The Content-Type for a file name, by its extension. */
std::string_view content_type_for(std::string_view name) noexcept;

/**
 * The UI's static files, by name ("index.html", "app.js", ...), from the binary or from a directory.
 * Only names fixed when the store is made can be served, so no request path can reach anything
 * else: no "..", no subdirectories, no symlinks.
 */
class asset_store {
public:
    /** The embedded UI (every embedded file but the quote deck). */
    static asset_store embedded();

    /** Regular files directly inside `dir` (symlinks and dot-files skipped), read from disk on each request
     * so UI edits show on reload. Returns a one-line error if `dir` is not a readable directory. */
    static std::variant<asset_store, std::string> from_directory(std::filesystem::path const& dir);

    /** The file's bytes, or nullopt if the name is not in the set (or the file vanished from disk). */
    std::optional<std::string> read(std::string_view name) const;

    bool contains(std::string_view name) const { return files_.find(name) != files_.end(); }
    std::size_t size() const noexcept { return files_.size(); }
    std::string const& source() const noexcept { return source_; }

private:
    // name -> embedded bytes or path on disk
    std::map<std::string, std::variant<std::string_view, std::filesystem::path>, std::less<>> files_;
    std::string source_;
};

/** The name of the embedded default quote deck. */
inline constexpr std::string_view default_quotes_name = "quotes.txt";

} // namespace wolf
