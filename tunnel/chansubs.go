package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/restpipe/restpipe/events"
	"github.com/restpipe/restpipe/handlers"
	"github.com/restpipe/restpipe/tunnel/channels"
	"github.com/restpipe/restpipe/tunnel/internal/hub"
)

// A client's channel subscriptions outlive its relay. Each channel its
// node's subscribers hold is a chanSub, subscribed at the server through
// the current relay or, while there is none (an outage of the tunnel),
// parked: its subscribers stay, told of the outage by a notice
// (Message.Outage), until a relay subscribes it again (they are told of
// the gap: Message.Gap) or Config.ChannelOutageWait runs out (they are
// closed with channels.ErrUnavailable). Locks: Client.chMu, then a
// relay's mu, then the hub's; hub.End (which calls memberLeft) only with
// none of them held.

// chanSub is one channel this client's subscribers hold.
type chanSub struct {
	channel string
	members map[*member]bool
	r       *clientRelay // subscribed through it; nil while parked
	att     *subAttempt  // r's SUBSCRIBE
}

// subAttempt is one SUBSCRIBE of a chanSub: ready closes once the server
// answered or the relay failed (err says which, set before).
type subAttempt struct {
	ready chan struct{}
	err   error
}

// member is one local subscriber of a chanSub.
type member struct {
	sub *channels.Subscriber
	// outage is set while the member was told of an outage and not yet
	// of its end (a gap); it ends the member after ChannelOutageWait.
	outage *time.Timer
}

// Subscribe joins channel on this node and subscribes it at the server,
// or parks it while the tunnel is down.
func (b clientBus) Subscribe(ctx context.Context, channel string) (*channels.Subscriber, error) {
	c := b.c
	r, rerr := c.relay()
	c.chMu.Lock()
	cs := c.chSubs[channel]
	if cs == nil {
		cs = &chanSub{channel: channel, members: map[*member]bool{}}
		c.chSubs[channel] = cs
	}
	m := &member{}
	sub, err := c.hub.Join(channel, func() { c.memberLeft(cs, m) })
	if err != nil {
		if len(cs.members) == 0 {
			delete(c.chSubs, channel)
		}
		c.chMu.Unlock()
		return nil, err
	}
	m.sub = sub
	cs.members[m] = true
	if cs.r == nil && rerr == nil && !c.subscribeVia(r, cs) {
		rerr = r.deadErr()
	}
	att, parked, told := cs.att, cs.r == nil, true
	if parked {
		told = c.park(cs, m, rerr)
	}
	c.chMu.Unlock()
	if !told {
		hub.End(sub, c.slowErr())
		return nil, sub.Err()
	}
	if parked {
		return sub, nil // told of the outage
	}
	select {
	case <-att.ready:
		if att.err != nil && !errors.Is(att.err, channels.ErrUnavailable) {
			sub.Close()
			return nil, att.err
		}
		if err := sub.Err(); err != nil {
			return nil, err
		}
		return sub, nil // subscribed, or parked by the relay's failure
	case <-ctx.Done():
		sub.Close()
		return nil, fmt.Errorf("no answer from the server: %w", ctx.Err())
	}
}

// subscribeVia sends cs's SUBSCRIBE on r, unless r has failed. Called
// with c.chMu held.
func (c *Client) subscribeVia(r *clientRelay, cs *chanSub) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead != nil {
		return false
	}
	att := &subAttempt{ready: make(chan struct{})}
	r.seq++
	r.acks[r.seq] = func(err error) { c.answered(cs, att, err) }
	r.q.push(&events.ChannelFrame{Kind: events.ChannelFrame_SUBSCRIBE, Seq: r.seq, Channel: cs.channel}, true)
	cs.r, cs.att = r, att
	return true
}

func (r *clientRelay) deadErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dead
}

// answered applies the server's answer to att, a SUBSCRIBE of cs (or
// the relay's failure, which parked cs already): the members told of an
// outage are told of the gap; a refusal ends them all.
func (c *Client) answered(cs *chanSub, att *subAttempt, err error) {
	att.err = err
	defer close(att.ready)
	if errors.Is(err, channels.ErrUnavailable) {
		return
	}
	var end, slow []*channels.Subscriber
	c.chMu.Lock()
	if cs.att == att {
		if err != nil {
			cs.r, cs.att = nil, nil // the server did not attach it: no UNSUBSCRIBE
			if c.chSubs[cs.channel] == cs {
				delete(c.chSubs, cs.channel)
			}
			for m := range cs.members {
				m.stopOutage()
				end = append(end, m.sub)
			}
		} else {
			gap := &channels.Message{Channel: cs.channel, Gap: true}
			for m := range cs.members {
				if m.outage == nil {
					continue // joined since: nothing missed
				}
				m.stopOutage()
				if !hub.Notify(m.sub, gap) {
					slow = append(slow, m.sub)
				}
			}
		}
	}
	c.chMu.Unlock()
	for _, sub := range end {
		hub.End(sub, err)
	}
	for _, sub := range slow {
		hub.End(sub, c.slowErr())
	}
	if len(end) > 0 {
		c.log.Info("channel subscription refused by the server", "channel", cs.channel, "reason", err)
	}
}

// park tells m, a member of cs (which no relay carries), of the outage
// (why), and starts its wait for the tunnel if not yet started. False if
// m's queue is full: the caller ends it as too slow. Called with c.chMu
// held.
func (c *Client) park(cs *chanSub, m *member, why error) bool {
	if why == nil {
		why = fmt.Errorf("%w: not connected to the server", channels.ErrUnavailable)
	}
	if m.outage == nil {
		wait := c.cfg.ChannelOutageWait
		var t *time.Timer
		t = time.AfterFunc(wait, func() {
			c.chMu.Lock()
			mine := m.outage == t && cs.members[m]
			if mine {
				m.outage = nil
			}
			c.chMu.Unlock()
			if mine {
				hub.End(m.sub, fmt.Errorf("the tunnel was not back within %v: %w", wait, why))
			}
		})
		m.outage = t
	}
	return hub.Notify(m.sub, &channels.Message{Channel: cs.channel, Outage: why.Error()})
}

func (m *member) stopOutage() {
	if m.outage != nil {
		m.outage.Stop()
		m.outage = nil
	}
}

func (c *Client) slowErr() error {
	return fmt.Errorf("%w: its queue of %d messages or %d bytes is full",
		channels.ErrSlow, c.cfg.ChannelQueue, c.cfg.ChannelQueueBytes)
}

// memberLeft is called once m, a local subscriber of cs, left the hub;
// the last one unsubscribes the client at the server.
func (c *Client) memberLeft(cs *chanSub, m *member) {
	c.chMu.Lock()
	defer c.chMu.Unlock()
	m.stopOutage()
	delete(cs.members, m)
	if len(cs.members) > 0 || c.chSubs[cs.channel] != cs {
		return
	}
	delete(c.chSubs, cs.channel)
	if r := cs.r; r != nil {
		r.mu.Lock()
		if r.dead == nil {
			r.q.push(&events.ChannelFrame{Kind: events.ChannelFrame_UNSUBSCRIBE, Channel: cs.channel}, true)
		}
		r.mu.Unlock()
	}
}

// resumeChannels subscribes the parked channels again, through a new
// relay: once a session is up, or after a relay failed while its session
// stayed up.
func (c *Client) resumeChannels() {
	c.chMu.Lock()
	parked := 0
	for _, cs := range c.chSubs {
		if cs.r == nil {
			parked++
		}
	}
	c.chMu.Unlock()
	if parked == 0 {
		return
	}
	r, err := c.relay()
	if err != nil {
		c.log.Debug("channel subscriptions not resumed", "channels", parked, "err", err)
		return
	}
	c.chMu.Lock()
	defer c.chMu.Unlock()
	for _, cs := range c.chSubs {
		if cs.r == nil && !c.subscribeVia(r, cs) {
			return
		}
	}
	c.log.Info("channel subscriptions resumed after an outage", "channels", parked)
}

// fail ends the relay: waiting publishes and subscribes fail with err.
// The channels it carried are parked (their subscribers told of the
// outage) when park is set, and closed with err otherwise (the server
// dropped this node on purpose). A relay whose session is still up is
// replaced after ReconnectMin.
func (r *clientRelay) fail(err error, park bool) {
	c := r.c
	c.relayMu.Lock()
	if c.chRelay == r {
		c.chRelay = nil
	}
	c.relayMu.Unlock()
	c.chMu.Lock()
	r.mu.Lock()
	if r.dead != nil {
		r.mu.Unlock()
		c.chMu.Unlock()
		return
	}
	r.dead = err
	acks := r.acks
	r.acks = nil
	r.mu.Unlock()
	var end, slow []*channels.Subscriber
	parked := 0
	for ch, cs := range c.chSubs {
		if cs.r != r {
			continue
		}
		cs.r, cs.att = nil, nil
		if !park {
			delete(c.chSubs, ch)
			for m := range cs.members {
				m.stopOutage()
				end = append(end, m.sub)
			}
			continue
		}
		parked++
		for m := range cs.members {
			if !c.park(cs, m, err) {
				slow = append(slow, m.sub)
			}
		}
	}
	c.chMu.Unlock()
	r.q.close(nil)
	_ = r.st.Close()
	r.own.closed()
	for _, done := range acks {
		done(err)
	}
	for _, sub := range end {
		hub.End(sub, err)
	}
	for _, sub := range slow {
		hub.End(sub, c.slowErr())
	}
	r.p.log.Info("channel relay closed", "reason", err, "channels_waiting", parked)
	if parked > 0 && c.peer() == r.p {
		time.AfterFunc(c.cfg.ReconnectMin, c.resumeChannels)
	}
}

// refused ends the local subscribers of channel, whose subscription the
// server ended with err; the next subscriber asks the server anew.
func (r *clientRelay) refused(channel string, err error) {
	if err == nil {
		err = &handlers.Error{Status: http.StatusForbidden, Code: handlers.CodeForbidden,
			Msg: "refused by the server: the subscription is no longer allowed"}
	}
	c := r.c
	var end []*channels.Subscriber
	c.chMu.Lock()
	if cs := c.chSubs[channel]; cs != nil && cs.r == r {
		cs.r, cs.att = nil, nil // the server detached it: no UNSUBSCRIBE
		delete(c.chSubs, channel)
		for m := range cs.members {
			m.stopOutage()
			end = append(end, m.sub)
		}
	}
	c.chMu.Unlock()
	for _, sub := range end {
		hub.End(sub, err)
	}
	r.p.log.Info("channel subscription ended by the server", "channel", channel, "reason", err)
}
