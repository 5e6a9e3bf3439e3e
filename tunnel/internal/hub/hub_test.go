package hub_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

// testCtx bounds every wait of a test: a test that would hang fails instead.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func msg(channel, text string) *hub.Message {
	return &hub.Message{Channel: channel, Text: text}
}

// join joins channel and counts the calls to its release.
func join(t *testing.T, h *hub.Hub, channel string) (*hub.Subscriber, *atomic.Int32) {
	t.Helper()
	var released atomic.Int32
	s, err := h.Join(channel, func() { released.Add(1) })
	if err != nil {
		t.Fatalf("Join(%q): %v", channel, err)
	}
	t.Cleanup(s.Close)
	return s, &released
}

// next returns the subscriber's next message, failing the test if there is
// none in time.
func next(t *testing.T, ctx context.Context, s *hub.Subscriber) *hub.Message {
	t.Helper()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next on %q: %v", s.Channel, err)
	}
	return m
}

// recordSink is a Sink that keeps what it is offered, and refuses once
// refuse is set.
type recordSink struct {
	refuse atomic.Bool
	onDrop func(error)

	mu      sync.Mutex
	offered []*hub.Message
	drops   []error
}

func (s *recordSink) Offer(m *hub.Message) bool {
	if s.refuse.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offered = append(s.offered, m)
	return true
}

func (s *recordSink) Drop(err error) {
	s.mu.Lock()
	s.drops = append(s.drops, err)
	s.mu.Unlock()
	if s.onDrop != nil {
		s.onDrop(err)
	}
}

func (s *recordSink) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.offered {
		out = append(out, m.Text)
	}
	return out
}

func (s *recordSink) dropped() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.drops...)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHubDeliverOrder(t *testing.T) {
	ctx := testCtx(t)
	h := hub.NewHub(hub.Options{})
	var subs []*hub.Subscriber
	for range 3 {
		s, _ := join(t, h, "news")
		subs = append(subs, s)
	}
	other, _ := join(t, h, "sport")

	for i := range 10 {
		if n := h.Deliver(msg("news", strconv.Itoa(i))); n != 3 {
			t.Fatalf("Deliver #%d reached %d subscribers, want 3", i, n)
		}
	}
	if n := h.Deliver(msg("sport", "goal")); n != 1 {
		t.Fatalf("Deliver on sport reached %d, want 1", n)
	}
	for si, s := range subs {
		for i := range 10 {
			if m := next(t, ctx, s); m.Text != strconv.Itoa(i) || m.Channel != "news" {
				t.Fatalf("subscriber %d message %d = %q on %q, want %q on news", si, i, m.Text, m.Channel, strconv.Itoa(i))
			}
		}
	}
	// The other channel's subscriber saw only its own channel.
	if m := next(t, ctx, other); m.Text != "goal" {
		t.Fatalf("sport subscriber got %q first, want goal", m.Text)
	}
}

func TestHubDeliverCount(t *testing.T) {
	tests := []struct {
		name    string
		arrange func(t *testing.T, h *hub.Hub)
		want    int
	}{
		{"no subscribers", func(*testing.T, *hub.Hub) {}, 0},
		{"one local", func(t *testing.T, h *hub.Hub) { join(t, h, "c") }, 1},
		{"three locals", func(t *testing.T, h *hub.Hub) {
			for range 3 {
				join(t, h, "c")
			}
		}, 3},
		{"subscribers of another channel only", func(t *testing.T, h *hub.Hub) {
			join(t, h, "d")
			h.Attach("d", &recordSink{})
		}, 0},
		{"local and sink", func(t *testing.T, h *hub.Hub) {
			join(t, h, "c")
			h.Attach("c", &recordSink{})
		}, 2},
		{"sink attached twice counts once", func(t *testing.T, h *hub.Hub) {
			s := &recordSink{}
			h.Attach("c", s)
			h.Attach("c", s)
		}, 1},
		{"closed subscriber not counted", func(t *testing.T, h *hub.Hub) {
			join(t, h, "c")
			s, _ := join(t, h, "c")
			s.Close()
		}, 1},
		{"refusing sink not counted", func(t *testing.T, h *hub.Hub) {
			join(t, h, "c")
			s := &recordSink{}
			s.refuse.Store(true)
			h.Attach("c", s)
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hub.NewHub(hub.Options{})
			tt.arrange(t, h)
			if n := h.Deliver(msg("c", "x")); n != tt.want {
				t.Errorf("Deliver = %d, want %d", n, tt.want)
			}
		})
	}
}

func TestHubDropsSlowSubscriber(t *testing.T) {
	m := msg("c", "0123456789")
	size := m.Size()
	tests := []struct {
		name string
		opts hub.Options
		// fits is how many of m the slow subscriber's queue takes: the
		// next one drops it.
		fits int
	}{
		{"QueueLen", hub.Options{QueueLen: 3, QueueBytes: 1 << 20}, 3},
		{"QueueBytes", hub.Options{QueueLen: 100, QueueBytes: 4 * size}, 4},
		{"QueueBytes one byte short", hub.Options{QueueLen: 100, QueueBytes: 4*size - 1}, 3},
		{"QueueLen 1", hub.Options{QueueLen: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			h := hub.NewHub(tt.opts)
			slow, slowReleased := join(t, h, "c")
			fast, _ := join(t, h, "c")
			for i := range tt.fits {
				if n := h.Deliver(m); n != 2 {
					t.Fatalf("Deliver #%d = %d before the queue is full, want 2", i, n)
				}
				next(t, ctx, fast) // the fast one keeps up
			}
			if err := slow.Err(); err != nil {
				t.Fatalf("slow subscriber ended with %v before its queue filled", err)
			}
			if n := h.Deliver(m); n != 1 {
				t.Fatalf("Deliver with a full queue = %d, want 1 (the fast subscriber)", n)
			}
			select {
			case <-slow.Done():
			default:
				t.Fatal("slow subscriber's Done is not closed after it was dropped")
			}
			if err := slow.Err(); !errors.Is(err, hub.ErrSlow) {
				t.Fatalf("slow.Err() = %v, want ErrSlow", err)
			}
			if got := slowReleased.Load(); got != 1 {
				t.Fatalf("release called %d times on drop, want 1", got)
			}
			if n := h.Subscribers("c"); n != 1 {
				t.Fatalf("Subscribers = %d after the drop, want 1", n)
			}
			// What was queued is discarded: Next says why, every time.
			for range 2 {
				if got, err := slow.Next(ctx); !errors.Is(err, hub.ErrSlow) || got != nil {
					t.Fatalf("slow.Next = %v, %v; want nil, ErrSlow", got, err)
				}
			}
			// The fast subscriber keeps receiving, in order.
			next(t, ctx, fast)
			if n := h.Deliver(msg("c", "after")); n != 1 {
				t.Fatalf("Deliver after the drop = %d, want 1", n)
			}
			if got := next(t, ctx, fast); got.Text != "after" {
				t.Fatalf("fast got %q, want after", got.Text)
			}
			slow.Close() // after a drop: no second release
			if got := slowReleased.Load(); got != 1 {
				t.Fatalf("release called %d times after Close of a dropped subscriber, want 1", got)
			}
		})
	}
}

// A message that can never fit in a queue drops every subscriber it goes to.
func TestHubMessageLargerThanQueueBytes(t *testing.T) {
	ctx := testCtx(t)
	big := msg("c", "0123456789")
	h := hub.NewHub(hub.Options{QueueBytes: big.Size() - 1})
	a, _ := join(t, h, "c")
	b, _ := join(t, h, "c")
	if n := h.Deliver(msg("c", "small")); n != 2 {
		t.Fatalf("Deliver of a small message = %d, want 2", n)
	}
	if n := h.Deliver(big); n != 0 {
		t.Fatalf("Deliver of a message over QueueBytes = %d, want 0", n)
	}
	for _, s := range []*hub.Subscriber{a, b} {
		if m, err := s.Next(ctx); !errors.Is(err, hub.ErrSlow) {
			t.Fatalf("Next = %v, %v; want ErrSlow", m, err)
		}
	}
}

func TestSubscriberClose(t *testing.T) {
	ctx := testCtx(t)
	h := hub.NewHub(hub.Options{})
	s, released := join(t, h, "c")
	other, _ := join(t, h, "c")
	h.Deliver(msg("c", "queued"))
	if n := h.Subscribers("c"); n != 2 {
		t.Fatalf("Subscribers = %d, want 2", n)
	}

	s.Close()
	s.Close()
	if got := released.Load(); got != 1 {
		t.Fatalf("release called %d times, want 1", got)
	}
	if n := h.Subscribers("c"); n != 1 {
		t.Fatalf("Subscribers = %d after Close, want 1", n)
	}
	if m, err := s.Next(ctx); !errors.Is(err, hub.ErrClosed) || m != nil {
		t.Fatalf("Next after Close = %v, %v; want nil, ErrClosed", m, err)
	}
	if err := s.Err(); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Err after Close = %v, want ErrClosed", err)
	}
	if n := h.Deliver(msg("c", "later")); n != 1 {
		t.Fatalf("Deliver after Close = %d, want 1", n)
	}
	other.Close()
	if n := h.Subscribers("c"); n != 0 {
		t.Fatalf("Subscribers = %d with everyone gone, want 0", n)
	}

	// Without a release function, Close is just as safe.
	bare, err := h.Join("c", nil)
	if err != nil {
		t.Fatal(err)
	}
	bare.Close()
	bare.Close()
}

// End removes a subscriber with a reason of the caller's; the first
// reason stays.
func TestSubscriberEnd(t *testing.T) {
	ctx := testCtx(t)
	h := hub.NewHub(hub.Options{})
	s, released := join(t, h, "c")
	h.Deliver(msg("c", "queued"))
	why := fmt.Errorf("%w: relay lost", hub.ErrUnavailable)
	hub.End(s, why)
	hub.End(s, hub.ErrShutdown)
	s.Close()
	if m, err := s.Next(ctx); err != why || m != nil {
		t.Fatalf("Next after End = %v, %v; want nil, %v", m, err, why)
	}
	if got, n := released.Load(), h.Subscribers("c"); got != 1 || n != 0 {
		t.Fatalf("release called %d times, %d subscribers left; want 1, 0", got, n)
	}
}

func TestNextWaitsUntilContextEnds(t *testing.T) {
	h := hub.NewHub(hub.Options{})
	s, _ := join(t, h, "c")
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if m, err := s.Next(ctx); !errors.Is(err, context.Canceled) || m != nil {
		t.Fatalf("Next with an ended context = %v, %v; want nil, context.Canceled", m, err)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err = %v: the subscriber is still live", err)
	}
}

func TestHubCloseAll(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		joinRefused bool
	}{
		{"shutdown", hub.ErrShutdown, true},
		{"wrapped shutdown", fmt.Errorf("node stop: %w", hub.ErrShutdown), true},
		{"unavailable", hub.ErrUnavailable, false},
		{"wrapped unavailable", fmt.Errorf("relay lost: %w", hub.ErrUnavailable), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			h := hub.NewHub(hub.Options{})
			a, aReleased := join(t, h, "a")
			b, _ := join(t, h, "b")
			sink := &recordSink{}
			h.Attach("a", sink)

			h.CloseAll(tt.err)
			for _, s := range []*hub.Subscriber{a, b} {
				if m, err := s.Next(ctx); !errors.Is(err, tt.err) || m != nil {
					t.Fatalf("Next on %s after CloseAll = %v, %v; want nil, %v", s.Channel, m, err, tt.err)
				}
			}
			if got := aReleased.Load(); got != 1 {
				t.Fatalf("release called %d times, want 1", got)
			}
			// Remote sinks stay.
			if n := h.Subscribers("a"); n != 1 {
				t.Fatalf("Subscribers(a) = %d after CloseAll, want 1 (the sink)", n)
			}
			if n := h.Deliver(msg("a", "still")); n != 1 || !equal(sink.texts(), []string{"still"}) {
				t.Fatalf("Deliver after CloseAll = %d, sink got %q; want 1, [still]", n, sink.texts())
			}
			if d := sink.dropped(); len(d) != 0 {
				t.Fatalf("sink dropped with %v by CloseAll", d)
			}

			s, err := h.Join("a", nil)
			s2, err2 := h.Subscribe(ctx, "a")
			if tt.joinRefused {
				if !errors.Is(err, hub.ErrShutdown) || s != nil {
					t.Fatalf("Join after CloseAll(%v) = %v, %v; want refused with ErrShutdown", tt.err, s, err)
				}
				if !errors.Is(err2, hub.ErrShutdown) || s2 != nil {
					t.Fatalf("Subscribe after CloseAll(%v) = %v, %v; want refused with ErrShutdown", tt.err, s2, err2)
				}
				return
			}
			if err != nil || err2 != nil {
				t.Fatalf("Join, Subscribe after CloseAll(%v): %v, %v; want accepted", tt.err, err, err2)
			}
			t.Cleanup(s.Close)
			t.Cleanup(s2.Close)
			h.Deliver(msg("a", "again"))
			for _, s := range []*hub.Subscriber{s, s2} {
				if m := next(t, ctx, s); m.Text != "again" {
					t.Fatalf("new subscriber got %q, want again", m.Text)
				}
			}
		})
	}
}

func TestHubAsBus(t *testing.T) {
	ctx := testCtx(t)
	h := hub.NewHub(hub.Options{})
	var bus channels.Bus = h
	s, err := bus.Subscribe(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Channel != "c" {
		t.Fatalf("Channel = %q, want c", s.Channel)
	}
	if err := bus.Publish(ctx, msg("c", "hi")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, s); m.Text != "hi" {
		t.Fatalf("got %q, want hi", m.Text)
	}
}

func TestHubSinks(t *testing.T) {
	h := hub.NewHub(hub.Options{})
	sink := &recordSink{}
	h.Attach("a", sink)
	h.Attach("a", sink) // twice: once
	h.Attach("b", sink)
	if n := h.Subscribers("a"); n != 1 {
		t.Fatalf("Subscribers(a) = %d, want 1", n)
	}
	h.Deliver(msg("a", "a1"))
	h.Deliver(msg("b", "b1"))
	h.Deliver(msg("c", "c1")) // not attached

	h.Detach("a", sink)
	h.Detach("a", sink)          // again: nothing
	h.Detach("c", sink)          // never attached: nothing
	h.Detach("a", &recordSink{}) // unknown sink: nothing
	h.DetachAll(&recordSink{})   // unknown sink: nothing
	if n := h.Subscribers("a"); n != 0 {
		t.Fatalf("Subscribers(a) = %d after Detach, want 0", n)
	}
	h.Deliver(msg("a", "a2"))
	h.Deliver(msg("b", "b2"))

	h.DetachAll(sink)
	if n := h.Subscribers("b"); n != 0 {
		t.Fatalf("Subscribers(b) = %d after DetachAll, want 0", n)
	}
	h.Deliver(msg("b", "b3"))

	// Attach after DetachAll works again.
	h.Attach("b", sink)
	h.Deliver(msg("b", "b4"))

	if got, want := sink.texts(), []string{"a1", "b1", "b2", "b4"}; !equal(got, want) {
		t.Fatalf("sink got %q, want %q", got, want)
	}
	if d := sink.dropped(); len(d) != 0 {
		t.Fatalf("Drop called with %v; Detach is not a drop", d)
	}
}

func TestHubDropsRefusingSink(t *testing.T) {
	ctx := testCtx(t)
	h := hub.NewHub(hub.Options{})
	sink := &recordSink{}
	h.Attach("a", sink)
	h.Attach("b", sink)
	local, _ := join(t, h, "a")

	sink.refuse.Store(true)
	if n := h.Deliver(msg("a", "refused")); n != 1 {
		t.Fatalf("Deliver = %d, want 1 (the local subscriber)", n)
	}
	d := sink.dropped()
	if len(d) != 1 || !errors.Is(d[0], hub.ErrSlow) {
		t.Fatalf("Drop calls = %v, want one with ErrSlow", d)
	}
	if n := h.Subscribers("a"); n != 1 {
		t.Fatalf("Subscribers(a) = %d, want 1: the sink is detached from a", n)
	}
	if n := h.Subscribers("b"); n != 1 {
		t.Fatalf("Subscribers(b) = %d, want 1: the sink stays on b", n)
	}
	next(t, ctx, local)

	sink.refuse.Store(false)
	h.Deliver(msg("a", "a-after"))
	h.Deliver(msg("b", "b-after"))
	if got, want := sink.texts(), []string{"b-after"}; !equal(got, want) {
		t.Fatalf("sink got %q, want %q", got, want)
	}
	if n := len(sink.dropped()); n != 1 {
		t.Fatalf("Drop called %d times, want 1", n)
	}

	// Dropped from its last channel, it is forgotten: Attach starts afresh.
	sink.refuse.Store(true)
	h.Deliver(msg("b", "refused"))
	if n := h.Subscribers("b"); n != 0 {
		t.Fatalf("Subscribers(b) = %d, want 0", n)
	}
	sink.refuse.Store(false)
	h.Attach("a", sink)
	h.Deliver(msg("a", "a-again"))
	if got, want := sink.texts(), []string{"b-after", "a-again"}; !equal(got, want) {
		t.Fatalf("sink got %q, want %q", got, want)
	}
}

// A Sink's Drop may call back into the hub: it is called without the hub's
// lock held.
func TestHubSinkDropOutsideLock(t *testing.T) {
	ctx := testCtx(t)
	h := hub.NewHub(hub.Options{})
	sink := &recordSink{}
	sink.onDrop = func(error) {
		h.DetachAll(sink)
		h.Subscribers("b")
	}
	sink.refuse.Store(true)
	h.Attach("a", sink)
	h.Attach("b", sink)

	done := make(chan int)
	go func() { done <- h.Deliver(msg("a", "x")) }()
	select {
	case n := <-done:
		if n != 0 {
			t.Fatalf("Deliver = %d, want 0", n)
		}
	case <-ctx.Done():
		t.Fatal("Deliver deadlocked: Drop was called with the hub's lock held")
	}
	if n := h.Subscribers("b"); n != 0 {
		t.Fatalf("Subscribers(b) = %d after Drop's DetachAll, want 0", n)
	}
}

func TestMessageEmpty(t *testing.T) {
	tests := []struct {
		name string
		m    hub.Message
		want bool
	}{
		{"zero", hub.Message{}, true},
		{"channel and id only", hub.Message{Channel: "c", ID: "7"}, true},
		{"text", hub.Message{Channel: "c", Text: "x"}, false},
		{"stream only", hub.Message{Channel: "c", Stream: "data: x\n\n"}, false},
		{"both", hub.Message{Text: "x", Stream: "y"}, false},
		{"whitespace is content", hub.Message{Text: " "}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Empty(); got != tt.want {
				t.Errorf("Empty() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMessageSize(t *testing.T) {
	m := hub.Message{Channel: "ch", Text: "text", Stream: "stream", ID: "id"}
	if got, want := m.Size(), int64(2+4+6+2+64); got != want {
		t.Fatalf("Size = %d, want %d", got, want)
	}
	var empty hub.Message
	if got := empty.Size(); got <= 0 {
		t.Fatalf("Size of an empty message = %d, want > 0 so that keep-alives count too", got)
	}
}

// TestHubConcurrent runs Deliver, Join and Close at once and checks that
// every subscriber sees a subsequence of one delivery order, without
// duplicates. Run it with -race.
func TestHubConcurrent(t *testing.T) {
	const (
		producers = 4
		perProd   = 4000
		joiners   = 6
		total     = producers * perProd
	)
	ctx := testCtx(t)
	// Queues big enough for everything: no subscriber is dropped, so the
	// reference subscriber sees every message, in the hub's order.
	h := hub.NewHub(hub.Options{QueueLen: total + 1, QueueBytes: 1 << 30})
	ref, _ := join(t, h, "c")

	producing, stopped := context.WithCancel(ctx)
	// Producers start once every joiner has joined a first time, so that
	// each joiner takes part.
	var joined sync.WaitGroup
	joined.Add(joiners)
	var prodWG sync.WaitGroup
	for p := range producers {
		prodWG.Add(1)
		go func() {
			defer prodWG.Done()
			joined.Wait()
			for i := range perProd {
				h.Deliver(&hub.Message{Channel: "c", Text: fmt.Sprintf("%d/%d", p, i)})
			}
		}()
	}
	go func() { prodWG.Wait(); stopped() }()

	var (
		mu    sync.Mutex
		seen  [][]string
		fails []string
	)
	var joinWG sync.WaitGroup
	for j := range joiners {
		joinWG.Add(1)
		go func() {
			defer joinWG.Done()
			for round := 0; producing.Err() == nil; round++ {
				var released atomic.Int32
				s, err := h.Join("c", func() { released.Add(1) })
				if round == 0 {
					joined.Done()
				}
				if err != nil {
					mu.Lock()
					fails = append(fails, fmt.Sprintf("joiner %d: Join: %v", j, err))
					mu.Unlock()
					return
				}
				var got []string
				for range 1 + (j*7+round)%50 {
					m, err := s.Next(producing)
					if err != nil {
						break
					}
					got = append(got, m.Text)
				}
				if j%2 == 0 {
					s.Close()
				} else {
					// Closed from another goroutine than the reader's.
					closed := make(chan struct{})
					go func() { s.Close(); close(closed) }()
					select {
					case <-closed:
					case <-ctx.Done():
					}
				}
				var fail string
				if m, err := s.Next(ctx); !errors.Is(err, hub.ErrClosed) {
					fail = fmt.Sprintf("joiner %d: Next after Close = %v, %v", j, m, err)
				} else if n := released.Load(); n != 1 {
					fail = fmt.Sprintf("joiner %d: release called %d times", j, n)
				}
				mu.Lock()
				seen = append(seen, got)
				if fail != "" {
					fails = append(fails, fail)
				}
				mu.Unlock()
			}
		}()
	}
	finished := make(chan struct{})
	go func() { joinWG.Wait(); prodWG.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		t.Fatal("Deliver, Join or Close hung")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range fails {
		t.Error(f)
	}

	// The reference subscriber: every message once, each producer's in
	// the order it delivered them.
	order := map[string]int{}
	lastOf := make([]int, producers)
	for i := range lastOf {
		lastOf[i] = -1
	}
	for i := range total {
		m := next(t, ctx, ref)
		if _, dup := order[m.Text]; dup {
			t.Fatalf("reference got %q twice", m.Text)
		}
		order[m.Text] = i
		var p, seq int
		if _, err := fmt.Sscanf(m.Text, "%d/%d", &p, &seq); err != nil {
			t.Fatalf("message %q: %v", m.Text, err)
		}
		if seq != lastOf[p]+1 {
			t.Fatalf("reference got %q after %d/%d", m.Text, p, lastOf[p])
		}
		lastOf[p] = seq
	}

	// Every other subscriber saw a subsequence of the reference's order.
	if len(seen) < joiners {
		t.Fatalf("only %d subscriptions ran", len(seen))
	}
	received := 0
	for _, got := range seen {
		received += len(got)
	}
	t.Logf("%d subscriptions received %d messages", len(seen), received)
	for k, got := range seen {
		last := -1
		for _, text := range got {
			i, ok := order[text]
			if !ok {
				t.Fatalf("subscription %d got %q, which the reference never saw", k, text)
			}
			if i <= last {
				t.Fatalf("subscription %d got %q out of order or twice (position %d after %d)", k, text, i, last)
			}
			last = i
		}
	}
	if n := h.Subscribers("c"); n != 1 {
		t.Fatalf("Subscribers = %d at the end, want 1 (the reference)", n)
	}
}
