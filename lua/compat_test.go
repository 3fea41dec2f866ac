package lua

import (
	"testing"
)

// Expected values are LuaJIT 2.1's (OpenResty build, LUA52COMPAT).
func TestCompat(t *testing.T) {
	tests := []struct {
		name, expr, want string
	}{
		{"bit global is the module", `require("bit") == bit`, "true"},
		{"tobit wraps to signed", `bit.tobit(0xffffffff), bit.tobit(2^32 + 5), bit.tobit(-1), bit.tobit(2^31)`, "-1,5,-1,-2147483648"},
		{"tobit rounds half to even", `bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-2.5)`, "2,2,-2"},
		{"band bor bxor", `bit.band(-1, 0xff), bit.bor(1, 2, 4), bit.bxor(5, 3), bit.band(0xffffffff, 0xf0f0f0f0)`, "255,7,6,-252645136"},
		{"bnot", `bit.bnot(0), bit.bnot(-1), bit.bnot(0x7fffffff)`, "-1,0,-2147483648"},
		{"lshift", `bit.lshift(1, 31), bit.lshift(1, 33), bit.lshift(0xff, 8)`, "-2147483648,2,65280"},
		{"rshift is logical", `bit.rshift(-1, 28), bit.rshift(256, 4), bit.rshift(-256, 4)`, "15,16,268435440"},
		{"arshift keeps the sign", `bit.arshift(-256, 4), bit.arshift(256, 4), bit.arshift(-1, 31)`, "-16,16,-1"},
		{"rol ror", `bit.rol(0x12345678, 12), bit.ror(0x12345678, 12), bit.rol(-1, 5)`, "1164411171,1736516421,-1"},
		{"bswap", `bit.bswap(0x12345678), bit.bswap(-1)`, "2018915346,-1"},
		{"tohex", `bit.tohex(-1), bit.tohex(255, 2), bit.tohex(255, -4), bit.tohex(0x12345678, 4), bit.tohex(1), bit.tohex(-2, 16)`, "ffffffff,ff,00FF,5678,00000001,fffffffe"},
		{"bit rejects non-numbers", `select(2, pcall(bit.band, {}, 1)):find("number expected, got table", 1, true) ~= nil`, "true"},

		{"table.new", `type(table.new(10, 4)), require("table.new") == table.new`, "table,true"},
		{"table.clear", `(function() local t = {1, 2, a = 1} local same = t table.clear(t) return next(t), same == t end)()`, "nil,true"},
		{"table.nkeys", `table.nkeys({}), table.nkeys({1, 2, a = 1, [10] = 3}), require("table.nkeys")({x = 1})`, "0,4,1"},
		{"table.isempty", `table.isempty({}), table.isempty({a = 1}), table.isempty({false})`, "true,false,false"},
		{"table.isarray", `table.isarray({}), table.isarray({1, 2, 3}), table.isarray({1, nil, 3}), table.isarray({a = 1}), table.isarray({[1.5] = 1})`, "true,true,false,false,false"},
		{"table.clone is shallow without metatable", `(function() local inner = {} local src = setmetatable({1, inner, k = "v"}, {}) local c = table.clone(src) return c ~= src, c[1], c[2] == inner, c.k, getmetatable(c) end)()`, "true,1,true,v,nil"},
		{"table.pack keeps nils", `table.pack(1, nil, 3).n, table.pack().n`, "3,0"},
		{"table.unpack", `table.unpack({1, 2, 3})`, "1,2,3"},

		{"load string with env", `load("return x", "chunk", "t", {x = 5})()`, "5"},
		{"load env isolates globals", `(function() local env = {} load("y = 7", "c", "t", env)() return env.y, y end)()`, "7,nil"},
		{"load reader function", `(function() local parts = {"return ", "4", "2"} local i = 0 return load(function() i = i + 1 return parts[i] end)() end)()`, "42"},
		{"load syntax error", `(function() local f, err = load("x = = 1", "=mychunk") return f, err:find("mychunk", 1, true) ~= nil end)()`, "nil,true"},
		{"load mode b rejects text", `load("return 1", "c", "b")`, "nil,attempt to load a text chunk (mode is 'b')"},
		{"load rejects binary", `load("\27Lua", "c", "t")`, "nil,attempt to load a binary chunk (mode is 't')"},
		{"xpcall passes arguments", `xpcall(function(a, b) return a + b, "ok" end, debug.traceback, 1, 2)`, "true,3,ok"},
		{"xpcall handler", `xpcall(function(a) error(a, 0) end, function(e) return "h:" .. e end, "x")`, "false,h:x"},

		{"jit module without a compiler", `jit.version:sub(1, 10), jit.version_num, jit.os, jit.arch, jit.off(), jit.on(), jit.flush(), require("jit") == jit`, "LuaJIT 2.1,20100,Linux,x64,nil,nil,nil,true"},

		{"string.buffer", `(function() local buf = require("string.buffer").new() buf:put("a", 1, "b"):put(2.5) local n = #buf local all = buf:tostring() local head = buf:get(2) local rest = buf:get() return n, all, head, rest, buf:len() end)()`, "6,a1b2.5,a1,b2.5,0"},
		{"string.buffer putf reset", `(function() local buf = require("string.buffer").new() buf:put("junk"):reset():putf("%d-%s", 3, "x") return tostring(buf) end)()`, "3-x"},

		{"tostring like luajit", `tostring(1e15), tostring(123), tostring(-7), tostring(0.1), tostring(1/3), tostring(2^53), tostring(1e100)`, "1e+15,123,-7,0.1,0.33333333333333,9.007199254741e+15,1e+100"},
		{"tostring inf nan", `tostring(1/0), tostring(-1/0), (function() local z = 0 return tostring(z/z):match("^%-?nan$") ~= nil end)()`, "inf,-inf,true"},
		{"tonumber exponent", `tonumber("1e2"), tonumber(" 2.5E-1 "), tonumber("0x10"), tonumber("10", 2), tonumber("1e"), tonumber("abc"), tonumber("inf")`, "100,0.25,16,2,nil,nil,nil"},
		{"string.rep separator", `string.rep("ab", 3, ","), string.rep("ab", 2), string.rep("x", 0, ",")`, "ab,ab,ab,abab,"},
		{"math.log base", `math.log(8, 2), math.log(100, 10), math.log(1), math.log(27, 3)`, "3,2,0,3"},
	}
	vm := newTestVM(t, nil, PoolOptions{})
	runLua(t, vm, `function join(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  return table.concat(t, ",", 1, t.n)
end`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runLua(t, vm, "return join("+tt.expr+")")[0].String()
			if got != tt.want {
				t.Errorf("%s = %q; want %q", tt.expr, got, tt.want)
			}
		})
	}
}
