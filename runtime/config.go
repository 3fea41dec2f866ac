package runtime

import (
	"crypto/md5"
	"fmt"
	"os"

	"github.com/gong-proxy/gong/router"
	"github.com/gong-proxy/gong/runtime/admin"
	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
	"github.com/gong-proxy/gong/runtime/runloop"
)

// KongCompatibility is the Kong release line whose configuration gong reads.
const KongCompatibility = "3.x"

// BundledPlugins are the plugins kong.conf's "bundled" enables.
var BundledPlugins = runloop.BundledPlugins

// LuaVersion is the Lua language version plugins run on.
const LuaVersion = "Lua 5.1 (gopher-lua)"

// declarativeOptions validates plugin entities against the loaded
// plugins: their names, schemas and default protocols.
func declarativeOptions(c *conf.Config, ps *runloop.Plugins) declarative.Options {
	plugins := c.EnabledPlugins(runloop.BundledPlugins)
	if plugins == nil {
		plugins = []string{}
	}
	return declarative.Options{RouterFlavor: c.RouterFlavor, Plugins: plugins,
		PluginConfig: ps.Validate, PluginProtocols: ps.Protocols, RouteExpression: router.ValidateExpression}
}

// LoadDeclarative reads the declarative configuration kong.conf names:
// declarative_config_string first, as Kong does, then declarative_config;
// with neither, the configuration is empty.
func LoadDeclarative(c *conf.Config) (*declarative.Config, error) {
	ps, err := runloop.Load(c, runloop.Host{})
	if err != nil {
		return nil, err
	}
	defer ps.Close()
	d, _, err := loadDeclarative(c, ps, nil)
	return d, err
}

// loadDeclarative reads the declarative configuration: posted (a body of
// POST /config) when it is not nil, else the one kong.conf names. It also
// returns the configuration's hash: the MD5 of its text.
func loadDeclarative(c *conf.Config, ps *runloop.Plugins, posted []byte) (*declarative.Config, string, error) {
	opts := declarativeOptions(c, ps)
	var data []byte
	var name string
	switch {
	case posted != nil:
		data = posted
	case c.DeclarativeConfigString != "":
		data = []byte(c.DeclarativeConfigString)
	case c.DeclarativeConfig != "":
		var err error
		if data, err = os.ReadFile(c.DeclarativeConfig); err != nil {
			return nil, "", err
		}
		name = c.DeclarativeConfig
	default:
		d, err := declarative.Parse([]byte(`{"_format_version": "3.0"}`), "", opts)
		return d, admin.EmptyConfigHash, err
	}
	d, err := declarative.Parse(data, name, opts)
	if err != nil {
		return nil, "", err
	}
	return d, fmt.Sprintf("%x", md5.Sum(data)), nil
}

// ParseDeclarativeFile validates a declarative configuration file against
// the node's configuration: router flavor, enabled plugins and their
// schemas.
func ParseDeclarativeFile(c *conf.Config, path string) (*declarative.Config, error) {
	ps, err := runloop.Load(c, runloop.Host{})
	if err != nil {
		return nil, err
	}
	defer ps.Close()
	return declarative.LoadFile(path, declarativeOptions(c, ps))
}
