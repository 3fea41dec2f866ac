package router

// program holds the expressions of all of a router's routes compiled to
// steps, one per predicate, in a single slice. A step names the step to
// test next when its predicate holds and when it fails, so evaluating an
// expression is a loop over a few adjacent steps instead of a walk over
// separately allocated tree nodes; at thousands of routes that walk's
// cache misses, not the tests themselves, dominated the time of a match.
type program []step

type step struct {
	p predicate
	// next is the step after this one when the predicate fails (0) or
	// holds (1), or accept or reject.
	next [2]int32
}

// The ends of an evaluation, as step numbers.
const (
	accept int32 = -1
	reject int32 = -2
)

// add compiles e and returns its first step (accept when e is nil, an
// expression with nothing left to test). String literals are replaced by
// their copy in intern (when not nil), so routes that test the same
// value, such as their protocols, share one copy in the CPU cache.
func (g *program) add(e *expr, intern map[string]string) int32 {
	if e == nil {
		return accept
	}
	return g.emit(e, accept, reject, intern)
}

// emit appends the steps of e, which go on to onTrue when e holds and to
// onFalse when it does not, and returns the first one. && and || keep
// their short-circuit order: the left side is tested first.
func (g *program) emit(e *expr, onTrue, onFalse int32, intern map[string]string) int32 {
	switch e.kind {
	case nodeAnd:
		return g.emit(e.l, g.emit(e.r, onTrue, onFalse, intern), onFalse, intern)
	case nodeOr:
		return g.emit(e.l, onTrue, g.emit(e.r, onTrue, onFalse, intern), intern)
	case nodeNot:
		return g.emit(e.l, onFalse, onTrue, intern)
	}
	p := e.p
	if s, ok := intern[p.rhs.str]; ok {
		p.rhs.str = s
	} else if intern != nil {
		intern[p.rhs.str] = p.rhs.str
	}
	*g = append(*g, step{p: p, next: [2]int32{onFalse, onTrue}})
	return int32(len(*g) - 1)
}

// holds reports whether the expression starting at step pc holds for ci.
func (g program) holds(pc int32, ci *ConnInfo) bool {
	for pc >= 0 {
		s := &g[pc]
		if s.p.eval(ci) {
			pc = s.next[1]
		} else {
			pc = s.next[0]
		}
	}
	return pc == accept
}
