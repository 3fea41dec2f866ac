package lua

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

// Lib is gong's embedded Lua tree: the bundled plugins, as
// kong/plugins/<name>/handler.lua and schema.lua, found after the
// lua_package_path directories, and the library modules plugins require.
//
//go:embed all:lib
var Lib embed.FS

// LibModules returns the embedded library modules by module name
// (kong/tools/sandbox.lua is kong.tools.sandbox, x/init.lua is x): every
// file but the bundled plugins' handler.lua and schema.lua, which load
// only when the plugin is enabled. Helpers beside them load always, as
// Kong's post-function needs pre-function's.
func LibModules() (map[string]string, error) {
	modules := map[string]string{}
	err := fs.WalkDir(Lib, "lib", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".lua") {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, "lib/"), ".lua")
		dir, base := path.Split(rel)
		if strings.HasPrefix(dir, "kong/plugins/") && strings.Count(dir, "/") == 3 && (base == "handler" || base == "schema") {
			return nil
		}
		if base == "init" {
			rel = strings.TrimSuffix(dir, "/")
		}
		src, err := fs.ReadFile(Lib, p)
		if err != nil {
			return err
		}
		modules[strings.ReplaceAll(rel, "/", ".")] = string(src)
		return nil
	})
	return modules, err
}

// BundledPlugins returns the names of the plugins in the embedded tree
// (every folder of lib/kong/plugins with a handler.lua), sorted: what
// kong.conf's "bundled" enables. Adding a plugin's folder adds it here.
func BundledPlugins() []string {
	entries, err := fs.ReadDir(Lib, "lib/kong/plugins")
	if err != nil {
		panic("embedded Lua tree without lib/kong/plugins: " + err.Error())
	}
	var names []string
	for _, e := range entries {
		if _, err := fs.Stat(Lib, path.Join("lib/kong/plugins", e.Name(), "handler.lua")); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	return names
}
