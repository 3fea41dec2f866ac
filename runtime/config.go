package runtime

import (
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
)

// KongCompatibility is the Kong release line whose configuration gong reads.
const KongCompatibility = "3.x"

// LuaVersion is the Lua language version plugins run on.
const LuaVersion = "Lua 5.1 (gopher-lua)"

// declarativeOptions validates plugin entities against the loaded
// plugins: their names, schemas and default protocols.
func declarativeOptions(c *conf.Config, ps *pluginSet) declarative.Options {
	plugins := c.EnabledPlugins(BundledPlugins)
	if plugins == nil {
		plugins = []string{}
	}
	return declarative.Options{RouterFlavor: c.RouterFlavor, Plugins: plugins,
		PluginConfig: ps.validate, PluginProtocols: ps.protocols}
}

// LoadDeclarative reads the declarative configuration kong.conf names:
// declarative_config_string first, as Kong does, then declarative_config;
// with neither, the configuration is empty.
func LoadDeclarative(c *conf.Config) (*declarative.Config, error) {
	ps, err := loadPlugins(c, nil, "")
	if err != nil {
		return nil, err
	}
	defer ps.close()
	return loadDeclarative(c, ps)
}

func loadDeclarative(c *conf.Config, ps *pluginSet) (*declarative.Config, error) {
	opts := declarativeOptions(c, ps)
	switch {
	case c.DeclarativeConfigString != "":
		return declarative.Parse([]byte(c.DeclarativeConfigString), "", opts)
	case c.DeclarativeConfig != "":
		return declarative.LoadFile(c.DeclarativeConfig, opts)
	}
	return declarative.Parse([]byte(`{"_format_version": "3.0"}`), "", opts)
}

// ParseDeclarativeFile validates a declarative configuration file against
// the node's configuration: router flavor, enabled plugins and their
// schemas.
func ParseDeclarativeFile(c *conf.Config, path string) (*declarative.Config, error) {
	ps, err := loadPlugins(c, nil, "")
	if err != nil {
		return nil, err
	}
	defer ps.close()
	return declarative.LoadFile(path, declarativeOptions(c, ps))
}
