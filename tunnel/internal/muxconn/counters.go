package muxconn

import "sync/atomic"

// Counters add up the bytes of yamux frames (after TLS: a session's
// payload and yamux's headers) that the connections counting into them
// received and sent; one Counters serves every connection of a node, for
// its metrics, and outlives them.
type Counters struct {
	// In and Out are the bytes received and sent.
	In, Out atomic.Uint64
}

// CountInto makes the connection add its bytes to k from Start on; nil
// counts nothing. It is called before Start.
func (c *Conn) CountInto(k *Counters) { c.count = k }
