#include "assets.hpp"

#include <array>
#include <fstream>
#include <sstream>
#include <utility>

namespace wolf {

std::optional<std::string_view> embedded_file_data(std::string_view name) noexcept {
    for (auto const& file : embedded_files())
        if (file.name == name) return file.data;
    return std::nullopt;
}

std::string_view content_type_for(std::string_view name) noexcept {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 12> types{{
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".webmanifest", "application/manifest+json"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
        {".webp", "image/webp"},
    }};
    for (auto const& [extension, type] : types)
        if (name.ends_with(extension)) return type;
    return "application/octet-stream";
}

namespace {

bool is_servable_name(std::string_view name) {
    if (name.empty() || name.front() == '.') return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_'))
            return false;
    return true;
}

} // namespace

asset_store asset_store::embedded() {
    asset_store store;
    store.source_ = "built-in";
    for (auto const& file : embedded_files())
        if (file.name != default_quotes_name && is_servable_name(file.name))
            store.files_.emplace(std::string(file.name), file.data);
    return store;
}

std::variant<asset_store, std::string> asset_store::from_directory(std::filesystem::path const& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return "--assets: '" + dir.string() + "' is not a directory";
    asset_store store;
    store.source_ = dir.string();
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        // symlink_status: a link is never followed, even one pointing at a regular file.
        auto const status = it->symlink_status(ec);
        auto const name = it->path().filename().string();
        if (!ec && fs::is_regular_file(status) && is_servable_name(name) && name != default_quotes_name)
            store.files_.emplace(name, it->path());
    }
    if (ec) return "--assets: cannot read '" + dir.string() + "': " + ec.message();
    return store;
}

std::optional<std::string> asset_store::read(std::string_view name) const {
    auto const it = files_.find(name);
    if (it == files_.end()) return std::nullopt;
    if (auto const* data = std::get_if<std::string_view>(&it->second)) return std::string(*data);

    auto const& path = std::get<std::filesystem::path>(it->second);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec))) return std::nullopt;
    std::ifstream file(path, std::ios::binary);
    if (!file) return std::nullopt;
    std::ostringstream contents;
    contents << file.rdbuf();
    return std::move(contents).str();
}

} // namespace wolf
