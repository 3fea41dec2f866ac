package pdk

import (
	"fmt"
	"net/url"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// openSocketURL is LuaSocket's socket.url, the part plugins use: parse,
// build, escape and unescape.
func openSocketURL(L *glua.LState) int {
	L.Push(L.SetFuncs(L.NewTable(), map[string]glua.LGFunction{
		"parse":    urlParse,
		"build":    urlBuild,
		"escape":   urlEscape,
		"unescape": urlUnescape,
	}))
	return 1
}

// urlParse is url.parse(s, default?): a table of scheme, authority,
// userinfo, user, password, host, port (a string), path, query and
// fragment, each absent when the URL lacks it, over a copy of default.
func urlParse(L *glua.LState) int {
	s := L.CheckString(1)
	t := L.NewTable()
	if def, ok := L.Get(2).(*glua.LTable); ok {
		def.ForEach(func(k, v glua.LValue) { t.RawSet(k, v) })
	}
	u, err := url.Parse(s)
	if err != nil {
		// LuaSocket never fails: what has no scheme nor authority is a
		// path (a vault reference, for one, in a schema's validator).
		t.RawSetString("path", glua.LString(s))
		L.Push(t)
		return 1
	}
	set := func(k, v string) {
		if v != "" {
			t.RawSetString(k, glua.LString(v))
		}
	}
	set("scheme", u.Scheme)
	authority := u.Host
	if u.User != nil {
		// LuaSocket leaves the user info escaped, as written.
		info := u.User.String()
		user, pw, hasPW := strings.Cut(info, ":")
		set("userinfo", info)
		set("user", user)
		if hasPW {
			set("password", pw)
		}
		authority = info + "@" + u.Host
	}
	set("authority", authority)
	set("host", u.Hostname())
	set("port", u.Port())
	if u.Opaque != "" {
		set("path", u.Opaque)
	} else {
		set("path", u.EscapedPath())
	}
	set("query", u.RawQuery)
	set("fragment", u.EscapedFragment())
	L.Push(t)
	return 1
}

// urlBuild is url.build(parsed): the URL string of a parse result.
func urlBuild(L *glua.LState) int {
	t := L.CheckTable(1)
	get := func(k string) string {
		if v, ok := t.RawGetString(k).(glua.LString); ok {
			return string(v)
		}
		if v, ok := t.RawGetString(k).(glua.LNumber); ok {
			return v.String()
		}
		return ""
	}
	var b strings.Builder
	if s := get("scheme"); s != "" {
		b.WriteString(s + ":")
	}
	host := get("host")
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	authority := host
	if p := get("port"); p != "" {
		authority += ":" + p
	}
	if ui := get("userinfo"); ui != "" {
		authority = ui + "@" + authority
	} else if u := get("user"); u != "" {
		if pw := get("password"); pw != "" {
			u += ":" + pw
		}
		authority = u + "@" + authority
	}
	if authority == "" {
		authority = get("authority")
	}
	if authority != "" {
		b.WriteString("//" + authority)
	}
	b.WriteString(get("path"))
	if q := get("query"); q != "" {
		b.WriteString("?" + q)
	}
	if f := get("fragment"); f != "" {
		b.WriteString("#" + f)
	}
	L.Push(glua.LString(b.String()))
	return 1
}

// urlEscape is url.escape(s): every byte but letters, digits and "_" as
// %xx.
func urlEscape(L *glua.LState) int {
	s := L.CheckString(1)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02x", c)
	}
	L.Push(glua.LString(b.String()))
	return 1
}

// urlUnescape is url.unescape(s): %xx decoded; "+" stays.
func urlUnescape(L *glua.LState) int {
	s := L.CheckString(1)
	out, err := url.PathUnescape(s)
	if err != nil {
		out = s
	}
	L.Push(glua.LString(out))
	return 1
}
