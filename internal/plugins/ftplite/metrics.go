package ftplite

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the ftp-lite series (the README's table).
const (
	loginSuccess   = "success"   // a password login
	loginAnonymous = "anonymous" // an anonymous login
	loginFailure   = "failure"   // a wrong name or password
	loginRefused   = "refused"   // USER or PASS turned away by the lock-out, unchecked

	dirDownload = "download"
	dirUpload   = "upload"

	transferComplete = "complete" // 226
	transferAborted  = "aborted"  // ABOR, or the control connection went away
	transferFailed   = "failed"   // no data connection, a network or disk error
)

// metrics are ftp-lite's series for one server; a nil *metrics counts
// nothing. Children are made up front, so counting never looks a label up.
type metrics struct {
	logins    map[string]prometheus.Counter
	transfers map[[2]string]prometheus.Counter // direction, result
	bytes     map[string]prometheus.Counter    // direction
}

// newMetrics registers the server's series with reg; nil reg, nil metrics.
func newMetrics(reg prometheus.Registerer, s *server) *metrics {
	if reg == nil {
		return nil
	}
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twistd_ftp_logins_total", Help: "Logins by result: success, anonymous, failure, refused (lock-out).",
	}, []string{"result"})
	transfers := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twistd_ftp_transfers_total", Help: "File transfers (RETR, STOR, APPE, STOU) by direction and result: complete, aborted, failed.",
	}, []string{"direction", "result"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "twistd_ftp_transfer_bytes_total", Help: "Bytes of files moved over data connections, by direction.",
	}, []string{"direction"})
	m := &metrics{logins: map[string]prometheus.Counter{}, transfers: map[[2]string]prometheus.Counter{}, bytes: map[string]prometheus.Counter{}}
	for _, r := range []string{loginSuccess, loginAnonymous, loginFailure, loginRefused} {
		m.logins[r] = logins.WithLabelValues(r)
	}
	for _, d := range []string{dirDownload, dirUpload} {
		m.bytes[d] = bytes.WithLabelValues(d)
		for _, r := range []string{transferComplete, transferAborted, transferFailed} {
			m.transfers[[2]string{d, r}] = transfers.WithLabelValues(d, r)
		}
	}
	reg.MustRegister(logins, transfers, bytes, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "twistd_ftp_sessions_open", Help: "Control connections admitted (within --max-clients) and not yet closed.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.clients)
	}))
	return m
}

func (m *metrics) login(result string) {
	if m != nil {
		m.logins[result].Inc()
	}
}

// transfer counts a finished transfer: complete when r is a 226, aborted
// when ctx ended (ABOR, a lost session), failed otherwise.
func (m *metrics) transfer(ctx context.Context, direction string, r result) result {
	if m == nil {
		return r
	}
	outcome := transferFailed
	switch {
	case r.code == 226:
		outcome = transferComplete
	case ctx.Err() != nil:
		outcome = transferAborted
	}
	m.transfers[[2]string{direction, outcome}].Inc()
	return r
}

func (m *metrics) moved(direction string, n int64) {
	if m != nil && n > 0 {
		m.bytes[direction].Add(float64(n))
	}
}
