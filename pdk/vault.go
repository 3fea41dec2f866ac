package pdk

import (
	glua "github.com/yuin/gopher-lua"

	"github.com/gong-proxy/gong/vault"
)

// Vault resolves the references kong.vault.get is given. The runtime
// backs it with its generation's resolver (package vault: kong.conf's
// vault settings and kong.yml's vaults entities); a sandbox may wrap it,
// to allow some references only.
type Vault interface {
	Get(ref string) (string, error)
	// Flush forgets every cached secret.
	Flush()
}

// vaultFuncs is kong.vault (kong/pdk/vault.lua): references parsed with
// Kong's rules and resolved by Options.Vault.
func (p *pdk) vaultFuncs() []Func {
	return []Func{
		{"is_reference", anyPhase, vaultIsReference},
		{"parse_reference", anyPhase, vaultParseReference},
		{"get", anyPhase, p.vaultGet},
		{"update", anyPhase, p.vaultUpdate},
		{"try", anyPhase, vaultTry},
		{"flush", anyPhase, func(*glua.LState, *State) int { p.vault().Flush(); return 0 }},
	}
}

// vault returns Options.Vault, or a resolver of the process's
// environment with kong.conf's defaults.
func (p *pdk) vault() Vault {
	if p.opts.Vault == nil {
		r, _ := vault.New(vault.Settings{}, nil) // the zero Settings are valid
		p.opts.Vault = r
	}
	return p.opts.Vault
}

// vaultUpdate is kong.vault.update(options): the references recorded in
// options["$refs"] (field -> reference, as Kong's schema leaves them) are
// resolved again and their fields replaced, in nested records too, so a
// rotated secret reaches the config. A reference that no longer resolves
// keeps the field's value. options is returned.
func (p *pdk) vaultUpdate(L *glua.LState, _ *State) int {
	if t, ok := L.Get(1).(*glua.LTable); ok {
		p.updateRefs(t, 0)
	}
	L.Push(L.Get(1))
	return 1
}

func (p *pdk) updateRefs(t *glua.LTable, depth int) {
	if depth > 32 {
		return
	}
	if refs, ok := t.RawGetString("$refs").(*glua.LTable); ok {
		refs.ForEach(func(k, ref glua.LValue) {
			if v, err := p.vault().Get(ref.String()); err == nil {
				t.RawSet(k, glua.LString(v))
			}
		})
	}
	t.ForEach(func(k, v glua.LValue) {
		if sub, ok := v.(*glua.LTable); ok && k.String() != "$refs" {
			p.updateRefs(sub, depth+1)
		}
	})
}

func isReference(v glua.LValue) bool {
	s, ok := v.(glua.LString)
	return ok && vault.IsReference(string(s))
}

func vaultIsReference(L *glua.LState, _ *State) int {
	L.Push(glua.LBool(isReference(L.Get(1))))
	return 1
}

func vaultParseReference(L *glua.LState, _ *State) int {
	if !isReference(L.Get(1)) {
		return pushErr(L, "not a reference ["+L.Get(1).String()+"]")
	}
	r, err := vault.Parse(L.Get(1).String())
	if err != nil {
		return pushErr(L, err.Error())
	}
	t := L.NewTable()
	t.RawSetString("name", glua.LString(r.Name))
	t.RawSetString("resource", glua.LString(r.Resource))
	if r.Key != "" {
		t.RawSetString("key", glua.LString(r.Key))
	}
	if r.Version != 0 {
		t.RawSetString("version", glua.LNumber(r.Version))
	}
	if r.Config != nil {
		c := L.NewTable()
		for k, v := range r.Config {
			c.RawSetString(k, glua.LString(v))
		}
		t.RawSetString("config", c)
	}
	L.Push(t)
	return 1
}

// vaultGet resolves a reference: value, or nil and an error.
func (p *pdk) vaultGet(L *glua.LState, _ *State) int {
	if !isReference(L.Get(1)) {
		return pushErr(L, "not a reference ["+L.Get(1).String()+"]")
	}
	value, err := p.vault().Get(L.Get(1).String())
	if err != nil {
		return pushErr(L, err.Error())
	}
	L.Push(glua.LString(value))
	return 1
}

// vaultTry calls cb(options) once. Kong retries it after refreshing the
// secrets of a rotated reference; gong does not rotate secrets.
func vaultTry(L *glua.LState, _ *State) int {
	L.Push(L.CheckFunction(1))
	L.Push(L.Get(2))
	L.Call(1, glua.MultRet)
	return L.GetTop() - 2
}
