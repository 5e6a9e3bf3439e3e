package muxconn

import "encoding/binary"

// The yamux frame header (yamux's spec.md; assumptions 1 and 2 of the
// package comment): version (1 byte), type (1), flags (2), stream id (4),
// length (4), all big-endian. A data frame's body of length bytes follows
// its header; the other types have none (a ping's and a go-away's length
// is their opaque value, a window update's the window's increment).
const (
	headerSize = 12

	typeData   = 0
	typeWindow = 1
	typePing   = 2
	typeGoAway = 3

	flagSYN = 1
	flagACK = 2
	flagFIN = 4
	flagRST = 8
)

// header is one frame header as the scanner and the writer read it.
type header []byte

func (h header) typ() byte        { return h[1] }
func (h header) flags() uint16    { return binary.BigEndian.Uint16(h[2:4]) }
func (h header) streamID() uint32 { return binary.BigEndian.Uint32(h[4:8]) }
func (h header) length() uint32   { return binary.BigEndian.Uint32(h[8:12]) }

// onStream reports whether the frame belongs to a stream (data or window
// update), so that its SYN, FIN and RST flags open or close one.
func (h header) onStream() bool { return h.typ() == typeData || h.typ() == typeWindow }
