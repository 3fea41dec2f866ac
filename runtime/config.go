package runtime

import (
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
)

// KongCompatibility is the Kong release line whose configuration gong reads.
const KongCompatibility = "3.x"

// LuaVersion is the Lua language version plugins run on.
const LuaVersion = "Lua 5.1 (gopher-lua)"

// BundledPlugins are the plugins the "bundled" value of kong.conf's
// plugins property enables. gong cannot run Lua plugins yet, so it bundles
// none; a configured plugin is refused when a generation is built.
var BundledPlugins []string

func declarativeOptions(c *conf.Config) declarative.Options {
	plugins := c.EnabledPlugins(BundledPlugins)
	if plugins == nil {
		plugins = []string{}
	}
	return declarative.Options{RouterFlavor: c.RouterFlavor, Plugins: plugins}
}

// LoadDeclarative reads the declarative configuration kong.conf names:
// declarative_config_string first, as Kong does, then declarative_config;
// with neither, the configuration is empty.
func LoadDeclarative(c *conf.Config) (*declarative.Config, error) {
	opts := declarativeOptions(c)
	switch {
	case c.DeclarativeConfigString != "":
		return declarative.Parse([]byte(c.DeclarativeConfigString), "", opts)
	case c.DeclarativeConfig != "":
		return declarative.LoadFile(c.DeclarativeConfig, opts)
	}
	return declarative.Parse([]byte(`{"_format_version": "3.0"}`), "", opts)
}

// ParseDeclarativeFile validates a declarative configuration file against
// the node's configuration (router flavor, enabled plugins).
func ParseDeclarativeFile(c *conf.Config, path string) (*declarative.Config, error) {
	return declarative.LoadFile(path, declarativeOptions(c))
}
