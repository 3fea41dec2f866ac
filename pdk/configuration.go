package pdk

import (
	"fmt"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// sensitivePlaceholder is what remove_sensitive shows for a secret
// (Kong's CONF_SENSITIVE_PLACEHOLDER).
const sensitivePlaceholder = "******"

// openGlobals sets kong.version, kong.version_num and kong.configuration
// (kong/pdk/init.lua).
func (p *pdk) openGlobals(L *glua.LState, kong *glua.LTable) {
	kong.RawSetString("version", glua.LString(p.opts.Version))
	kong.RawSetString("version_num", glua.LNumber(versionNum(p.opts.Version)))

	conf := toLua(L, map[string]any(p.opts.Configuration), nil).(*glua.LTable)
	sensitive := func(k glua.LValue) bool {
		ks, ok := k.(glua.LString)
		return ok && p.opts.Sensitive != nil && p.opts.Sensitive(string(ks))
	}
	removeSensitive := L.NewFunction(func(L *glua.LState) int {
		c := deepCopy(L, conf, map[*glua.LTable]*glua.LTable{}).(*glua.LTable)
		// $refs holds the unresolved vault references of non-sensitive
		// fields: conf_loader's remove_sensitive puts them back.
		if refs, ok := c.RawGetString("$refs").(*glua.LTable); ok {
			refs.ForEach(func(k, v glua.LValue) {
				if !sensitive(k) {
					c.RawSet(k, v)
				}
			})
			c.RawSetString("$refs", glua.LNil)
		}
		var secrets []glua.LValue
		c.ForEach(func(k, v glua.LValue) {
			if sensitive(k) && glua.LVAsBool(v) {
				secrets = append(secrets, k)
			}
		})
		for _, k := range secrets {
			c.RawSet(k, glua.LString(sensitivePlaceholder))
		}
		L.Push(c)
		return 1
	})
	kong.RawSetString("configuration", readOnly(L, conf,
		map[string]glua.LValue{"remove_sensitive": removeSensitive}, "cannot write to configuration"))
}

// versionNum is kong/pdk/init.lua's formula, kept as is:
// tonumber(string.format("%d%.2d%.2d", major*100, minor*10, patch)),
// so 3.10.0 gives 30010000.
func versionNum(v string) float64 {
	parts := strings.SplitN(strings.SplitN(v, "-", 2)[0], ".", 3)
	nums := [3]int{}
	for i := 0; i < len(parts) && i < 3; i++ {
		nums[i], _ = strconv.Atoi(parts[i])
	}
	n, _ := strconv.ParseFloat(fmt.Sprintf("%d%.2d%.2d", nums[0]*100, nums[1]*10, nums[2]), 64)
	return n
}
