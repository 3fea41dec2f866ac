package pdk

import (
	"log/syslog"

	glua "github.com/yuin/gopher-lua"
)

// syslogFacilities and syslogLevels are luasyslog's constants.
var syslogFacilities = map[string]syslog.Priority{
	"FACILITY_AUTH": syslog.LOG_AUTH, "FACILITY_AUTHPRIV": syslog.LOG_AUTHPRIV,
	"FACILITY_CRON": syslog.LOG_CRON, "FACILITY_DAEMON": syslog.LOG_DAEMON,
	"FACILITY_FTP": syslog.LOG_FTP, "FACILITY_KERN": syslog.LOG_KERN,
	"FACILITY_LPR": syslog.LOG_LPR, "FACILITY_MAIL": syslog.LOG_MAIL,
	"FACILITY_NEWS": syslog.LOG_NEWS, "FACILITY_SYSLOG": syslog.LOG_SYSLOG,
	"FACILITY_USER": syslog.LOG_USER, "FACILITY_UUCP": syslog.LOG_UUCP,
	"FACILITY_LOCAL0": syslog.LOG_LOCAL0, "FACILITY_LOCAL1": syslog.LOG_LOCAL1,
	"FACILITY_LOCAL2": syslog.LOG_LOCAL2, "FACILITY_LOCAL3": syslog.LOG_LOCAL3,
	"FACILITY_LOCAL4": syslog.LOG_LOCAL4, "FACILITY_LOCAL5": syslog.LOG_LOCAL5,
	"FACILITY_LOCAL6": syslog.LOG_LOCAL6, "FACILITY_LOCAL7": syslog.LOG_LOCAL7,
}

var syslogLevels = map[string]syslog.Priority{
	"LOG_EMERG": syslog.LOG_EMERG, "LOG_ALERT": syslog.LOG_ALERT, "LOG_CRIT": syslog.LOG_CRIT,
	"LOG_ERR": syslog.LOG_ERR, "LOG_WARNING": syslog.LOG_WARNING, "LOG_NOTICE": syslog.LOG_NOTICE,
	"LOG_INFO": syslog.LOG_INFO, "LOG_DEBUG": syslog.LOG_DEBUG,
}

// openLsyslog is the lsyslog module (luasyslog): open(ident, facility)
// names the sender, log(level, message) writes one message to the local
// syslog socket (Options.SyslogSocket, else the system's), close() forgets
// the sender. Each message uses a connection of its own, so no socket
// outlives the call.
func openLsyslog(L *glua.LState) int {
	ident, facility := "lua", syslog.LOG_USER
	m := L.NewTable()
	for k, v := range syslogFacilities {
		m.RawSetString(k, glua.LNumber(v))
	}
	for k, v := range syslogLevels {
		m.RawSetString(k, glua.LNumber(v))
	}
	L.SetFuncs(m, map[string]glua.LGFunction{
		"open": func(L *glua.LState) int {
			ident = L.CheckString(1)
			facility = syslog.Priority(L.OptInt(2, int(syslog.LOG_USER)))
			return 0
		},
		"log": func(L *glua.LState) int {
			level := syslog.Priority(L.CheckInt(1))
			msg := L.CheckString(2)
			network, addr := "", ""
			if b := BindingOf(L); b != nil && b.opts != nil && b.opts.SyslogSocket != "" {
				network, addr = "unixgram", b.opts.SyslogSocket
			}
			w, err := syslog.Dial(network, addr, facility|level, ident)
			if err != nil {
				L.RaiseError("lsyslog: %s", err)
			}
			defer w.Close()
			if _, err := w.Write([]byte(msg)); err != nil {
				L.RaiseError("lsyslog: %s", err)
			}
			return 0
		},
		"close": func(*glua.LState) int {
			ident, facility = "lua", syslog.LOG_USER
			return 0
		},
	})
	L.Push(m)
	return 1
}
