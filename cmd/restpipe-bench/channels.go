package main

// Measurement 5: channel fan-out. Messages published on one client node's
// front end reach WebSocket subscribers spread over the server and three
// client nodes (each message crosses the tunnel to the server, which
// orders it, and back out to every client node). Baseline: the same
// subscribers and publisher on one plain net/http server serving the same
// channels handler over a local hub, no tunnel.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/restpipe/restpipe/tunnel/channels"
)

// roleChannels is a plain net/http server with the channels handler over
// a local bus (channels.NewLocalBus): the fan-out baseline.
const roleChannels = "channels"

// channelNodes is how many client nodes the fan-out runs across (besides
// the server).
const channelNodes = 3

// fanoutWindow is how many messages the publisher may be ahead of the
// slowest subscriber: well under a subscriber's queue (256), so that no
// one is dropped for being slow.
const fanoutWindow = 32

func channelsHandler() http.Handler {
	return &channels.Handler{Bus: channels.NewLocalBus(0, 0)}
}

// fanoutResult is one fan-out run.
type fanoutResult struct {
	took       time.Duration
	msgsPerSec float64
	delivPerS  float64
}

// channelFanout is measurement 5.
func (b *bench) channelFanout(ctx context.Context) error {
	defer b.fleet.stopAll()
	subs, msgs := b.opt.subscribers, b.opt.messages

	direct, err := b.fleet.start(ctx, "channels", roleChannels)
	if err != nil {
		return err
	}
	base, err := fanout(ctx, []string{direct.ready.HTTP}, direct.ready.HTTP, subs, msgs)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	direct.stop()
	b.progress("channels  baseline, one plain server: %d messages to %d subscribers in %s: %.0f messages/s",
		msgs, subs, fmtDur(base.took), base.msgsPerSec)

	srv, err := b.fleet.start(ctx, "server", roleServer, "-dir", b.dir)
	if err != nil {
		return err
	}
	fronts := []string{srv.ready.HTTP}
	for i := range channelNodes {
		cl, err := b.fleet.start(ctx, fmt.Sprintf("client-%d", i), roleClients, "-dir", b.dir,
			"-first", strconv.Itoa(i), "-n", "1", "-frontend", "-server", srv.ready.Tunnel)
		if err != nil {
			return err
		}
		if err := cl.send("start"); err != nil {
			return err
		}
		fronts = append(fronts, cl.ready.HTTP)
	}
	if _, got, err := waitConnected(ctx, srv, channelNodes, 30*time.Second); err != nil || got != channelNodes {
		return srv.errorf("%d of %d client nodes connected: %v", got, channelNodes, err)
	}
	r, err := fanout(ctx, fronts, fronts[1], subs, msgs)
	if err != nil {
		return err
	}
	b.progress("channels  across %d nodes: %d messages to %d subscribers in %s: %.0f messages/s",
		len(fronts), msgs, subs, fmtDur(r.took), r.msgsPerSec)

	sec := fmt.Sprintf("5. channels: %d messages published on a client node, fanned out to %d WebSocket subscribers over %d nodes",
		msgs, subs, len(fronts))
	baseName := "one plain net/http server"
	b.add(row{Section: sec, Name: "messages/s", Value: r.msgsPerSec, Unit: "messages/s",
		Shown: fmt.Sprintf("%.0f", r.msgsPerSec), Baseline: fmt.Sprintf("%s %.0f", baseName, base.msgsPerSec),
		Base: base.msgsPerSec, Ratio: r.msgsPerSec / base.msgsPerSec})
	b.add(row{Section: sec, Name: "deliveries/s", Value: r.delivPerS, Unit: "deliveries/s",
		Shown: fmt.Sprintf("%.0f", r.delivPerS), Baseline: fmt.Sprintf("%s %.0f", baseName, base.delivPerS),
		Base: base.delivPerS, Ratio: r.delivPerS / base.delivPerS})
	return nil
}

// fanout subscribes subs WebSocket subscribers to one channel, spread over
// the front ends, publishes msgs messages with POST on pubFront (at most
// fanoutWindow ahead of the slowest subscriber), and measures the time
// from the first publish until every subscriber has every message. Each
// subscriber checks that it gets them in order, each once.
func fanout(ctx context.Context, fronts []string, pubFront string, subs, msgs int) (fanoutResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const channel = "bench-fanout"
	conns := make([]*websocket.Conn, subs)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	err := parallel(subs, func(i int) error {
		url := "ws://" + fronts[i%len(fronts)] + channels.PathPrefix + channel
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		conns[i] = c
		return nil
	})
	if err != nil {
		return fanoutResult{}, err
	}
	counts := make([]atomic.Int64, subs)
	errc := make(chan error, subs)
	for i, c := range conns {
		go func() {
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errc <- fmt.Errorf("subscriber %d after %d messages: %w", i, counts[i].Load(), err)
					}
					return
				}
				want := counts[i].Load()
				if n, _, _ := strings.Cut(string(data), " "); n != strconv.FormatInt(want, 10) {
					errc <- fmt.Errorf("subscriber %d: message %q, want number %d", i, n, want)
					return
				}
				counts[i].Add(1)
			}
		}()
	}
	slowest := func() int64 {
		m := int64(msgs)
		for i := range counts {
			m = min(m, counts[i].Load())
		}
		return m
	}
	// wait polls until the slowest subscriber has at least n messages.
	wait := func(n int64) error {
		for slowest() < n {
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Microsecond):
			}
		}
		return nil
	}
	pad := strings.Repeat("x", 48)
	pubURL := "http://" + pubFront + channels.PathPrefix + channel
	start := time.Now()
	for i := range msgs {
		if err := wait(int64(i - fanoutWindow)); err != nil {
			return fanoutResult{}, err
		}
		resp, err := hc.Post(pubURL, "text/plain", strings.NewReader(strconv.Itoa(i)+" "+pad))
		if err != nil {
			return fanoutResult{}, fmt.Errorf("publish %d: %w", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fanoutResult{}, fmt.Errorf("publish %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if err := wait(int64(msgs)); err != nil {
		return fanoutResult{}, err
	}
	took := time.Since(start)
	if took <= 0 {
		return fanoutResult{}, errors.New("no time measured")
	}
	return fanoutResult{took: took, msgsPerSec: float64(msgs) / took.Seconds(),
		delivPerS: float64(msgs) * float64(subs) / took.Seconds()}, nil
}
