package pdk

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unsafe"

	"github.com/gong-proxy/gong/lua"
	glua "github.com/yuin/gopher-lua"
)

// recordMaxDepth is deeper than any log record (root, route, its
// destinations, one entry): encodeRecord leaves cjson instances set to a
// smaller encode_max_depth to the Lua path, which raises their error.
const recordMaxDepth = 16

// errNotFast stops encodeRecord on a value it cannot promise to write as
// toLua and cjson would; the Lua path is taken instead.
var errNotFast = errors.New("not a plain record")

// openLogRecord is gong.log_record, a function for the bundled log
// plugins: log_record(cjson) returns what
// cjson.encode(kong.log.serialize()) would, written from the session's Go
// record with that cjson instance's settings, without building the record
// as Lua tables. It returns nil when it cannot promise the same result
// (outside the log phase, after kong.log.set_serialize_value, a value of
// an unusual type, or any encoding error): the caller then takes the Lua
// path, which also raises the errors.
func openLogRecord(L *glua.LState) int {
	L.Push(L.NewFunction(func(L *glua.LState) int {
		m, _ := L.Get(1).(*glua.LTable)
		c := cjsonConfigs(L)[m]
		b := BindingOf(L)
		if c == nil || b == nil {
			L.Push(glua.LNil)
			return 1
		}
		line, err := c.encodeRecord(L, b.State)
		if err != nil {
			L.Push(glua.LNil)
			return 1
		}
		// line is this call's own and never written again: the Lua string
		// can share its bytes.
		L.Push(glua.LString(unsafe.String(unsafe.SliceData(line), len(line))))
		return 1
	}))
	return 1
}

// cjsonConfigs are the settings of L's cjson module instances, by module
// table, for gong.log_record.
func cjsonConfigs(L *glua.LState) map[*glua.LTable]*cjsonConfig {
	ud := registryValue(L, "gong.cjson.configs", func() glua.LValue {
		ud := L.NewUserData()
		ud.Value = map[*glua.LTable]*cjsonConfig{}
		return ud
	}).(*glua.LUserData)
	return ud.Value.(map[*glua.LTable]*cjsonConfig)
}

// encodeRecord writes s's log record as logSerialize and then c.encode
// would: the Session's record, workspace_name, and latencies.kong and
// tries as in ngx.ctx.
func (c *cjsonConfig) encodeRecord(L *glua.LState, s *State) ([]byte, error) {
	if s == nil || s.Session == nil || s.Phase != PhaseLog || len(s.serializeValues) > 0 || c.encodeMaxDepth < recordMaxDepth {
		return nil, errNotFast
	}
	if c.nullV == nil {
		c.bindVM(L)
	}
	rec := s.Session.Serialize()
	if rec == nil {
		return nil, errNotFast
	}
	// latencies.kong and tries as logSerialize takes them from ngx.ctx;
	// when no plugin made ngx.ctx yet, nothing can have changed them, so
	// they come from the State without making it.
	var kongMS, tries any
	switch {
	case s.Timing.Start.IsZero() && s.ngxCtx == nil && s.pendingBalancer == nil:
	case s.ngxCtx == nil:
		if !s.Timing.Start.IsZero() {
			kongMS = s.timingLatency()
		}
		if s.pendingBalancer != nil {
			tries = s.pendingBalancer.Tries
		}
	default:
		s.ngxCtxTable(L)
		if ms, ok := s.kongLatency(); ok {
			kongMS = ms
		}
		if bd, ok := s.ngxCtx.RawGetString("balancer_data").(*glua.LTable); ok {
			if t, ok := bd.RawGetString("tries").(*glua.LTable); ok {
				tries = t
			}
		}
	}
	route, service := s.Session.Entities()
	// Records of a route differ in a few numbers: the last one's length
	// and a margin spare the buffer's growth.
	b := make([]byte, 0, max(1024, c.recordSize+c.recordSize/8))
	b = append(b, '{')
	first := true
	c.appendStringMember(L, &b, &first, "workspace_name", "default")
	c.appendStringMember(L, &b, &first, "workspace", defaultWorkspace)
	c.appendStringMember(L, &b, &first, "client_ip", rec.ClientIP)
	c.appendNumberMember(L, &b, &first, "started_at", rec.StartedAt)

	c.appendKey(L, &b, &first, "session")
	b = append(b, '{')
	inner := true
	c.appendNumberMember(L, &b, &inner, "received", rec.Received)
	c.appendNumberMember(L, &b, &inner, "sent", rec.Sent)
	c.appendNumberMember(L, &b, &inner, "status", int64(rec.Status))
	c.appendNumberMember(L, &b, &inner, "server_port", int64(rec.ServerPort))
	if t := rec.TLS; t != nil {
		c.appendKey(L, &b, &inner, "tls")
		b = append(b, '{')
		tls := true
		c.appendStringMember(L, &b, &tls, "version", t.Version)
		c.appendStringMember(L, &b, &tls, "cipher", t.Cipher)
		c.appendStringMember(L, &b, &tls, "client_verify", t.ClientVerify)
		b = append(b, '}')
	}
	b = append(b, '}')

	c.appendKey(L, &b, &first, "upstream")
	b = append(b, '{')
	inner = true
	c.appendNumberMember(L, &b, &inner, "received", rec.UpstreamReceived)
	c.appendNumberMember(L, &b, &inner, "sent", rec.UpstreamSent)
	b = append(b, '}')

	c.appendKey(L, &b, &first, "latencies")
	b = append(b, '{')
	inner = true
	c.appendNumberMember(L, &b, &inner, "session", rec.SessionLatency)
	if kongMS != nil { // logSerialize sets kong in the latencies table
		if err := c.appendMember(L, &b, &inner, "kong", kongMS, 2); err != nil {
			return nil, err
		}
	} else {
		c.appendNumberMember(L, &b, &inner, "kong", rec.KongLatency)
	}
	b = append(b, '}')

	var err error
	if tries != nil {
		err = c.appendMember(L, &b, &first, "tries", tries, 1)
	} else {
		err = c.appendMember(L, &b, &first, "tries", rec.Tries, 1)
	}
	if err != nil {
		return nil, err
	}
	if rec.Route != nil {
		if err := c.appendEntity(L, &b, &first, "route", rec.Route, route, service); err != nil {
			return nil, err
		}
		if rec.Service != nil {
			if err := c.appendEntity(L, &b, &first, "service", rec.Service, route, service); err != nil {
				return nil, err
			}
		}
	}
	b = append(b, '}')
	c.recordSize = len(b)
	return b, nil
}

// appendEntity writes the route or the service member, from the cache
// when m is the very map Entities returned.
func (c *cjsonConfig) appendEntity(L *glua.LState, b *[]byte, first *bool, name string, m, route, service map[string]any) error {
	if j := c.entities.json(L, c, m, route, service); j != nil {
		c.appendKey(L, b, first, name)
		*b = append(*b, j...)
		return nil
	}
	return c.appendMember(L, b, first, name, m, 1)
}

// entityCache holds the JSON of the route and service maps records
// carry, which Session.Entities promises are shared and never change, for
// the cjson settings it was written with. It forgets everything when the
// settings change or it holds maxEntityCache maps (routes and services
// of one generation, as a VM serves one).
type entityCache struct {
	settings cjsonSettings
	byMap    map[unsafe.Pointer]entityJSON
}

const maxEntityCache = 256

// entityJSON is one cached map: the map itself, so that its address is
// not reused while cached, and its JSON.
type entityJSON struct {
	m    map[string]any
	json []byte
}

// cjsonSettings are the settings that change how appendGo writes a map.
type cjsonSettings struct {
	emptyTableObject, escapeSlash bool
	precision                     int
}

// json returns m's JSON when m is the route or the service map (the very
// map Entities returns), writing and caching it the first time; nil
// otherwise.
func (ec *entityCache) json(L *glua.LState, c *cjsonConfig, m, route, service map[string]any) []byte {
	if m == nil || !sameMap(m, route) && !sameMap(m, service) {
		return nil
	}
	settings := cjsonSettings{c.emptyTableObject, c.escapeSlash, c.precision}
	if ec.byMap == nil || ec.settings != settings || len(ec.byMap) >= maxEntityCache {
		ec.byMap, ec.settings = map[unsafe.Pointer]entityJSON{}, settings
	}
	key := reflect.ValueOf(m).UnsafePointer()
	if e, ok := ec.byMap[key]; ok {
		return e.json
	}
	var b []byte
	if err := c.appendMap(L, &b, m, 1); err != nil {
		return nil
	}
	ec.byMap[key] = entityJSON{m, b}
	return b
}

// sameMap reports whether a and b are the same map, not equal ones.
func sameMap(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// appendMember writes "k":v as an object's member, after a comma unless
// it is the first; a nil v is no member, as toLua makes it.
func (c *cjsonConfig) appendMember(L *glua.LState, b *[]byte, first *bool, k string, v any, depth int) error {
	if v == nil {
		return nil
	}
	c.appendKey(L, b, first, k)
	return c.appendGo(L, b, v, depth)
}

// appendKey writes an object member's key and colon, after a comma unless
// it is the first.
func (c *cjsonConfig) appendKey(L *glua.LState, b *[]byte, first *bool, k string) {
	if !*first {
		*b = append(*b, ',')
	}
	*first = false
	c.appendString(L, b, k)
	*b = append(*b, ':')
}

// appendNumberMember and appendStringMember are appendMember for the
// record's integers and strings, which they write without boxing them.
// An integer is never NaN or Infinity, appendNumber's one error.
func (c *cjsonConfig) appendNumberMember(L *glua.LState, b *[]byte, first *bool, k string, n int64) {
	c.appendKey(L, b, first, k)
	c.appendNumber(b, float64(n))
}

func (c *cjsonConfig) appendStringMember(L *glua.LState, b *[]byte, first *bool, k, v string) {
	c.appendKey(L, b, first, k)
	c.appendString(L, b, v)
}

// appendGo writes v as c.appendValue writes toLua(v): maps as objects
// (empty ones per encode_empty_table_as_object), slices as arrays (they
// get array_mt), numbers through formatNumber.
func (c *cjsonConfig) appendGo(L *glua.LState, b *[]byte, v any, depth int) error {
	lua.CheckAppend(L, *b, 32)
	switch v := v.(type) {
	case glua.LValue:
		return c.appendValue(L, b, v, depth)
	case string:
		c.appendString(L, b, v)
	case bool:
		*b = strconv.AppendBool(*b, v)
	case int:
		return c.appendNumber(b, float64(v))
	case int64:
		return c.appendNumber(b, float64(v))
	case float64:
		return c.appendNumber(b, v)
	case []string:
		*b = append(*b, '[')
		for i, e := range v {
			if i > 0 {
				*b = append(*b, ',')
			}
			c.appendString(L, b, e)
		}
		*b = append(*b, ']')
	case []any:
		*b = append(*b, '[')
		for i, e := range v {
			if e == nil { // a hole: cjson's length rules apply
				return errNotFast
			}
			if i > 0 {
				*b = append(*b, ',')
			}
			if err := c.appendGo(L, b, e, depth+1); err != nil {
				return err
			}
		}
		*b = append(*b, ']')
	case map[string]any:
		return c.appendMap(L, b, v, depth)
	case []BalancerTry:
		// As triesTable makes them: an array of objects.
		*b = append(*b, '[')
		for i, try := range v {
			if i > 0 {
				*b = append(*b, ',')
			}
			*b = append(*b, '{')
			first := true
			try.fields(
				func(k, v string) { c.appendStringMember(L, b, &first, k, v) },
				func(k string, n int64) { c.appendNumberMember(L, b, &first, k, n) })
			*b = append(*b, '}')
		}
		*b = append(*b, ']')
	default:
		switch v.(type) {
		case int32, uint16, uint32, uint64, float32, []byte, map[any]any, Configuration:
			return errNotFast
		}
		c.appendString(L, b, fmt.Sprint(v))
	}
	return nil
}

// appendMap writes m as an object; an empty one as
// encode_empty_table_as_object says.
func (c *cjsonConfig) appendMap(L *glua.LState, b *[]byte, m map[string]any, depth int) error {
	*b = append(*b, '{')
	first := true
	for k, e := range m {
		if err := c.appendMember(L, b, &first, k, e, depth+1); err != nil {
			return err
		}
	}
	if first && !c.emptyTableObject {
		(*b)[len(*b)-1] = '['
		*b = append(*b, ']')
		return nil
	}
	*b = append(*b, '}')
	return nil
}
