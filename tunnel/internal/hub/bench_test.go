package hub_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

// BenchmarkHubDeliver measures fanning one message out to a channel's
// subscribers, each drained by its own goroutine. Delivery goes in
// batches of half a queue, each waited for, so that no subscriber is
// dropped and every op is a full fan-out.
func BenchmarkHubDeliver(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			const queueLen = 256
			const batch = queueLen / 2
			h := hub.NewHub(hub.Options{QueueLen: queueLen})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			// target is the message count every drainer reaches before
			// the next batch; each says so on caughtUp.
			var target atomic.Int64
			var caughtUp sync.WaitGroup
			var drainers sync.WaitGroup
			dropped := make(chan error, subs)
			for range subs {
				s, err := h.Join("bench", nil)
				if err != nil {
					b.Fatal(err)
				}
				drainers.Add(1)
				go func() {
					defer drainers.Done()
					defer s.Close()
					var n int64
					for {
						if _, err := s.Next(ctx); err != nil {
							if ctx.Err() == nil {
								dropped <- err
							}
							return
						}
						if n++; n == target.Load() {
							caughtUp.Done()
						}
					}
				}()
			}
			m := &hub.Message{Channel: "bench", Text: "a message of some sixty bytes, as chat and notifications go"}

			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var deliveries int64
			for sent := 0; sent < b.N; {
				n := min(batch, b.N-sent)
				caughtUp.Add(subs)
				target.Store(int64(sent + n))
				for range n {
					deliveries += int64(h.Deliver(m))
				}
				sent += n
				// A dropped subscriber would never catch up: fail, not hang.
				done := make(chan struct{})
				go func() { caughtUp.Wait(); close(done) }()
				select {
				case <-done:
				case err := <-dropped:
					b.Fatalf("a subscriber was dropped: %v", err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()

			cancel()
			drainers.Wait()
			select {
			case err := <-dropped:
				b.Fatalf("a subscriber was dropped: %v", err)
			default:
			}
			if want := int64(b.N) * int64(subs); deliveries != want {
				b.Fatalf("%d deliveries, want %d", deliveries, want)
			}
			b.ReportMetric(float64(deliveries)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(deliveries), "ns/delivery")
		})
	}
}
