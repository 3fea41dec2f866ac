package pdk

import glua "github.com/yuin/gopher-lua"

// routerFuncs is kong.router (kong/pdk/router.lua): its phases hold only
// log in stream.
var routerFuncs = []Func{
	{"get_route", authAndLater, routerGetRoute},
	{"get_service", authAndLater, routerGetService},
}

// entities returns the State's route and service tables, built once per
// connection so every call returns the same tables, as ngx.ctx.route is.
func (s *State) entities(L *glua.LState) (route, service glua.LValue) {
	if s.route == nil {
		s.route, s.service = glua.LNil, glua.LNil
		if s.Session != nil {
			r, svc := s.Session.Entities()
			if r != nil {
				s.route = toLua(L, r, arrayMT(L))
			}
			if svc != nil {
				s.service = toLua(L, svc, arrayMT(L))
			}
		}
	}
	return s.route, s.service
}

func routerGetRoute(L *glua.LState, s *State) int {
	r, _ := s.entities(L)
	L.Push(r)
	return 1
}

func routerGetService(L *glua.LState, s *State) int {
	_, svc := s.entities(L)
	L.Push(svc)
	return 1
}
