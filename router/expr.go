package router

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// This file is the expressions language of Kong's ATC router (the
// atc-router crate's grammar, parser, semantic checks and interpreter),
// restricted to the stream fields of kong/router/fields.lua.
//
//	expression = term { ("&&" | "||") term }
//	term       = predicate | ["!"] "(" expression ")"
//	predicate  = lhs op rhs
//	lhs        = ident | ident "(" lhs ")"      (lower, any)
//	rhs        = "string" | r#"raw string"# | ip | cidr | integer
//
// As in ATC, "||" binds tighter than "&&": a && b || c is a && (b || c).

// fieldType is the type ATC's schema gives a field.
type fieldType uint8

const (
	typeString fieldType = iota
	typeInt
	typeIPAddr
	typeIPCIDR // literals only
	typeRegex  // literals only
)

// field is a stream field of kong/router/fields.lua.
type field uint8

const (
	fieldProtocol field = iota
	fieldSrcIP
	fieldSrcPort
	fieldDstIP
	fieldDstPort
	fieldSNI
)

var streamFields = map[string]struct {
	f field
	t fieldType
}{
	"net.protocol": {fieldProtocol, typeString},
	"net.src.ip":   {fieldSrcIP, typeIPAddr},
	"net.src.port": {fieldSrcPort, typeInt},
	"net.dst.ip":   {fieldDstIP, typeIPAddr},
	"net.dst.port": {fieldDstPort, typeInt},
	"tls.sni":      {fieldSNI, typeString},
}

// binOp is a predicate's operator.
type binOp uint8

const (
	opEq binOp = iota
	opNe
	opRegex
	opPrefix
	opPostfix
	opGe
	opGt
	opLe
	opLt
	opIn
	opNotIn
	opContains
)

// binOps lists the operators in the grammar's order of trial, so "^="
// is tried before "=^", ">=" before ">".
var binOps = []struct {
	text string
	op   binOp
}{
	{"==", opEq}, {"!=", opNe}, {"~", opRegex}, {"^=", opPrefix}, {"=^", opPostfix},
	{">=", opGe}, {">", opGt}, {"<=", opLe}, {"<", opLt}, {"in", opIn}, {"not", opNotIn},
	{"contains", opContains},
}

// value is a literal right-hand side.
type value struct {
	t      fieldType
	str    string
	num    int64
	addr   netip.Addr
	prefix netip.Prefix
	re     *regexp.Regexp
}

type predicate struct {
	name  string // the field as written
	field field
	lower bool // lower(field)
	op    binOp
	rhs   value
}

type nodeKind uint8

const (
	nodePredicate nodeKind = iota
	nodeAnd
	nodeOr
	nodeNot
)

// expr is a node of a parsed expression.
type expr struct {
	kind nodeKind
	l, r *expr     // nodeAnd, nodeOr; l for nodeNot
	p    predicate // nodePredicate, kept inline so an evaluation follows fewer pointers
}

// eval reports whether e holds for a connection. tls.sni is present only
// when the connection carries an SNI.
func (e *expr) eval(f *ConnInfo) bool {
	switch e.kind {
	case nodeAnd:
		return e.l.eval(f) && e.r.eval(f)
	case nodeOr:
		return e.l.eval(f) || e.r.eval(f)
	case nodeNot:
		return !e.l.eval(f)
	}
	return e.p.eval(f)
}

// eval applies the predicate to the connection's value of its field. A
// field the connection lacks fails every predicate, "!=" and "not in"
// included, as in ATC.
func (p *predicate) eval(f *ConnInfo) bool {
	switch p.field {
	case fieldProtocol:
		return p.evalString(f.Protocol)
	case fieldSNI:
		return f.SNI != "" && p.evalString(f.SNI)
	case fieldSrcIP:
		return p.evalAddr(f.Src.Addr())
	case fieldDstIP:
		return p.evalAddr(f.Dst.Addr())
	case fieldSrcPort:
		return f.Src.Addr().IsValid() && p.evalInt(int64(f.Src.Port()))
	case fieldDstPort:
		return f.Dst.Addr().IsValid() && p.evalInt(int64(f.Dst.Port()))
	}
	return false
}

func (p *predicate) evalString(s string) bool {
	if p.lower {
		s = strings.ToLower(s)
	}
	switch p.op {
	case opEq:
		return s == p.rhs.str
	case opNe:
		return s != p.rhs.str
	case opRegex:
		return p.rhs.re.MatchString(s)
	case opPrefix:
		return strings.HasPrefix(s, p.rhs.str)
	case opPostfix:
		return strings.HasSuffix(s, p.rhs.str)
	case opContains:
		return strings.Contains(s, p.rhs.str)
	}
	return false
}

func (p *predicate) evalInt(n int64) bool {
	switch p.op {
	case opEq:
		return n == p.rhs.num
	case opNe:
		return n != p.rhs.num
	case opGt:
		return n > p.rhs.num
	case opGe:
		return n >= p.rhs.num
	case opLt:
		return n < p.rhs.num
	case opLe:
		return n <= p.rhs.num
	}
	return false
}

func (p *predicate) evalAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	switch p.op {
	case opEq:
		return a == p.rhs.addr
	case opNe:
		return a != p.rhs.addr
	case opIn:
		return p.rhs.prefix.Contains(a)
	case opNotIn:
		return !p.rhs.prefix.Contains(a)
	}
	return false
}

// netPortDeprecated is kong/router/transform.lua amending_expression: the
// old field name net.port, before an operator, means net.dst.port.
var netPortDeprecated = regexp.MustCompile(`(net\.port)(\s*)([=><!])`)

// parseExpression parses and type-checks an expression against the stream
// fields. Its errors read like ATC's: a syntax error shows the line with
// a caret under the position, a type error is one sentence.
func parseExpression(src string) (*expr, error) {
	src = netPortDeprecated.ReplaceAllString(src, "net.dst.port$2$3")
	p := &parser{src: src}
	e, err := p.expression()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, p.expected("EOI, and_op, or or_op")
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return e, nil
}

// The texts of ATC's semantic errors (atc-router src/semantics.rs).
const (
	msgUnknownLHS     = "Unknown LHS field"
	msgTypeMismatch   = "Type mismatch between the LHS and RHS values of predicate"
	msgLowerString    = "lower-case transformation function only supported with String type fields"
	msgRegexString    = "Regex operators only supports string operands"
	msgPrefixString   = "Prefix/Postfix operators only supports string operands"
	msgOrderInt       = "Greater/GreaterOrEqual/Less/LessOrEqual operators only supports integer operands"
	msgInCIDR         = "In/NotIn operators only supports IP in CIDR"
	msgContainsString = "Contains operator only supports string operands"
)

// check is ATC's semantic validation, in its order.
func (e *expr) check() error {
	switch e.kind {
	case nodeAnd, nodeOr:
		if err := e.l.check(); err != nil {
			return err
		}
		return e.r.check()
	case nodeNot:
		return e.l.check()
	}
	p := &e.p
	def, ok := streamFields[p.name]
	if !ok {
		return errors.New(msgUnknownLHS)
	}
	p.field = def.f
	if p.op != opRegex && p.op != opIn && p.op != opNotIn && def.t != p.rhs.t {
		return errors.New(msgTypeMismatch)
	}
	if p.lower && def.t != typeString {
		return errors.New(msgLowerString)
	}
	switch p.op {
	case opRegex:
		if def.t != typeString {
			return errors.New(msgRegexString)
		}
	case opPrefix, opPostfix:
		if p.rhs.t != typeString {
			return errors.New(msgPrefixString)
		}
	case opGt, opGe, opLt, opLe:
		if p.rhs.t != typeInt {
			return errors.New(msgOrderInt)
		}
	case opIn, opNotIn:
		if def.t != typeIPAddr || p.rhs.t != typeIPCIDR {
			return errors.New(msgInCIDR)
		}
	case opContains:
		if p.rhs.t != typeString {
			return errors.New(msgContainsString)
		}
	}
	return nil
}

// parser is a recursive-descent parser of the grammar above, trying
// alternatives in the grammar's order.
type parser struct {
	src   string
	pos   int
	depth int // parentheses open at pos
}

// maxDepth bounds the nesting of parentheses, so that a hostile
// expression posted to the Admin API cannot make the parser recurse
// without end (ATC has no such bound).
const maxDepth = 100

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) peek(s string) bool { return strings.HasPrefix(p.src[p.pos:], s) }

// expression reads terms joined by && and ||, and groups them with ||
// binding tighter than && (both left-associative), as ATC's Pratt parser
// does.
func (p *parser) expression() (*expr, error) {
	var and *expr // the && chain so far
	or, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		p.skipSpace()
		switch {
		case p.peek("||"):
			p.pos += 2
			t, err := p.term()
			if err != nil {
				return nil, err
			}
			or = &expr{kind: nodeOr, l: or, r: t}
		case p.peek("&&"):
			p.pos += 2
			and = joinAnd(and, or)
			if or, err = p.term(); err != nil {
				return nil, err
			}
		default:
			return joinAnd(and, or), nil
		}
	}
}

func joinAnd(l, r *expr) *expr {
	if l == nil {
		return r
	}
	return &expr{kind: nodeAnd, l: l, r: r}
}

func (p *parser) term() (*expr, error) {
	p.skipSpace()
	start := p.pos
	if p.peek("!") || p.peek("(") {
		not := p.peek("!")
		if not {
			p.pos++
			p.skipSpace()
			if !p.peek("(") {
				p.pos = start
				return nil, p.expected("term")
			}
		}
		if p.depth == maxDepth {
			return nil, p.custom(p.pos, fmt.Sprintf("parentheses nest deeper than %d levels", maxDepth), p.pos+1)
		}
		p.pos++
		p.depth++
		e, err := p.expression()
		if err != nil {
			return nil, err
		}
		p.depth--
		p.skipSpace()
		if !p.peek(")") {
			return nil, p.expected("and_op or or_op")
		}
		p.pos++
		if not {
			e = &expr{kind: nodeNot, l: e}
		}
		return e, nil
	}
	if p.ident() == "" {
		return nil, p.expected("term")
	}
	p.pos = start
	pred, err := p.predicate()
	if err != nil {
		return nil, err
	}
	return &expr{kind: nodePredicate, p: *pred}, nil
}

// ident reads ASCII_ALPHA (ASCII_ALPHANUMERIC | "_" | ".")*.
func (p *parser) ident() string {
	start := p.pos
	if p.pos >= len(p.src) || !isAlpha(p.src[p.pos]) {
		return ""
	}
	p.pos++
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if !isAlpha(c) && !isDigit(c) && c != '_' && c != '.' {
			break
		}
		p.pos++
	}
	return p.src[start:p.pos]
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }

func (p *parser) predicate() (*predicate, error) {
	pred := &predicate{}
	if err := p.lhs(pred); err != nil {
		return nil, err
	}
	p.skipSpace()
	op, ok := p.binOp()
	if !ok {
		return nil, p.expected("binary_operator")
	}
	pred.op = op
	p.skipSpace()
	start := p.pos
	rhs, err := p.rhs()
	if err != nil {
		return nil, err
	}
	if op == opRegex {
		if rhs.t != typeString {
			return nil, p.custom(start, "regex operator can only be used with String operands")
		}
		re, err := regexp.Compile(rhs.str)
		if err != nil {
			return nil, p.custom(start, err.Error())
		}
		rhs.t, rhs.re = typeRegex, re
	}
	pred.rhs = rhs
	return pred, nil
}

// lhs reads a field, possibly wrapped in transformation functions.
func (p *parser) lhs(pred *predicate) error {
	start := p.pos
	name := p.ident()
	if name == "" {
		return p.expected("lhs")
	}
	after := p.pos
	p.skipSpace()
	if !p.peek("(") {
		p.pos = after
		pred.name = name
		return nil
	}
	p.pos++
	p.skipSpace()
	if p.depth++; p.depth > maxDepth {
		return p.custom(start, fmt.Sprintf("parentheses nest deeper than %d levels", maxDepth), p.pos)
	}
	if err := p.lhs(pred); err != nil {
		return err
	}
	p.depth--
	p.skipSpace()
	if !p.peek(")") {
		return p.expected("binary_operator")
	}
	p.pos++
	switch name {
	case "lower":
		pred.lower = true
	case "any":
		// Every stream field has one value, so "any" changes nothing.
	default:
		return p.custom(start, "unknown transformation function: "+name, p.pos)
	}
	return nil
}

func (p *parser) binOp() (binOp, bool) {
	for _, o := range binOps {
		if !p.peek(o.text) {
			continue
		}
		if o.op != opNotIn {
			p.pos += len(o.text)
			return o.op, true
		}
		save := p.pos
		p.pos += len(o.text)
		p.skipSpace()
		if p.peek("in") {
			p.pos += 2
			return opNotIn, true
		}
		p.pos = save
	}
	return 0, false
}

func (p *parser) rhs() (value, error) {
	switch {
	case p.peek(`"`):
		return p.str()
	case p.peek(`r#"`):
		end := strings.Index(p.src[p.pos+3:], `"#`)
		if end < 0 {
			return value{}, p.expected("rhs")
		}
		s := p.src[p.pos+3 : p.pos+3+end]
		p.pos += 3 + end + 2
		return value{t: typeString, str: s}, nil
	}
	if v, ok, err := p.ip(); ok || err != nil {
		return v, err
	}
	return p.integer()
}

// str reads a string literal; its escapes are \" \\ \n \r \t.
func (p *parser) str() (value, error) {
	var b strings.Builder
	i := p.pos + 1
	for i < len(p.src) {
		c := p.src[i]
		switch c {
		case '"':
			p.pos = i + 1
			return value{t: typeString, str: b.String()}, nil
		case '\\':
			if i+1 >= len(p.src) {
				return value{}, p.expectedAt(i, "rhs")
			}
			switch p.src[i+1] {
			case '"', '\\':
				b.WriteByte(p.src[i+1])
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				return value{}, p.expectedAt(i, "rhs")
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
	return value{}, p.expectedAt(p.pos, "rhs")
}

// ip tries the grammar's ip literals in order: IPv4 CIDR, IPv6 CIDR,
// IPv4, IPv6. ok is false when none matches the text.
func (p *parser) ip() (v value, ok bool, err error) {
	start := p.pos
	for _, cidr := range []bool{true, false} {
		for _, v4 := range []bool{true, false} {
			n := scanIPv6(p.src[start:])
			if v4 {
				n = scanIPv4(p.src[start:])
			}
			if n == 0 {
				continue
			}
			if cidr {
				maxBits := 3
				if v4 {
					maxBits = 2
				}
				bits := scanDigits(p.src[start+n:], 1, maxBits, true)
				if bits == 0 {
					continue
				}
				n += bits
			}
			text := p.src[start : start+n]
			p.pos = start + n
			if cidr {
				pf, perr := netip.ParsePrefix(text)
				if perr != nil {
					return v, true, p.custom(start, "couldn't parse address in network: "+text, p.pos)
				}
				if pf != pf.Masked() {
					return v, true, p.custom(start, "host part of address was not zero", p.pos)
				}
				return value{t: typeIPCIDR, prefix: pf}, true, nil
			}
			a, perr := netip.ParseAddr(text)
			if perr != nil || a.Zone() != "" {
				msg := "invalid IPv6 address syntax"
				if v4 {
					msg = "invalid IPv4 address syntax"
				}
				return v, true, p.custom(start, msg, p.pos)
			}
			return value{t: typeIPAddr, addr: a}, true, nil
		}
	}
	return v, false, nil
}

// scanDigits returns the length of min to max decimal digits at the start
// of s (0 if fewer than min), the slash before them included when slash.
func scanDigits(s string, min, max int, slash bool) int {
	off := 0
	if slash {
		if !strings.HasPrefix(s, "/") {
			return 0
		}
		off = 1
	}
	n := 0
	for n < max && off+n < len(s) && isDigit(s[off+n]) {
		n++
	}
	if n < min {
		return 0
	}
	return off + n
}

// scanIPv4 matches DIGIT{1,3} ("." DIGIT{1,3}){3}.
func scanIPv4(s string) int {
	n := scanDigits(s, 1, 3, false)
	if n == 0 {
		return 0
	}
	for range 3 {
		if n >= len(s) || s[n] != '.' {
			return 0
		}
		d := scanDigits(s[n+1:], 1, 3, false)
		if d == 0 {
			return 0
		}
		n += 1 + d
	}
	return n
}

// scanIPv6 matches (":" | HEX{1,4}) ":" (HEX{1,4} | ":")*.
func scanIPv6(s string) int {
	hex := func(i int) int {
		n := 0
		for n < 4 && i+n < len(s) && isHex(s[i+n]) {
			n++
		}
		return n
	}
	var n int
	switch {
	case strings.HasPrefix(s, ":"):
		n = 1
	default:
		n = hex(0)
		if n == 0 {
			return 0
		}
	}
	if n >= len(s) || s[n] != ':' {
		return 0
	}
	n++
	for n < len(s) {
		if h := hex(n); h > 0 {
			n += h
		} else if s[n] == ':' {
			n++
		} else {
			break
		}
	}
	return n
}

// integer reads "-"? ("0" OCT+ | "0x" HEX+ | DIGIT+).
func (p *parser) integer() (value, error) {
	start := p.pos
	i := p.pos
	if i < len(p.src) && p.src[i] == '-' {
		i++
	}
	digits := func(from int, ok func(byte) bool) int {
		j := from
		for j < len(p.src) && ok(p.src[j]) {
			j++
		}
		return j - from
	}
	var text string
	base := 10
	switch {
	case strings.HasPrefix(p.src[i:], "0") && digits(i+1, func(c byte) bool { return '0' <= c && c <= '7' }) > 0:
		n := digits(i+1, func(c byte) bool { return '0' <= c && c <= '7' })
		text, base, p.pos = p.src[i+1:i+1+n], 8, i+1+n
	case strings.HasPrefix(p.src[i:], "0x") && digits(i+2, isHex) > 0:
		n := digits(i+2, isHex)
		text, base, p.pos = p.src[i+2:i+2+n], 16, i+2+n
	case digits(i, isDigit) > 0:
		n := digits(i, isDigit)
		text, p.pos = p.src[i:i+n], i+n
	default:
		return value{}, p.expectedAt(start, "rhs")
	}
	num, err := strconv.ParseInt(text, base, 64)
	if err != nil {
		return value{}, p.custom(start, "number too large to fit in target type", p.pos)
	}
	if p.src[start] == '-' {
		num = -num
	}
	return value{t: typeInt, num: num}, nil
}

func (p *parser) expected(what string) error { return p.expectedAt(p.pos, what) }

func (p *parser) expectedAt(pos int, what string) error {
	return &syntaxError{src: p.src, pos: pos, msg: "expected " + what}
}

// custom is an error about the text from start to end (default: the
// current position).
func (p *parser) custom(start int, msg string, end ...int) error {
	e := &syntaxError{src: p.src, pos: start, end: p.pos, msg: msg}
	if len(end) > 0 {
		e.end = end[0]
	}
	return e
}

// syntaxError prints like the pest parser errors ATC returns:
//
//	 --> 1:14
//	  |
//	1 | net.src.port == "x
//	  |              ^---
//	  |
//	  = expected rhs
type syntaxError struct {
	src      string
	pos, end int // end > pos marks a span
	msg      string
}

func (e *syntaxError) Error() string {
	lineStart := strings.LastIndexByte(e.src[:e.pos], '\n') + 1
	lineEnd := strings.IndexByte(e.src[lineStart:], '\n')
	if lineEnd < 0 {
		lineEnd = len(e.src)
	} else {
		lineEnd += lineStart
	}
	line := 1 + strings.Count(e.src[:lineStart], "\n")
	col := 1 + len([]rune(e.src[lineStart:e.pos]))
	num := strconv.Itoa(line)
	pad := strings.Repeat(" ", len(num))
	mark := "^---"
	if e.end > e.pos {
		n := len([]rune(e.src[e.pos:min(e.end, lineEnd)]))
		mark = "^"
		if n > 1 {
			mark += strings.Repeat("-", n-2) + "^"
		}
	}
	return fmt.Sprintf("%s--> %d:%d\n%s |\n%s | %s\n%s | %s%s\n%s |\n%s = %s",
		pad, line, col, pad, num, e.src[lineStart:lineEnd], pad, strings.Repeat(" ", col-1), mark, pad, pad, e.msg)
}
