package lua

import (
	"math"
	"strings"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"

	"github.com/gong-proxy/gong/luanum"
)

// Number formatting, LuaJIT's way. gopher-lua turns a number into text
// with Go's shortest representation ("1.764e+09", "0.30000000000000004");
// LuaJIT, and so every Kong plugin, uses "%.14g" ("1764000000.123", "0.3").
// tostring, print, string.format("%s") and table.concat are replaced in
// openCompat; the `..` operator is compiled into the VM, so Compile
// rewrites its operands instead: each one that may be a number passes
// through numberText, a local bound once per chunk.

// concatLocal names the local each compiled chunk binds to numberText.
const concatLocal = "__gong_numtext"

// numberText returns its argument, or for a number whose text differs
// between gopher-lua and LuaJIT, LuaJIT's text.
func numberText(L *glua.LState) int {
	v := L.Get(1)
	if n, ok := v.(glua.LNumber); ok && !sameText(float64(n)) {
		L.Push(glua.LString(luanum.Format(float64(n))))
		return 1
	}
	L.Push(v)
	return 1
}

// sameText reports whether gopher-lua already prints n as LuaJIT does:
// integers below 1e14 in magnitude, which both print as digits.
func sameText(n float64) bool {
	return n == math.Trunc(n) && math.Abs(n) < 1e14 && !(n == 0 && math.Signbit(n))
}

// wrapFormat makes string.format's %s print numbers as LuaJIT does; other
// conversions are left to gopher-lua. It bounds the result's size first
// (widths, precisions and quoted strings can make it far larger than
// its arguments) and refuses one past the memory limit.
func wrapFormat(orig glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		format := L.CheckString(1)
		arg := 1
		size := float64(len(format))
		for i := 0; i < len(format); i++ {
			if format[i] != '%' {
				continue
			}
			i++
			if i < len(format) && format[i] == '%' {
				continue
			}
			start := i
			for i < len(format) && strings.IndexByte("-+ #0123456789.", format[i]) >= 0 {
				i++
			}
			size += formatWidth(format[start:i])
			arg++
			if i >= len(format) {
				break
			}
			switch v := L.Get(arg).(type) {
			case glua.LNumber:
				if format[i] == 's' {
					L.Replace(arg, glua.LString(luanum.Format(float64(v))))
				}
				size += 32
			case glua.LString:
				size += float64(len(v))
				if format[i] == 'q' {
					// %q escapes a byte in at most four.
					size += 3*float64(len(v)) + 2
				}
			default:
				size += 64
			}
		}
		CheckAlloc(L, size)
		return orig(L)
	}
}

// formatWidth bounds what a directive's flags, width and precision add:
// Go's fmt, under gopher-lua's string.format, ignores numbers past 1e6.
func formatWidth(spec string) float64 {
	width := 0.0
	for _, f := range strings.FieldsFunc(spec, func(r rune) bool { return r < '0' || r > '9' }) {
		if len(f) > 7 {
			continue
		}
		n := 0.0
		for _, c := range f {
			n = n*10 + float64(c-'0')
		}
		if n <= 1e6 {
			width += n
		}
	}
	return width
}

// tableConcat is table.concat with LuaJIT's number text. It measures the
// result before building it, so that a size past the memory limit is
// refused, not allocated.
func tableConcat(L *glua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	if i > j {
		L.Push(glua.LString(""))
		return 1
	}
	n := j - i + 1
	if n <= 0 || n > tableNewCap { // overflowed, or a hint too large
		n = tableNewCap
	}
	parts := make([]string, 0, n)
	size := float64(j-i) * float64(len(sep))
	for k := i; k <= j; k++ {
		switch v := t.RawGetInt(k).(type) {
		case glua.LString:
			parts = append(parts, string(v))
		case glua.LNumber:
			parts = append(parts, luanum.Format(float64(v)))
		default:
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		size += float64(len(parts[len(parts)-1]))
	}
	CheckAlloc(L, size)
	L.Push(glua.LString(strings.Join(parts, sep)))
	return 1
}

// rewriteConcat makes the `..` operands of a chunk that may be numbers go
// through numberText, and binds it at the chunk's top. A chunk run in an
// environment without the global falls back to passing values through.
func rewriteConcat(chunk []ast.Stmt) []ast.Stmt {
	r := concatRewriter{}
	r.stmts(chunk)
	if !r.used {
		return chunk
	}
	bind := &ast.LocalAssignStmt{Names: []string{concatLocal}, Exprs: []ast.Expr{
		&ast.LogicalOpExpr{Operator: "or", Lhs: &ast.IdentExpr{Value: concatLocal}, Rhs: &ast.FunctionExpr{
			ParList: &ast.ParList{Names: []string{"v"}},
			Stmts:   []ast.Stmt{&ast.ReturnStmt{Exprs: []ast.Expr{&ast.IdentExpr{Value: "v"}}}},
		}},
	}}
	return append([]ast.Stmt{bind}, chunk...)
}

type concatRewriter struct{ used bool }

func (r *concatRewriter) stmts(list []ast.Stmt) {
	for _, s := range list {
		r.stmt(s)
	}
}

func (r *concatRewriter) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		r.exprs(s.Lhs)
		r.exprs(s.Rhs)
	case *ast.LocalAssignStmt:
		r.exprs(s.Exprs)
	case *ast.FuncCallStmt:
		s.Expr = r.expr(s.Expr)
	case *ast.DoBlockStmt:
		r.stmts(s.Stmts)
	case *ast.WhileStmt:
		s.Condition = r.expr(s.Condition)
		r.stmts(s.Stmts)
	case *ast.RepeatStmt:
		s.Condition = r.expr(s.Condition)
		r.stmts(s.Stmts)
	case *ast.IfStmt:
		s.Condition = r.expr(s.Condition)
		r.stmts(s.Then)
		r.stmts(s.Else)
	case *ast.NumberForStmt:
		s.Init, s.Limit = r.expr(s.Init), r.expr(s.Limit)
		if s.Step != nil {
			s.Step = r.expr(s.Step)
		}
		r.stmts(s.Stmts)
	case *ast.GenericForStmt:
		r.exprs(s.Exprs)
		r.stmts(s.Stmts)
	case *ast.FuncDefStmt:
		r.stmts(s.Func.Stmts)
	case *ast.ReturnStmt:
		r.exprs(s.Exprs)
	}
}

func (r *concatRewriter) exprs(list []ast.Expr) {
	for i, e := range list {
		list[i] = r.expr(e)
	}
}

func (r *concatRewriter) expr(e ast.Expr) ast.Expr {
	switch e := e.(type) {
	case *ast.StringConcatOpExpr:
		e.Lhs, e.Rhs = r.operand(e.Lhs), r.operand(e.Rhs)
	case *ast.AttrGetExpr:
		e.Object, e.Key = r.expr(e.Object), r.expr(e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				f.Key = r.expr(f.Key)
			}
			f.Value = r.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		if e.Func != nil {
			e.Func = r.expr(e.Func)
		}
		if e.Receiver != nil {
			e.Receiver = r.expr(e.Receiver)
		}
		r.exprs(e.Args)
	case *ast.LogicalOpExpr:
		e.Lhs, e.Rhs = r.expr(e.Lhs), r.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		e.Lhs, e.Rhs = r.expr(e.Lhs), r.expr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		e.Lhs, e.Rhs = r.expr(e.Lhs), r.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		e.Expr = r.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		e.Expr = r.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		e.Expr = r.expr(e.Expr)
	case *ast.FunctionExpr:
		r.stmts(e.Stmts)
	}
	return e
}

// operand rewrites one side of `..`: string literals, nested
// concatenations and lengths (always integers) stay as they are.
func (r *concatRewriter) operand(e ast.Expr) ast.Expr {
	switch e.(type) {
	case *ast.StringExpr, *ast.UnaryLenOpExpr, *ast.NilExpr, *ast.TrueExpr, *ast.FalseExpr, *ast.TableExpr, *ast.FunctionExpr:
		return r.expr(e)
	case *ast.StringConcatOpExpr:
		return r.expr(e)
	}
	r.used = true
	call := &ast.FuncCallExpr{Func: &ast.IdentExpr{Value: concatLocal}, Args: []ast.Expr{r.expr(e)}}
	call.SetLine(e.Line())
	call.SetLastLine(e.LastLine())
	return call
}
