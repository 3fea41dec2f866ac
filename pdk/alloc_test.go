package pdk

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/gong-proxy/gong/lua"
	glua "github.com/yuin/gopher-lua"
)

// The PDK's Go functions that build a string whose size Lua controls
// refuse one past what lua_memory_limit still allows with Lua's "not
// enough memory", and build smaller ones as before.
func TestPDKAllocationsAreBounded(t *testing.T) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	guard := lua.NewMemoryGuard(sample[0].Value.Uint64()+64<<20, time.Hour)
	defer guard.Close()
	mods, err := lua.LibModules()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := lua.NewVM(newBundle(t, mods), lua.PoolOptions{MemoryGuard: guard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Close)
	e := openEnv(vm, PhasePreread, Options{})
	runLua(t, e.vm, `mib = string.rep("x", 2^20)`)
	refused := []string{
		`local t = {} for i = 1, 100 do t[i] = mib end require("cjson").encode(t)`,
		`local t = {} for i = 1, 100 do t[i] = mib end require("cjson.safe").encode({t = t})`,
		`local k = mib:rep(40) require("cjson").encode({[k] = k})`,
		`ngx.encode_base64(mib:rep(50))`,
		`ngx.escape_uri((" "):rep(30 * 2^20))`,
		`ngx.quote_sql_str(("'"):rep(40 * 2^20))`,
		`ngx.re.gsub(mib, ".", mib)`,
		`ngx.re.sub(mib:rep(40), "^", function() return mib:rep(40) end)`,
	}
	for _, code := range refused {
		res := runLua(t, e.vm, `return pcall(function() `+code+` end)`)
		if res[0] != glua.LFalse || res[1].String() != "not enough memory" {
			t.Errorf("%s: %v; want false, \"not enough memory\"", code, res)
		}
	}
	// A collection frees what the refused calls left behind.
	runtime.GC()
	checkLua(t, e.vm, []struct{ code, want string }{
		{`return #require("cjson").encode({mib, mib})`, "2097159"},
		{`return #ngx.encode_base64(mib)`, "1398104"},
		{`return #ngx.re.gsub(mib, "x", "yy")`, "2097152"},
		{`return ngx.escape_uri("a b") .. ngx.quote_sql_str("it's")`, `a%20b'it\'s'`},
	})
}
