package pdk

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"

	"github.com/gong-proxy/gong/lua"
	lru "github.com/hashicorp/golang-lru/v2"
	glua "github.com/yuin/gopher-lua"
)

// ngx.re runs a pattern on Go's regexp (RE2, linear time) when RE2 can
// compile it, and otherwise on regexp2, a backtracking engine with PCRE's
// back-references, look-ahead, look-behind, atomic groups and possessive
// quantifiers. A backtracking match that runs longer than reMatchTimeout
// fails with an error, as PCRE's match limit does, so that no pattern
// stalls a VM. What neither engine compiles (recursion, callouts)
// returns the RE2 compiler's error as the err result. Matching is on
// UTF-8 text whether "u" is given or not.

// reMatchTimeout bounds one backtracking match (docs/pdk-compat.md).
const reMatchTimeout = 250 * time.Millisecond

// compiledRe is a pattern compiled with its options: exactly one of re
// and bt is set.
type compiledRe struct {
	re       *regexp.Regexp
	bt       *regexp2.Regexp
	names    []string // group names by number, "" for unnamed ones
	anchored bool     // "a": a match must start where the search does
}

// errReTimeout is the err result of a backtracking match that ran out of
// time; OpenResty reports PCRE's match limit as "pcre_exec() failed: -8".
var errReTimeout = fmt.Errorf("pcre_exec() failed: -8 (match took longer than %v)", reMatchTimeout)

// reCache holds compiled patterns, as lua_regex_cache_max_entries (1024)
// does for the "o" option; gong caches every pattern.
var reCache, _ = lru.New[string, *compiledRe](1024)

// compileRe compiles pattern with OpenResty's option letters. An unknown
// letter is raised as lua-resty-core does; a pattern that does not
// compile is returned as an error.
func compileRe(L *glua.LState, pattern, opts string) (*compiledRe, error) {
	key := opts + "\x00" + pattern
	if c, ok := reCache.Get(key); ok {
		return c, nil
	}
	c := &compiledRe{}
	var flags, extended, longest = "", false, false
	for _, o := range opts {
		switch o {
		case 'i', 's', 'm':
			flags += string(o)
		case 'x':
			extended = true
		case 'a':
			c.anchored = true
		case 'd':
			longest = true
		case 'j', 'o', 'u', 'U', 'J', 'D':
			// JIT, caching and UTF-8 are how gong always works; J and D
			// only relax duplicate group names, which RE2 refuses anyway.
		default:
			L.RaiseError("unknown flag \"%c\" (flags \"%s\")", o, opts)
		}
	}
	src := pattern
	if extended {
		src = stripExtended(src)
	}
	if flags != "" {
		src = "(?" + flags + ")" + src
	}
	re, err := regexp.Compile(src)
	if err == nil {
		if longest {
			re.Longest()
		}
		c.re, c.names = re, re.SubexpNames()
	} else {
		bt, btErr := regexp2.Compile(src, regexp2.RE2, regexp2.OptionMaintainCaptureOrder())
		if btErr != nil {
			return nil, fmt.Errorf("pcre_compile() failed: %s in \"%s\"", strings.TrimPrefix(err.Error(), "error parsing regexp: "), pattern)
		}
		bt.MatchTimeout = reMatchTimeout
		c.bt = bt
		for _, n := range bt.GetGroupNumbers() {
			name := bt.GroupNameFromNumber(n)
			if name == strconv.Itoa(n) {
				name = ""
			}
			c.names = append(c.names, name)
		}
	}
	reCache.Add(key, c)
	return c, nil
}

// stripExtended removes the whitespace and # comments the "x" option
// ignores, outside character classes and escapes.
func stripExtended(p string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			b.WriteByte(c)
			b.WriteByte(p[i+1])
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
		case c == '#':
			for i < len(p) && p[i] != '\n' {
				i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// findAt returns the submatch indexes of the first match in subj at or
// after from (absolute offsets), or nil. At from > 0 the subject is cut
// there, so "^" and "\b" see the cut as the start of text.
func (c *compiledRe) findAt(subj string, from int) ([]int, error) {
	if from > len(subj) {
		return nil, nil
	}
	var loc []int
	if c.bt != nil {
		m, err := c.bt.FindStringMatch(subj[from:])
		if err != nil {
			return nil, btError(err)
		}
		loc = c.btIndexes(m)
	} else {
		loc = c.re.FindStringSubmatchIndex(subj[from:])
	}
	if loc == nil || c.anchored && loc[0] != 0 {
		return nil, nil
	}
	for i := range loc {
		if loc[i] >= 0 {
			loc[i] += from
		}
	}
	return loc, nil
}

// btIndexes converts a regexp2 match to the byte indexes Go's regexp
// gives: start and end of the match and of each group, -1 for a group
// that did not take part. nil for no match.
func (c *compiledRe) btIndexes(m *regexp2.Match) []int {
	if m == nil {
		return nil
	}
	groups := m.Groups()
	loc := make([]int, 2*len(groups))
	for i, g := range groups {
		loc[2*i], loc[2*i+1] = -1, -1
		if len(g.Captures) > 0 {
			at, n := g.ByteRange()
			loc[2*i], loc[2*i+1] = at, at+n
		}
	}
	return loc
}

// btError is the err result for a failed backtracking match: regexp2
// fails only on its stack limit (PCRE's recursion limit, -21) or on the
// timeout, whose message quotes the subject and is not passed on.
func btError(err error) error {
	if errors.Is(err, regexp2.ErrBacktrackingStackLimit) {
		return errors.New("pcre_exec() failed: -21 (backtracking stack limit)")
	}
	return errReTimeout
}

// findAll returns every match's submatch indexes, stopping at the first
// that does not start where the previous ended when anchored.
func (c *compiledRe) findAll(subj string, n int) ([][]int, error) {
	var all [][]int
	if c.bt == nil {
		all = c.re.FindAllStringSubmatchIndex(subj, n)
	} else {
		m, err := c.bt.FindStringMatch(subj)
		for ; m != nil && err == nil && (n < 0 || len(all) < n); m, err = c.bt.FindNextMatch(m) {
			all = append(all, c.btIndexes(m))
		}
		if err != nil {
			return nil, btError(err)
		}
	}
	if !c.anchored {
		return all, nil
	}
	next := 0
	for i, loc := range all {
		if loc[0] != next {
			return all[:i], nil
		}
		next = loc[1]
	}
	return all, nil
}

// captures builds ngx.re's capture table: [0] the match, [1..n] the
// groups (false when a group did not take part), and named groups by
// name. res, when given, is filled instead of a new table.
func (c *compiledRe) captures(L *glua.LState, subj string, loc []int, res *glua.LTable) *glua.LTable {
	t := res
	if t == nil {
		t = L.CreateTable(len(loc)/2-1, 0)
	}
	names := c.names
	for i := 0; i < len(loc)/2; i++ {
		var v glua.LValue = glua.LFalse
		if loc[2*i] >= 0 {
			v = glua.LString(subj[loc[2*i]:loc[2*i+1]])
		}
		t.RawSetInt(i, v)
		if names[i] != "" {
			t.RawSetString(names[i], v)
		}
	}
	return t
}

// reArgs reads the subject, pattern and options and compiles; on a
// compile error it pushes nils and the error and reports n > 0 results.
func reArgs(L *glua.LState, nils int) (c *compiledRe, subj string, n int) {
	subj = checkBytes(L, 1)
	pattern := L.CheckString(2)
	opts := L.OptString(3, "")
	c, err := compileRe(L, pattern, opts)
	if err != nil {
		return nil, subj, pushReError(L, nils, err)
	}
	return c, subj, 0
}

// pushReError pushes nils nils and a compile error, as ngx.re's functions
// return it, and returns the number of results.
func pushReError(L *glua.LState, nils int, err error) int {
	for range nils {
		L.Push(glua.LNil)
	}
	L.Push(glua.LString(err.Error()))
	return nils + 1
}

// ctxPos reads ctx.pos (1-based; default 1) as a byte offset.
func ctxPos(L *glua.LState, n int) (*glua.LTable, int) {
	ctx, ok := L.Get(n).(*glua.LTable)
	if !ok {
		return nil, 0
	}
	if pos, ok := ctx.RawGetString("pos").(glua.LNumber); ok && pos > 1 {
		return ctx, int(pos) - 1
	}
	return ctx, 0
}

// findFromCtx finds the first match at or after ctx.pos (argument 4)
// and, on a match, moves ctx.pos past it, as match and find do.
func (c *compiledRe) findFromCtx(L *glua.LState, subj string) ([]int, error) {
	ctx, from := ctxPos(L, 4)
	loc, err := c.findAt(subj, from)
	if loc != nil && ctx != nil {
		ctx.RawSetString("pos", glua.LNumber(loc[1]+1))
	}
	return loc, err
}

func reMatch(L *glua.LState) int {
	c, subj, n := reArgs(L, 1)
	if c == nil {
		return n
	}
	loc, err := c.findFromCtx(L, subj)
	if err != nil {
		return pushReError(L, 1, err)
	}
	if loc == nil {
		L.Push(glua.LNil)
		return 1
	}
	res, _ := L.Get(5).(*glua.LTable)
	L.Push(c.captures(L, subj, loc, res))
	return 1
}

func reFind(L *glua.LState) int {
	c, subj, n := reArgs(L, 2)
	if c == nil {
		return n
	}
	nth := L.OptInt(5, 0)
	loc, err := c.findFromCtx(L, subj)
	if err != nil {
		return pushReError(L, 2, err)
	}
	if loc == nil {
		L.Push(glua.LNil)
		return 1
	}
	if nth < 0 || 2*nth+1 >= len(loc) || loc[2*nth] < 0 {
		L.Push(glua.LNil)
		return 1
	}
	L.Push(glua.LNumber(loc[2*nth] + 1))
	L.Push(glua.LNumber(loc[2*nth+1]))
	return 2
}

func reGmatch(L *glua.LState) int {
	c, subj, n := reArgs(L, 1)
	if c == nil {
		return n
	}
	all, err := c.findAll(subj, -1)
	if err != nil {
		return pushReError(L, 1, err)
	}
	i := 0
	L.Push(L.NewFunction(func(L *glua.LState) int {
		if i >= len(all) {
			L.Push(glua.LNil)
			return 1
		}
		i++
		L.Push(c.captures(L, subj, all[i-1], nil))
		return 1
	}))
	return 1
}

// reSubst is sub (max 1) and gsub (max -1).
func reSubst(max int) glua.LGFunction {
	return func(L *glua.LState) int {
		subj := checkBytes(L, 1)
		pattern := L.CheckString(2)
		repl := L.Get(3)
		opts := L.OptString(4, "")
		var tmpl []tmplPart
		switch r := repl.(type) {
		case glua.LString, glua.LNumber:
			var err error
			if tmpl, err = parseTemplate(r.String()); err != nil {
				L.RaiseError("%s", err)
			}
		case *glua.LFunction:
		default:
			L.RaiseError("bad argument #3 to 'sub' (string, number, or function expected, got %s)", repl.Type())
		}
		c, err := compileRe(L, pattern, opts)
		if err != nil {
			return pushReError(L, 2, err)
		}
		all, err := c.findAll(subj, max)
		if err != nil {
			return pushReError(L, 2, err)
		}
		var b strings.Builder
		// write refuses growth of the result past the memory limit.
		write := func(s string) {
			if need := b.Len() + len(s); need > b.Cap() {
				lua.CheckAlloc(L, float64(need)*1.25)
			}
			b.WriteString(s)
		}
		last := 0
		for _, loc := range all {
			write(subj[last:loc[0]])
			if fn, ok := repl.(*glua.LFunction); ok {
				L.Push(fn)
				L.Push(c.captures(L, subj, loc, nil))
				L.Call(1, 1)
				switch v := L.Get(-1).(type) {
				case glua.LString, glua.LNumber:
					write(tostringValue(L, v))
				default:
					L.RaiseError("attempt to use %s as the replacement", v.Type())
				}
				L.Pop(1)
			} else {
				expand(write, tmpl, subj, loc, c.names)
			}
			last = loc[1]
		}
		write(subj[last:])
		L.Push(glua.LString(b.String()))
		L.Push(glua.LNumber(len(all)))
		return 2
	}
}

// tmplPart is a literal, or a capture by number (name empty) or name.
type tmplPart struct {
	lit     string
	group   int
	name    string
	isGroup bool
}

// parseTemplate reads a replacement: $0..$99, ${n}, ${name} and $$.
func parseTemplate(s string) ([]tmplPart, error) {
	var parts []tmplPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, tmplPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			lit.WriteByte(s[i])
			continue
		}
		i++
		switch {
		case i < len(s) && s[i] == '$':
			lit.WriteByte('$')
		case i < len(s) && s[i] >= '0' && s[i] <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(s[i:j])
			flush()
			parts = append(parts, tmplPart{group: n, isGroup: true})
			i = j - 1
		case i < len(s) && s[i] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 2 {
				return nil, fmt.Errorf("the closing bracket in \"%s\" variable is missing", s[i:])
			}
			name := s[i+1 : i+end]
			flush()
			if n, err := strconv.Atoi(name); err == nil {
				parts = append(parts, tmplPart{group: n, isGroup: true})
			} else {
				parts = append(parts, tmplPart{name: name, isGroup: true})
			}
			i += end
		default:
			return nil, fmt.Errorf("invalid capturing variable name found in \"%s\"", s)
		}
	}
	flush()
	return parts, nil
}

// expand writes a template's text for one match; a group that did not
// match or does not exist is empty.
func expand(write func(string), tmpl []tmplPart, subj string, loc []int, names []string) {
	for _, p := range tmpl {
		if !p.isGroup {
			write(p.lit)
			continue
		}
		g := p.group
		if p.name != "" {
			g = slices.Index(names, p.name)
		}
		if g >= 0 && 2*g+1 < len(loc) && loc[2*g] >= 0 {
			write(subj[loc[2*g]:loc[2*g+1]])
		}
	}
}

// reSplit is the ngx.re module's split(subj, regex, opts?, ctx?, max?,
// res?): the pieces between matches, each match's captures inserted
// after the piece before it, at most max pieces when max > 0.
func reSplit(L *glua.LState) int {
	c, subj, n := reArgs(L, 1)
	if c == nil {
		return n
	}
	_, from := ctxPos(L, 4)
	max := L.OptInt(5, 0)
	res, ok := L.Get(6).(*glua.LTable)
	if !ok {
		res = L.NewTable()
	}
	count := 0
	add := func(v glua.LValue) {
		count++
		res.RawSetInt(count, v)
	}
	all, err := c.findAll(subj[from:], -1)
	if err != nil {
		return pushReError(L, 1, err)
	}
	last := from
	for _, loc := range all {
		if max > 0 && count+1 >= max {
			break
		}
		start, end := loc[0]+from, loc[1]+from
		if start == end && (start == from || start == len(subj)) {
			continue // an empty match at either end splits nothing
		}
		add(glua.LString(subj[last:start]))
		for g := 1; g < len(loc)/2; g++ {
			if loc[2*g] >= 0 {
				add(glua.LString(subj[loc[2*g]+from : loc[2*g+1]+from]))
			}
		}
		last = end
	}
	add(glua.LString(subj[last:]))
	for i := count + 1; res.RawGetInt(i) != glua.LNil; i++ {
		res.RawSetInt(i, glua.LNil)
	}
	L.Push(res)
	return 1
}

// openNgxRe builds the ngx.re table of the ngx global.
func openNgxRe(L *glua.LState) *glua.LTable {
	t := L.NewTable()
	setFuncs(L, t, map[string]glua.LGFunction{
		"match": reMatch, "find": reFind, "gmatch": reGmatch,
		"sub": reSubst(1), "gsub": reSubst(-1),
	})
	return t
}

// openNgxReModule is require "ngx.re": split, and opt, which accepts
// jit_stack_size and does nothing with it (RE2 has no JIT stack).
func openNgxReModule(L *glua.LState) int {
	t := L.NewTable()
	setFuncs(L, t, map[string]glua.LGFunction{
		"split": reSplit,
		"opt": func(L *glua.LState) int {
			if name := L.CheckString(1); name != "jit_stack_size" {
				L.RaiseError("unrecognized option name")
			}
			return 0
		},
	})
	L.Push(t)
	return 1
}
