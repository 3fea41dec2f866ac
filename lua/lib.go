package lua

import "embed"

// Lib is gong's embedded Lua tree: the bundled plugins, as
// kong/plugins/<name>/handler.lua and schema.lua, found after the
// lua_package_path directories.
//
//go:embed lib
var Lib embed.FS
