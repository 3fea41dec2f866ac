package lua

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Bundle is the compiled Lua of one config generation: every module parsed
// and compiled once, shared read-only by all VMs built from it (gopher-lua
// README, "Sharing Lua byte code between LStates").
type Bundle struct {
	protos    map[string]*glua.FunctionProto
	goModules map[string]glua.LGFunction
}

// Option configures a Bundle.
type Option func(*Bundle) error

// GoModules adds modules written in Go: require(name) calls the loader,
// which pushes the module value and returns 1, as for L.PreloadModule.
// A name may not be both a Lua and a Go module.
func GoModules(loaders map[string]glua.LGFunction) Option {
	return func(b *Bundle) error {
		for name, fn := range loaders {
			if _, dup := b.protos[name]; dup {
				return fmt.Errorf("module %q is both a Lua and a Go module", name)
			}
			if _, dup := b.goModules[name]; dup {
				return fmt.Errorf("go module %q registered twice", name)
			}
			b.goModules[name] = fn
		}
		return nil
	}
}

// NewBundle compiles modules (module name -> Lua source). The chunk name of
// each module is its module name, so errors and tracebacks read
// "kong.plugins.x.handler:12: ...". All syntax errors are reported, sorted
// by module name.
func NewBundle(modules map[string]string, opts ...Option) (*Bundle, error) {
	b := &Bundle{
		protos:    make(map[string]*glua.FunctionProto, len(modules)),
		goModules: map[string]glua.LGFunction{},
	}
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		proto, err := Compile(name, modules[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.protos[name] = proto
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, opt := range opts {
		if err := opt(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Compile parses and compiles one chunk. A failure is an *Error of Kind
// Syntax whose message names the chunk and the line.
func Compile(name, source string) (*glua.FunctionProto, error) {
	chunk, err := parse.Parse(strings.NewReader(rewriteEscapes(source)), name)
	if err != nil {
		return nil, syntaxError(name, err)
	}
	proto, err := glua.Compile(rewriteConcat(chunk), name)
	if err != nil {
		return nil, syntaxError(name, err)
	}
	return proto, nil
}

func syntaxError(name string, err error) *Error {
	var msg string
	var pe *parse.Error
	var ce *glua.CompileError
	switch {
	case errors.As(err, &pe) && pe.Pos.Line == parse.EOF:
		msg = fmt.Sprintf("module %q: at end of file: %s", name, pe.Message)
	case errors.As(err, &pe):
		msg = fmt.Sprintf("module %q line %d: near '%s': %s", name, pe.Pos.Line, pe.Token, pe.Message)
	case errors.As(err, &ce):
		msg = fmt.Sprintf("module %q line %d: %s", name, ce.Line, ce.Message)
	default:
		msg = fmt.Sprintf("module %q: %s", name, strings.TrimSpace(err.Error()))
	}
	return &Error{Kind: Syntax, Msg: msg, Err: err}
}

// Has reports whether name is a Lua or Go module of the bundle.
func (b *Bundle) Has(name string) bool {
	if _, ok := b.protos[name]; ok {
		return true
	}
	_, ok := b.goModules[name]
	return ok
}

// Modules lists the module names, sorted.
func (b *Bundle) Modules() []string {
	names := make([]string, 0, len(b.protos)+len(b.goModules))
	for name := range b.protos {
		names = append(names, name)
	}
	for name := range b.goModules {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// searcher is a package.loaders entry: it returns a loader for a bundle
// module, or the "\n\tno module ..." line require collects on a miss.
func (b *Bundle) searcher(L *glua.LState) int {
	name := L.CheckString(1)
	if proto, ok := b.protos[name]; ok {
		L.Push(L.NewFunctionFromProto(proto))
		return 1
	}
	if fn, ok := b.goModules[name]; ok {
		L.Push(L.NewFunction(fn))
		return 1
	}
	L.Push(glua.LString("\n\tno module '" + name + "' in the bundle"))
	return 1
}
