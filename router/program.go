package router

// program holds the expressions of all of a router's routes compiled to
// steps, one per predicate, in a single slice. A step names the step to
// test next when its predicate holds and when it fails, so evaluating an
// expression is a loop over a few adjacent steps instead of a walk over
// separately allocated tree nodes; at thousands of routes that walk's
// cache misses, not the tests themselves, dominated the time of a match.
// Routes share the steps they have in common (see add).
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
// expression with nothing left to test). seen holds the steps already
// in g (nil: share none): a step equal to one of them, same predicate and
// same successors, is not added again, so routes that end in the same
// tests, such as the condition on their protocols, share those steps and
// keep them in the CPU cache.
func (g *program) add(e *expr, seen map[step]int32) int32 {
	if e == nil {
		return accept
	}
	return g.emit(e, accept, reject, seen)
}

// emit adds the steps of e, which go on to onTrue when e holds and to
// onFalse when it does not, and returns the first one. && and || keep
// their short-circuit order: the left side is tested first.
func (g *program) emit(e *expr, onTrue, onFalse int32, seen map[step]int32) int32 {
	switch e.kind {
	case nodeAnd:
		return g.emit(e.l, g.emit(e.r, onTrue, onFalse, seen), onFalse, seen)
	case nodeOr:
		return g.emit(e.l, onTrue, g.emit(e.r, onTrue, onFalse, seen), seen)
	case nodeNot:
		return g.emit(e.l, onFalse, onTrue, seen)
	}
	st := step{p: e.p, next: [2]int32{onFalse, onTrue}}
	if pc, ok := seen[st]; ok {
		return pc
	}
	*g = append(*g, st)
	pc := int32(len(*g) - 1)
	if seen != nil {
		seen[st] = pc
	}
	return pc
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
