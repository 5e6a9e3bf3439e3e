// Package metrics holds a node's Prometheus metrics: what an operator
// graphs and alerts on (peers connected, connects and disconnects by
// reason, handshake refusals, events and their latency, bytes, streams in
// flight, keep-alive round trips, channels, auth decisions, reloads and
// certificate expiry).
//
// Every series follows Prometheus' conventions: base units (seconds,
// bytes), counters end in _total, and no label takes an unbounded set of
// values: channel names and paths never become labels; a handler label is
// a name registered on this node or "other"; a reason is one of the fixed
// sets below. Per-peer series (one certificate expiry per connected peer)
// exist only with Options.PerPeer, as a server may hold 10,000 peers.
//
// A nil *Metrics is valid and records nothing, so that the code that
// knows a fact calls it unconditionally: m.Event(...).
package metrics

import (
	"crypto/x509"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Directions of an event: In is one a peer sent this node, Out one this
// node sent its peer.
const (
	In  = "in"
	Out = "out"
)

// Other is the handler label of an event whose handler is not one
// registered on this node.
const Other = "other"

// The reasons of DisconnectReasons, the values of the reason label of
// restpipe_disconnects_total.
const (
	ReasonClosed    = "closed"            // this node closed it (shutdown, Disconnect)
	ReasonPeer      = "peer_closed"       // the peer closed it or its connection ended
	ReasonKeepAlive = "keepalive_timeout" // nothing received for too long
	ReasonReplaced  = "replaced"          // a newer connection of the same identity
	ReasonExpired   = "cert_expired"      // a certificate it rests on expired
	ReasonRevoked   = "revoked"           // the peer's certificate is no longer accepted
	ReasonGoAway    = "peer_shutdown"     // the peer is shutting down
	ReasonError     = "error"             // any other error
)

// DisconnectReasons are every reason a disconnect is counted by.
var DisconnectReasons = []string{ReasonClosed, ReasonPeer, ReasonKeepAlive, ReasonReplaced,
	ReasonExpired, ReasonRevoked, ReasonGoAway, ReasonError}

// The reasons of RefusalReasons, the values of the reason label of
// restpipe_handshake_refusals_total.
const (
	RefusedTLS     = "tls"       // the TLS handshake failed (unknown CA, bad certificate, not TLS)
	RefusedNoName  = "no_name"   // the certificate has no Common Name
	RefusedBusy    = "busy"      // another connection with the certificate is in its hello
	RefusedRevoked = "revoked"   // the certificate is revoked (VerifyPeer refused it)
	RefusedHello   = "hello"     // the hello failed (protocol version, malformed, silent)
	RefusedTimeout = "timeout"   // the handshake took longer than HandshakeTimeout
	RefusedServer  = "by_server" // on a client: the server refused this node
	RefusedDial    = "dial"      // on a client: the server could not be reached
)

// RefusalReasons are every reason a handshake refusal is counted by.
var RefusalReasons = []string{RefusedTLS, RefusedNoName, RefusedBusy, RefusedRevoked,
	RefusedHello, RefusedTimeout, RefusedServer, RefusedDial}

// Statuses classes of events.
var statusClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// Options say what a Metrics is for.
type Options struct {
	// Version is the software version, for restpipe_build_info.
	Version string
	// Role is "server" or "client".
	Role string
	// PerPeer adds a series per connected peer (its certificate's
	// expiry). Off by default: a server may hold 10,000 peers.
	PerPeer bool
}

// Metrics is one node's metrics, on a registry of its own (not
// Prometheus' global one), with the Go runtime and process collectors.
type Metrics struct {
	reg     *prometheus.Registry
	perPeer bool

	connects     prometheus.Counter
	disconnects  *prometheus.CounterVec
	refusals     *prometheus.CounterVec
	events       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	rtt          prometheus.Histogram
	reloads      *prometheus.CounterVec
	authDecision *prometheus.CounterVec
	authCache    *prometheus.CounterVec
	certExpiry   *prometheus.GaugeVec
	peerExpiry   *prometheus.GaugeVec

	mu    sync.Mutex
	funcs map[string]func() float64 // the values of the func collectors, set later
}

// New returns the metrics of a node, registered on a registry of their
// own.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, perPeer: opts.PerPeer, funcs: map[string]func() float64{}}
	f := promauto{reg}
	goversion := runtime.Version()
	bi := f.gaugeVec("restpipe_build_info", "The software this node runs: always 1, with its version and Go's.", "version", "goversion", "role")
	bi.WithLabelValues(opts.Version, goversion, opts.Role).Set(1)

	m.connects = f.counter("restpipe_connects_total", "Sessions established with a peer (on a server: clients connected; on a client: connections to the server).")
	m.disconnects = f.counterVec("restpipe_disconnects_total", "Sessions with a peer that ended, by reason.", "reason")
	for _, r := range DisconnectReasons {
		m.disconnects.WithLabelValues(r)
	}
	m.refusals = f.counterVec("restpipe_handshake_refusals_total", "Connections that did not become a session, by reason.", "reason")
	for _, r := range RefusalReasons {
		m.refusals.WithLabelValues(r)
	}
	m.events = f.counterVec("restpipe_events_total", "Events served (in: a peer sent them) or sent (out), by handler and status class.", "direction", "handler", "class")
	m.latency = f.histogramVec("restpipe_event_duration_seconds", "Time from an event's arrival to its reply's header (in), or from sending it to its reply's header (out).",
		prometheus.ExponentialBuckets(0.001, 4, 9), "direction")
	m.rtt = f.histogram("restpipe_keepalive_rtt_seconds", "Round-trip time of the keep-alive pings answered.",
		prometheus.ExponentialBuckets(0.0005, 4, 10))
	m.reloads = f.counterVec("restpipe_reloads_total", "Reloads of the settings (SIGHUP), by result.", "result")
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	m.authDecision = f.counterVec("restpipe_auth_decisions_total", "Access decisions on events (rules and the external auth service), by decision.", "decision")
	for _, d := range []string{"allow", "deny", "error"} {
		m.authDecision.WithLabelValues(d)
	}
	m.authCache = f.counterVec("restpipe_auth_cache_lookups_total", "Lookups of the external auth service's decision cache, by result (hit or miss).", "result")
	m.authCache.WithLabelValues("hit")
	m.authCache.WithLabelValues("miss")
	m.certExpiry = f.gaugeVec("restpipe_cert_expiry_timestamp_seconds", "When this node's own certificate and its CA certificates expire (Unix time).", "cert", "name")
	if opts.PerPeer {
		m.peerExpiry = f.gaugeVec("restpipe_peer_cert_expiry_timestamp_seconds", "When each connected peer's certificate expires (Unix time); with --metrics-per-peer only.", "peer")
	}

	for _, g := range []struct{ name, help string }{
		{"restpipe_peers_connected", "Peers with a session now (on a client: 1 while the tunnel is up)."},
		{"restpipe_streams_in_flight", "Events under way on the sessions, both directions."},
		{"restpipe_channel_subscribers", "Channel subscribers on this node (callers and, on a server, client nodes' relays)."},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, m.value(g.name)))
	}
	for _, c := range []struct{ name, help string }{
		{"restpipe_received_bytes_total", "Bytes received from peers on the tunnel connections (TLS records included)."},
		{"restpipe_sent_bytes_total", "Bytes sent to peers on the tunnel connections (TLS records included)."},
		{"restpipe_channel_messages_published_total", "Channel messages published through this node's hub."},
		{"restpipe_channel_messages_delivered_total", "Channel messages queued for a subscriber (one per subscriber reached)."},
		{"restpipe_channel_messages_dropped_total", "Channel messages a subscriber did not get because its queue was full."},
		{"restpipe_channel_slow_disconnects_total", "Channel subscribers disconnected because they did not keep up (their queue was full)."},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, m.value(c.name)))
	}
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// value reads the function SetFunc gave name, 0 while none is set.
func (m *Metrics) value(name string) func() float64 {
	return func() float64 {
		m.mu.Lock()
		f := m.funcs[name]
		m.mu.Unlock()
		if f == nil {
			return 0
		}
		return f()
	}
}

// SetFunc sets where the value of the gauge or counter called name is
// read from at each scrape: restpipe_peers_connected,
// restpipe_streams_in_flight, restpipe_channel_subscribers,
// restpipe_received_bytes_total, restpipe_sent_bytes_total and the
// restpipe_channel_messages_*_total and
// restpipe_channel_slow_disconnects_total counters. A counter's function must
// never go down.
func (m *Metrics) SetFunc(name string, f func() float64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.funcs[name] = f
	m.mu.Unlock()
}

// Registry is the registry the metrics are on, for a program that adds
// its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format (or OpenMetrics
// when asked for), at most 4 scrapes at a time.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
}

// Connected counts a session established with a peer whose certificate
// is leaf.
func (m *Metrics) Connected(peer string, leaf *x509.Certificate) {
	if m == nil {
		return
	}
	m.connects.Inc()
	if m.peerExpiry != nil && leaf != nil {
		m.peerExpiry.WithLabelValues(peer).Set(float64(leaf.NotAfter.Unix()))
	}
}

// Disconnected counts a session that ended, for reason (one of
// DisconnectReasons). still says whether another session of the peer's
// name is up (it replaced this one): its per-peer series stays.
func (m *Metrics) Disconnected(peer, reason string, still bool) {
	if m == nil {
		return
	}
	m.disconnects.WithLabelValues(reason).Inc()
	if m.peerExpiry != nil && !still {
		m.peerExpiry.DeleteLabelValues(peer)
	}
}

// Refused counts a connection refused at its handshake, for reason (one
// of RefusalReasons).
func (m *Metrics) Refused(reason string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(reason).Inc()
}

// Event counts an event of direction (In or Out) for handler (a name
// registered on this node, or Other) answered with status, and took d.
func (m *Metrics) Event(direction, handler string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(direction, handler, StatusClass(status)).Inc()
	m.latency.WithLabelValues(direction).Observe(d.Seconds())
}

// StatusClass is the class of an HTTP status: "2xx" for 204; "5xx" for a
// status out of range.
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "5xx"
	}
	return statusClasses[status/100-1]
}

// RTT records the round-trip time of a keep-alive ping.
func (m *Metrics) RTT(d time.Duration) {
	if m == nil {
		return
	}
	m.rtt.Observe(d.Seconds())
}

// Reload counts a reload of the settings, ok or failed.
func (m *Metrics) Reload(ok bool) {
	if m == nil {
		return
	}
	m.reloads.WithLabelValues(map[bool]string{true: "ok", false: "failed"}[ok]).Inc()
}

// AuthDecision counts an access decision: allowed, or denied, or an
// error when err is not nil.
func (m *Metrics) AuthDecision(allow bool, err error) {
	if m == nil {
		return
	}
	d := "deny"
	switch {
	case err != nil:
		d = "error"
	case allow:
		d = "allow"
	}
	m.authDecision.WithLabelValues(d).Inc()
}

// AuthCache counts a lookup of the auth decision cache, hit or miss.
func (m *Metrics) AuthCache(hit bool) {
	if m == nil {
		return
	}
	m.authCache.WithLabelValues(map[bool]string{true: "hit", false: "miss"}[hit]).Inc()
}

// Certificates sets the expiry of this node's certificate (own) and of
// its CA certificates, replacing those set before (after a reload).
func (m *Metrics) Certificates(own *x509.Certificate, cas []*x509.Certificate) {
	if m == nil {
		return
	}
	m.certExpiry.Reset()
	if own != nil {
		m.certExpiry.WithLabelValues("own", own.Subject.CommonName).Set(float64(own.NotAfter.Unix()))
	}
	for i, ca := range cas {
		name := ca.Subject.CommonName
		if name == "" {
			name = strconv.Itoa(i)
		}
		m.certExpiry.WithLabelValues("ca", name).Set(float64(ca.NotAfter.Unix()))
	}
}

// promauto registers what it makes on reg.
type promauto struct{ reg *prometheus.Registry }

func (p promauto) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	p.reg.MustRegister(c)
	return c
}

func (p promauto) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	p.reg.MustRegister(c)
	return c
}

func (p promauto) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	p.reg.MustRegister(g)
	return g
}

func (p promauto) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	p.reg.MustRegister(h)
	return h
}

func (p promauto) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	p.reg.MustRegister(h)
	return h
}
