package pdk

import (
	glua "github.com/yuin/gopher-lua"
)

// openShared builds ngx.shared: each dictionary of Options.Shared is a
// userdata whose methods take it as self (dict:get(k)), as OpenResty's
// zones are. Kong's stream template prefixes its own zones with
// "stream_"; an unprefixed name finds them too, as Kong's code asks for
// ngx.shared.kong in either subsystem.
func (p *pdk) openShared(L *glua.LState) *glua.LTable {
	shared := L.NewTable()
	methods := L.NewTable()
	for name, fn := range shdictMethods {
		methods.RawSetString(name, L.NewFunction(fn))
	}
	mt := L.NewTable()
	mt.RawSetString("__index", methods)
	for _, name := range p.opts.Shared.Names() {
		ud := L.NewUserData()
		ud.Value = p.opts.Shared.Get(name)
		L.SetMetatable(ud, mt)
		shared.RawSetString(name, ud)
	}
	smt := L.NewTable()
	smt.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		if k, ok := L.Get(2).(glua.LString); ok {
			L.Push(L.CheckTable(1).RawGetString("stream_" + string(k)))
			return 1
		}
		L.Push(glua.LNil)
		return 1
	}))
	L.SetMetatable(shared, smt)
	return shared
}

// checkZone returns the dictionary of a method's self argument.
func checkZone(L *glua.LState) *SharedDict {
	if ud, ok := L.Get(1).(*glua.LUserData); ok {
		if d, ok := ud.Value.(*SharedDict); ok {
			return d
		}
	}
	L.RaiseError(`bad "zone" argument`)
	return nil
}

// shdictKey reads the key argument: a string or a number turned into one;
// it pushes OpenResty's error and reports false for a nil or empty key.
func shdictKey(L *glua.LState, n int) (string, bool) {
	switch k := L.Get(n).(type) {
	case *glua.LNilType:
		L.Push(glua.LNil)
		L.Push(glua.LString("nil key"))
		return "", false
	case glua.LString:
		if k == "" {
			L.Push(glua.LNil)
			L.Push(glua.LString("empty key"))
			return "", false
		}
		if len(k) > 65535 {
			L.Push(glua.LNil)
			L.Push(glua.LString("key too long"))
			return "", false
		}
		return string(k), true
	case glua.LNumber:
		return tostringValue(L, k), true
	default:
		L.RaiseError("bad argument #1 to '?' (string expected, got %s)", k.Type())
		return "", false
	}
}

// pushGot pushes value and flags, the flags only when not zero.
func pushGot(L *glua.LState, v any, flags uint32) int {
	L.Push(toLua(L, v, nil))
	if flags != 0 {
		L.Push(glua.LNumber(flags))
		return 2
	}
	return 1
}

// pushFail pushes a failed write's nil or false, err and forcible.
func pushFail(L *glua.LState, first glua.LValue, err error) int {
	L.Push(first)
	L.Push(glua.LString(err.Error()))
	L.Push(glua.LFalse)
	return 3
}

func shdictStore(mode Mode, safe bool) glua.LGFunction {
	return func(L *glua.LState) int {
		d := checkZone(L)
		key, ok := shdictKey(L, 2)
		if !ok {
			L.Push(glua.LFalse)
			return 3
		}
		value, ok := luaScalar(L.Get(3))
		if !ok {
			return pushFail(L, glua.LNil, ErrBadValue)
		}
		ttl := float64(L.OptNumber(4, 0))
		flags := uint32(L.OptNumber(5, 0))
		forcible, err := d.Store(mode, key, value, ttl, flags, safe)
		if err == errNegativeTTL {
			L.RaiseError("%s", err)
		}
		if err != nil {
			return pushFail(L, glua.LFalse, err)
		}
		L.Push(glua.LTrue)
		L.Push(glua.LNil)
		L.Push(glua.LBool(forcible))
		return 3
	}
}

var shdictMethods = map[string]glua.LGFunction{
	"get": func(L *glua.LState) int {
		d := checkZone(L)
		key, ok := shdictKey(L, 2)
		if !ok {
			return 2
		}
		v, flags, found := d.Get(key)
		if !found {
			L.Push(glua.LNil)
			return 1
		}
		return pushGot(L, v, flags)
	},
	"get_stale": func(L *glua.LState) int {
		d := checkZone(L)
		key, ok := shdictKey(L, 2)
		if !ok {
			return 2
		}
		v, flags, stale, found := d.GetStale(key)
		if !found {
			L.Push(glua.LNil)
			return 1
		}
		L.Push(toLua(L, v, nil))
		if flags != 0 {
			L.Push(glua.LNumber(flags))
		} else {
			L.Push(glua.LNil)
		}
		L.Push(glua.LBool(stale))
		return 3
	},
	"set":      shdictStore(ModeSet, false),
	"safe_set": shdictStore(ModeSet, true),
	"add":      shdictStore(ModeAdd, false),
	"safe_add": shdictStore(ModeAdd, true),
	"replace":  shdictStore(ModeReplace, false),
	"delete": func(L *glua.LState) int {
		d := checkZone(L)
		key, ok := shdictKey(L, 2)
		if !ok {
			return 2
		}
		d.Store(ModeSet, key, nil, 0, 0, false)
		L.Push(glua.LTrue)
		return 1
	},
	"incr": func(L *glua.LState) int {
		d := checkZone(L)
		key, ok := shdictKey(L, 2)
		if !ok {
			return 2
		}
		delta, isNum := L.Get(3).(glua.LNumber)
		if !isNum {
			L.RaiseError("cannot increment a %s value", L.Get(3).Type())
		}
		var init *float64
		switch v := L.Get(4).(type) {
		case *glua.LNilType:
		case glua.LNumber:
			f := float64(v)
			init = &f
		default:
			L.RaiseError("bad init arg: number expected, got %s", v.Type())
		}
		initTTL := float64(L.OptNumber(5, 0))
		if initTTL < 0 {
			L.RaiseError(`bad "init_ttl" argument`)
		}
		if initTTL != 0 && init == nil {
			L.RaiseError(`bad "init_ttl" argument: "init" argument is required`)
		}
		v, forcible, err := d.Incr(key, float64(delta), init, initTTL)
		if err != nil {
			return pushFail(L, glua.LNil, err)
		}
		L.Push(glua.LNumber(v))
		L.Push(glua.LNil)
		L.Push(glua.LBool(forcible))
		return 3
	},
	"ttl": func(L *glua.LState) int {
		d := checkZone(L)
		key, ok := shdictKey(L, 2)
		if !ok {
			return 2
		}
		ttl, err := d.TTL(key)
		if err != nil {
			return pushErr(L, err.Error())
		}
		L.Push(glua.LNumber(ttl))
		return 1
	},
	"expire": func(L *glua.LState) int {
		d := checkZone(L)
		key, ok := shdictKey(L, 2)
		if !ok {
			return 2
		}
		ttl, isNum := L.Get(3).(glua.LNumber)
		if !isNum {
			L.RaiseError(`bad "exptime" argument`)
		}
		if err := d.Expire(key, float64(ttl)); err != nil {
			if err == errNegativeTTL {
				L.RaiseError("%s", err)
			}
			return pushErr(L, err.Error())
		}
		L.Push(glua.LTrue)
		return 1
	},
	"flush_all": func(L *glua.LState) int {
		checkZone(L).FlushAll()
		return 0
	},
	"flush_expired": func(L *glua.LState) int {
		L.Push(glua.LNumber(checkZone(L).FlushExpired(L.OptInt(2, 0))))
		return 1
	},
	"get_keys": func(L *glua.LState) int {
		keys := checkZone(L).Keys(L.OptInt(2, 1024))
		t := L.CreateTable(len(keys), 0)
		for _, k := range keys {
			t.Append(glua.LString(k))
		}
		L.Push(t)
		return 1
	},
	"capacity": func(L *glua.LState) int {
		L.Push(glua.LNumber(checkZone(L).Capacity()))
		return 1
	},
	"free_space": func(L *glua.LState) int {
		L.Push(glua.LNumber(checkZone(L).FreeSpace()))
		return 1
	},
}
