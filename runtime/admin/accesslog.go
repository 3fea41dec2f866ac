package admin

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// AccessLog wraps an API handler so that each request is logged, as
// Kong's Admin API logs through nginx: one line in nginx's combined
// format, handed to write.
func AccessLog(next http.Handler, write func(line []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		write(fmt.Appendf(nil, "%s - - [%s] \"%s %s %s\" %d %d %q %q\n", host,
			time.Now().Format("02/Jan/2006:15:04:05 -0700"), r.Method, r.RequestURI, r.Proto,
			rec.status, rec.bytes, orDash(r.Referer()), orDash(r.UserAgent())))
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// recorder notes the status and body size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.bytes += n
	return n, err
}
