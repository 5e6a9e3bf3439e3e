// Package faultproxy is a TCP proxy for tests that injects network faults
// between a tunnel client and its server: a cut (every connection closed
// at once), a black hole (a half-open link: nothing gets through, nothing
// is closed), latency and a throughput limit.
//
// Put it between the two ends and point the client at Addr:
//
//	p, err := faultproxy.New(serverAddr)
//	...
//	defer p.Close()
//	client.Run(ctx, p.Addr())
//	...
//	p.BlackHole(true) // the link dies silently
//
// Each accepted connection is forwarded to the target over a connection of
// its own. Each direction of a connection has a reader, which reads chunks
// and stamps them with the time they arrived, and a writer, which forwards
// each chunk once its delay has passed and its throughput budget allows.
// Faults can be changed at any time, from any goroutine.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize is the most a reader takes from a connection at once.
const chunkSize = 32 << 10

// queueLen bounds the chunks read but not yet forwarded, per direction:
// it gives a delayed or throttled connection back-pressure.
const queueLen = 64

// dialTimeout bounds the connection to the target.
const dialTimeout = 10 * time.Second

// Proxy forwards TCP connections from its own loopback address to a target
// address, with faults. The zero value is not usable: call New.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // ends at Close; bounds dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	delay    atomic.Int64 // time.Duration
	throttle atomic.Int64 // bytes per second; 0: no limit

	mu        sync.Mutex
	conns     map[*conn]struct{}
	blackHole bool
	closed    bool
}

// New starts a proxy listening on 127.0.0.1 with a port the kernel
// chooses, forwarding each connection it accepts to target. Close stops
// it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{target: target, ln: ln, ctx: ctx, cancel: cancel, conns: map[*conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address the proxy listens on: give it to the client in place
// of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection (both sides) and waits
// until every goroutine of the proxy has ended. It returns the error of
// closing the listener, if any; closing twice returns nil.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

// Cut closes every connection open now, both the side towards the
// client and the side towards the target, as if the network had reset
// them. Connections made afterwards are forwarded as usual.
func (p *Proxy) Cut() {
	for _, c := range p.snapshot() {
		c.close()
	}
}

// BlackHole turns the black hole on or off. While on, every connection
// open now stops forwarding in both directions without being closed: the
// proxy keeps reading what either end sends and drops it, so writers never
// block and neither end sees an error or an end of stream, like a link
// whose far end vanished (a half-open connection). When one end of a
// black-holed connection closes, the other is not told either; the proxy
// closes the connection once both ends have closed it (or at Cut or Close).
//
// Connections accepted while the black hole is on are black-holed too:
// they are accepted but never forwarded to the target, so a client sees a
// connect that succeeds and a handshake that never answers.
//
// BlackHole(false) affects only the connections made afterwards:
// connections black-holed before stay dead, as a real half-open link does.
func (p *Proxy) BlackHole(on bool) {
	p.mu.Lock()
	p.blackHole = on
	var conns []*conn
	if on {
		conns = make([]*conn, 0, len(p.conns))
		for c := range p.conns {
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.dead.Store(true)
	}
}

// Delay delays each chunk forwarded, in either direction, by d after the
// proxy read it: d of added latency each way, without limiting throughput.
// It applies to chunks read from now on; 0 turns it off.
func (p *Proxy) Delay(d time.Duration) { p.delay.Store(int64(max(d, 0))) }

// Throttle limits the throughput of each direction of each connection to
// bytesPerSec; 0 (or less) turns the limit off. It applies from the next
// chunk forwarded.
func (p *Proxy) Throttle(bytesPerSec int) { p.throttle.Store(int64(max(bytesPerSec, 0))) }

// Conns is the number of connections open now (black-holed ones
// included), counted from the client's side.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func (p *Proxy) snapshot() []*conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = nc.Close()
			return
		}
		hole := p.blackHole
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(nc, hole)
	}
}

// handle dials the target for client connection nc (unless it arrived
// while the black hole was on), registers the pair and starts forwarding.
func (p *Proxy) handle(client net.Conn, hole bool) {
	defer p.wg.Done()
	var target net.Conn
	if !hole {
		d := net.Dialer{Timeout: dialTimeout}
		var err error
		target, err = d.DialContext(p.ctx, "tcp", p.target)
		if err != nil {
			_ = client.Close() // like a refused connection, one hop late
			return
		}
	}
	c := &conn{p: p, client: client, target: target, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.closeConns()
		return
	}
	if p.blackHole || target == nil {
		c.dead.Store(true)
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()

	if target == nil {
		c.ends.Store(1)
		p.wg.Add(2)
		go c.pump(client, nil)
		return
	}
	c.ends.Store(2)
	p.wg.Add(4)
	go c.pump(client, target)
	go c.pump(target, client)
}

// conn is one proxied connection: client is the accepted side, target
// the dialled one (nil for a connection black-holed from the start).
type conn struct {
	p              *Proxy
	client, target net.Conn
	dead           atomic.Bool   // black-holed: drop everything
	ends           atomic.Int32  // directions still forwarding
	done           chan struct{} // closed by close
	once           sync.Once
}

// close closes both sides at once and forgets the connection.
func (c *conn) close() {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
		close(c.done)
		c.closeConns()
	})
}

func (c *conn) closeConns() {
	_ = c.client.Close()
	if c.target != nil {
		_ = c.target.Close()
	}
}

// chunk is data read from one side, waiting to be forwarded.
type chunk struct {
	data []byte
	at   time.Time // when it was read
}

// pump forwards src to dst (nil: drop everything) with the proxy's
// faults, using two goroutines: a reader and a writer.
func (c *conn) pump(src, dst net.Conn) {
	q := make(chan chunk, queueLen)
	go c.read(src, q)
	go c.write(dst, q)
}

// read reads src into q until src ends or the connection closes; it
// closes q when done. An error other than the end of stream (a reset)
// closes the whole connection, unless it is black-holed.
func (c *conn) read(src net.Conn, q chan<- chunk) {
	defer c.p.wg.Done()
	defer close(q)
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 && !c.dead.Load() {
			select {
			case q <- chunk{data: buf[:n], at: time.Now()}:
			case <-c.done:
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !c.dead.Load() {
				c.close()
			}
			return
		}
	}
}

// write forwards the chunks of q to dst. When q ends (src sent its end of
// stream), it half-closes dst so that the end reaches the other side,
// unless the connection is black-holed; once both directions have ended,
// it closes the connection.
func (c *conn) write(dst net.Conn, q <-chan chunk) {
	defer c.p.wg.Done()
	defer func() {
		if c.ends.Add(-1) == 0 {
			c.close()
		}
	}()
	var next time.Time // throttle: when the budget allows the next byte
	for ch := range q {
		if c.dead.Load() || dst == nil {
			continue
		}
		if d := time.Duration(c.p.delay.Load()); d > 0 {
			if !c.waitUntil(ch.at.Add(d)) {
				return
			}
		}
		data := ch.data
		for len(data) > 0 {
			piece := data
			if bps := c.p.throttle.Load(); bps > 0 {
				// Pieces of about 20 ms worth, so that a low rate is
				// smooth rather than one long pause per chunk.
				if lim := max(int(bps/50), 1); len(piece) > lim {
					piece = piece[:lim]
				}
				now := time.Now()
				if next.Before(now) {
					next = now
				}
				if !c.waitUntil(next) {
					return
				}
				next = next.Add(time.Duration(float64(len(piece)) / float64(bps) * float64(time.Second)))
			} else {
				next = time.Time{}
			}
			if c.dead.Load() {
				break
			}
			if _, err := dst.Write(piece); err != nil {
				c.close()
				return
			}
			data = data[len(piece):]
		}
	}
	if !c.dead.Load() && dst != nil {
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
}

// waitUntil waits until t, or until the connection closes (false).
func (c *conn) waitUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-c.done:
			return false
		default:
			return true
		}
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-c.done:
		return false
	}
}
