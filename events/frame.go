package events

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

const (
	// MaxMessageSize bounds one framed protobuf message (a Hello, Request,
	// Reply or Trailer). Request headers are bounded well below it by the
	// front end.
	MaxMessageSize = 1 << 20
	// MaxChunkSize bounds one body chunk. Writers split larger writes.
	MaxChunkSize = 1 << 20
	// bufferSize is the size of the buffered reader and writer on a
	// stream: large enough that a small event is one write, and that a
	// 64 KiB copy with its chunk header is one flush, not two.
	bufferSize = 64<<10 + binary.MaxVarintLen64
	// flushSize is the most body one flush of the buffer carries.
	flushSize = bufferSize - binary.MaxVarintLen64
	// directChunk is the smallest piece of a copied body that is written
	// without going through the buffer.
	directChunk = 16 << 10
)

var (
	// ErrTooLarge reports a message or chunk over its size limit.
	ErrTooLarge = errors.New("events: frame too large")
	// ErrTruncated reports a stream that ended inside a body.
	ErrTruncated = errors.New("events: body truncated")
)

// BodyError is the error a body's producer put in its Trailer: the body
// ended early and is incomplete.
type BodyError struct{ Msg string }

func (e *BodyError) Error() string { return "body ended early: " + e.Msg }

// Writer frames messages and bodies onto one direction of a stream. It
// buffers: call Flush to send what was written. It is not safe for
// concurrent use: one writer per stream.
type Writer struct {
	bw    *bufio.Writer
	dst   io.Writer // what bw writes to
	small bool      // bw is from smallWriterPool
	hdr   [binary.MaxVarintLen64]byte
}

var (
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferSize) }}
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufferSize) }}
	// smallPool holds the buffers of the readers Shrink made small.
	smallPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, smallSize) }}
	// smallWriterPool holds the buffers of NewSmallWriter.
	smallWriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, smallWriterSize) }}
)

// smallWriterSize is the buffer of a Writer for a small event: a header
// and a body of up to 4 KiB in one flush.
const smallWriterSize = 8 << 10

// smallSize is the size of a Reader's buffer once Shrink made it small:
// what a served small event holds while its handler runs.
const smallSize = 4 << 10

// NewWriter returns a Writer on w. Its buffer comes from a pool: Release
// returns it once the Writer is no longer needed.
func NewWriter(w io.Writer) *Writer {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	return &Writer{bw: bw, dst: w}
}

// NewSmallWriter is NewWriter with an 8 KiB buffer instead of 64 KiB:
// for an event whose header and body (of at most 4 KiB) are small, so
// that 10,000 of them at once do not take 640 MiB of buffers. Anything
// bigger still goes out whole, in more writes.
func NewSmallWriter(w io.Writer) *Writer {
	bw := smallWriterPool.Get().(*bufio.Writer)
	bw.Reset(w)
	return &Writer{bw: bw, dst: w, small: true}
}

// Release returns the Writer's buffer to the pool. The Writer must not be
// used afterwards; a second Release does nothing.
func (w *Writer) Release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		if w.small {
			smallWriterPool.Put(w.bw)
		} else {
			writerPool.Put(w.bw)
		}
		w.bw, w.dst = nil, nil
	}
}

// WriteMessage frames m as one length-prefixed message.
func (w *Writer) WriteMessage(m proto.Message) error {
	if _, err := protodelim.MarshalTo(w.bw, m); err != nil {
		return fmt.Errorf("write %T: %w", m, err)
	}
	return nil
}

// WriteChunk frames p as body chunks. An empty p writes nothing (a zero
// length would be the end marker).
func (w *Writer) WriteChunk(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), MaxChunkSize)
		k := binary.PutUvarint(w.hdr[:], uint64(n))
		if _, err := w.bw.Write(w.hdr[:k]); err != nil {
			return err
		}
		if _, err := w.bw.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// MaxTrailerSize bounds a Trailer as framed: the trailer fields of a body
// (64 KiB, as much as a front end takes of a request's header fields by
// default), or its error. A Writer refuses to write a bigger one (the
// body ends with an error instead), and a Reader refuses to read one.
const MaxTrailerSize = 64 << 10

// maxTrailerError bounds a Trailer's error: a reason for a log line or a
// header, not a body. EndBody cuts a longer one short.
const maxTrailerError = 4 << 10

// ErrTrailerTooLarge reports trailer fields over MaxTrailerSize; it wraps
// ErrTooLarge.
var ErrTrailerTooLarge = fmt.Errorf("trailer fields: %w", ErrTooLarge)

// EndBody writes the end marker and a Trailer carrying errMsg, which is
// empty when the body is complete (cut to 4 KiB).
func (w *Writer) EndBody(errMsg string) error {
	if err := w.bw.WriteByte(0); err != nil {
		return err
	}
	if len(errMsg) > maxTrailerError-16 {
		errMsg = strings.ToValidUTF8(errMsg[:maxTrailerError-16], "")
	}
	return w.WriteMessage(&Trailer{Error: errMsg})
}

// EndBodyTrailer ends a complete body with its trailer fields hs (none:
// EndBody("")). Trailer fields over MaxTrailerSize are not sent: the body
// ends with an error that says so, and the error returned wraps
// ErrTrailerTooLarge; write errors are returned as they are.
func (w *Writer) EndBodyTrailer(hs []*Header) (tooLarge, err error) {
	if len(hs) == 0 {
		return nil, w.EndBody("")
	}
	t := &Trailer{Headers: hs}
	if n := proto.Size(t); n > MaxTrailerSize {
		tooLarge = fmt.Errorf("%w: %d bytes, the limit is %d", ErrTrailerTooLarge, n, MaxTrailerSize)
		return tooLarge, w.EndBody(tooLarge.Error())
	}
	if err := w.bw.WriteByte(0); err != nil {
		return nil, err
	}
	return nil, w.WriteMessage(t)
}

// TrailerSource is a body with trailer fields: once it has returned
// io.EOF, Trailer returns them (nil for none). CopyBody sends them in the
// body's Trailer.
type TrailerSource interface {
	Trailer() []*Header
}

// endCopy ends a body that src yielded to its end: with src's trailer
// fields if it is a TrailerSource. srcErr reports fields over the limit.
func (w *Writer) endCopy(src io.Reader) (srcErr, dstErr error) {
	if ts, ok := src.(TrailerSource); ok {
		return w.EndBodyTrailer(ts.Trailer())
	}
	return nil, w.EndBody("")
}

// Flush sends everything buffered.
func (w *Writer) Flush() error { return w.bw.Flush() }

// CopyBody frames everything src yields as a body, flushing after each
// read so that a slow producer's output leaves at once, and ends it, with
// src's trailer fields if it is a TrailerSource. A read error other than
// io.EOF ends the body with that error in the trailer and is returned (so
// are trailer fields over MaxTrailerSize, see EndBodyTrailer); a write error is returned as is. buf is the copy buffer: a
// read of 16 KiB or more goes to the stream in one write, so its size
// bounds the writes (the frames) too; smaller reads go through the
// Writer's buffer.
func (w *Writer) CopyBody(src io.Reader, buf []byte) (n int64, srcErr, dstErr error) {
	if m, ok := src.(interface{ Len() int }); ok && m.Len() >= 0 && m.Len() <= len(buf) {
		// A body already in memory (bytes.Reader, strings.Reader) goes out
		// with its end in one flush: one frame for a small reply.
		k, err := io.ReadFull(src, buf[:m.Len()])
		if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
			if werr := w.WriteChunk(buf[:k]); werr != nil {
				return int64(k), nil, werr
			}
			srcErr, werr := w.endCopy(src)
			if werr != nil {
				return int64(k), srcErr, werr
			}
			return int64(k), srcErr, w.Flush()
		}
		n = int64(k)
		if werr := w.WriteChunk(buf[:k]); werr != nil {
			return n, nil, werr
		}
		if werr := w.EndBody(err.Error()); werr != nil {
			return n, err, werr
		}
		return n, err, w.Flush()
	}
	// A big piece skips the buffer: its chunk header is put in front of it
	// in buf (in room kept free for it, or over bytes already written) and
	// both go out in one write, so the piece is not copied on the way.
	room := 0
	if len(buf) >= directChunk+binary.MaxVarintLen64 {
		room = binary.MaxVarintLen64
	}
	for {
		k, err := src.Read(buf[room:])
		// A read goes out in one write to the stream (one frame) when it
		// can skip the buffer, as pieces of at most flushSize otherwise.
		for off := room; off < room+k; {
			direct := room > 0 && room+k-off >= directChunk && w.bw.Buffered() == 0
			end := min(room+k, off+flushSize)
			if direct {
				end = room + k
			}
			piece := buf[off:end]
			n += int64(len(piece))
			var werr error
			if direct {
				h := binary.PutUvarint(w.hdr[:], uint64(len(piece)))
				copy(buf[off-h:off], w.hdr[:h])
				_, werr = w.dst.Write(buf[off-h : off+len(piece)])
			} else if werr = w.WriteChunk(piece); werr == nil {
				werr = w.bw.Flush()
			}
			if werr != nil {
				return n, nil, werr
			}
			off += len(piece)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if werr := w.EndBody(err.Error()); werr != nil {
				return n, err, werr
			}
			return n, err, w.Flush()
		}
	}
	srcErr, err := w.endCopy(src)
	if err != nil {
		return n, srcErr, err
	}
	return n, srcErr, w.Flush()
}

// Reader reads framed messages and bodies from one direction of a stream.
// It is not safe for concurrent use: one reader per stream.
type Reader struct {
	br    *bufio.Reader
	small bool // br is from smallPool
	pre   prefixReader
	opts  protodelim.UnmarshalOptions
}

// prefixReader yields b, then what src yields.
type prefixReader struct {
	b   []byte
	src io.Reader
	one [1]byte // b's storage for NewReaderAfter
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.b) == 0 {
		return p.src.Read(b)
	}
	n := copy(b, p.b)
	p.b = p.b[n:]
	return n, nil
}

// NewReader returns a Reader on r. Its buffer comes from a pool: Release
// returns it once nothing reads from the Reader (or its bodies) any more.
func NewReader(r io.Reader) *Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return &Reader{
		br:   br,
		pre:  prefixReader{src: r},
		opts: protodelim.UnmarshalOptions{MaxSize: MaxMessageSize},
	}
}

// NewReaderAfter is NewReader on a stream whose first byte, b, has
// already been read from r: a caller that waits for a reply reads that
// byte first, so that it holds no buffer while it waits.
func NewReaderAfter(b byte, r io.Reader) *Reader {
	rd := &Reader{opts: protodelim.UnmarshalOptions{MaxSize: MaxMessageSize}}
	rd.pre.one[0] = b
	rd.pre.b, rd.pre.src = rd.pre.one[:], r
	rd.br = readerPool.Get().(*bufio.Reader)
	rd.br.Reset(&rd.pre)
	return rd
}

// Shrink swaps the Reader's buffer for a small one (of smallSize) if what
// it holds fits in it, and reports whether the Reader's buffer is small:
// a served event whose whole request is read holds little while its
// handler runs. What is buffered is kept; what follows is read from the
// stream as before.
func (r *Reader) Shrink() bool {
	if r.br == nil || r.small {
		return r.small
	}
	n := r.br.Buffered()
	if n > smallSize || len(r.pre.b) > 0 {
		return false
	}
	held, _ := r.br.Peek(n)
	s := smallPool.Get().(*bufio.Reader)
	r.pre.b = held
	s.Reset(&r.pre)
	if n > 0 {
		// One fill copies the held bytes, and no more (pre hands out only
		// them in one read), into the small buffer.
		_, _ = s.Peek(n)
	}
	r.pre.b = nil
	r.br.Reset(nil)
	readerPool.Put(r.br)
	r.br, r.small = s, true
	return true
}

// Release returns the Reader's buffer to the pool. Neither the Reader nor
// a BodyReader from it may be used afterwards; a second Release does
// nothing.
func (r *Reader) Release() {
	if r.br != nil {
		r.br.Reset(nil)
		if r.small {
			smallPool.Put(r.br)
		} else {
			readerPool.Put(r.br)
		}
		r.br = nil
	}
}

// ReadMessage reads one length-prefixed message into m. It returns io.EOF
// if the stream ended cleanly before the message began.
func (r *Reader) ReadMessage(m proto.Message) error {
	err := r.opts.UnmarshalFrom(r.br, m)
	var sizeErr *protodelim.SizeTooLargeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return io.EOF
	case errors.As(err, &sizeErr):
		return fmt.Errorf("read %T: %w (%d bytes, the limit is %d)", m, ErrTooLarge, sizeErr.Size, r.opts.MaxSize)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("read %T: %w", m, io.ErrUnexpectedEOF)
	default:
		return fmt.Errorf("read %T: %w", m, err)
	}
}

// Body returns a reader of the body that follows on the stream. It must be
// read to its end (io.EOF) before anything else is read from r.
func (r *Reader) Body() *BodyReader { return &BodyReader{r: r} }

// BodyReader reads one framed body. Read returns io.EOF at a complete end,
// ErrTruncated if the stream ends inside the body, and *BodyError if the
// producer ended it with an error.
type BodyReader struct {
	r       *Reader
	left    uint64    // bytes left in the current chunk
	err     error     // sticky: set once the body has ended
	trailer []*Header // the trailer fields of a complete body
}

// Trailer returns the trailer fields the body's producer sent after it,
// once Read has returned io.EOF (before, nil). They are as the peer sent
// them: TrailersToHTTP checks them.
func (b *BodyReader) Trailer() []*Header {
	if b.err != io.EOF {
		return nil
	}
	return b.trailer
}

// Read implements io.Reader.
func (b *BodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, b.err
	}
	for b.left == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.nextChunk()
	}
	if uint64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.br.Read(p)
	b.left -= uint64(n)
	if err != nil {
		b.fail(err)
		if n > 0 {
			return n, nil
		}
		return 0, b.err
	}
	return n, nil
}

// WriteTo implements io.WriterTo: io.Copy from a body hands out what the
// stream's buffered reader holds, without another copy buffer.
func (b *BodyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for b.left == 0 {
			if b.err == io.EOF {
				return total, nil
			}
			if b.err != nil {
				return total, b.err
			}
			b.nextChunk()
		}
		if b.r.br.Buffered() == 0 {
			// Wait for at least one byte of the chunk.
			if _, err := b.r.br.Peek(1); err != nil {
				b.fail(err)
				return total, b.err
			}
		}
		// The piece is taken before it is written (its bytes stay valid
		// until the next read), so that w sees where the body stands:
		// Ready says whether more is there.
		buf, _ := b.r.br.Peek(int(min(b.left, uint64(b.r.br.Buffered()))))
		_, _ = b.r.br.Discard(len(buf))
		b.left -= uint64(len(buf))
		k, werr := w.Write(buf)
		total += int64(k)
		if werr != nil {
			return total, werr
		}
		if s, ok := w.(slowWriter); ok && !b.r.small && s.Slow() {
			// What w takes slowly need not be read in big pieces: the
			// buffer becomes a small one once it is empty.
			b.r.Shrink()
		}
	}
}

// slowWriter is a writer that can tell that its reader is slow (the
// tunnel's front end, writing to a caller): a BodyReader copying to it
// then reads in small pieces (Reader.Shrink), so that a slow stream
// does not hold a 64 KiB buffer.
type slowWriter interface{ Slow() bool }

// nextChunk reads the next chunk header: it sets left, or err at the end.
func (b *BodyReader) nextChunk() {
	n, err := binary.ReadUvarint(b.r.br)
	switch {
	case err != nil:
		b.fail(err)
	case n == 0:
		b.err = b.readTrailer()
	case n > MaxChunkSize:
		b.err = fmt.Errorf("read body: chunk of %d bytes: %w", n, ErrTooLarge)
	default:
		b.left = n
	}
}

func (b *BodyReader) fail(err error) {
	b.left = 0
	b.err = truncated(err)
}

// Ready reports whether more of the body, or its end, is already
// buffered: the next Read or step of WriteTo returns without waiting for
// the stream. A relay can hold back a flush while it is (the end of a
// small body arrives with its data).
func (b *BodyReader) Ready() bool {
	if b.err != nil {
		return true
	}
	n := b.r.br.Buffered()
	if b.left > 0 || n == 0 {
		return n > 0
	}
	c, _ := b.r.br.Peek(n)
	size, k := binary.Uvarint(c)
	switch {
	case k <= 0:
		return false // the next chunk header is not all here
	case size > 0:
		return len(c) > k // some of the next chunk's data
	default:
		// The end marker; the trailer must be all here too.
		tsize, tk := binary.Uvarint(c[k:])
		return tk > 0 && tsize <= uint64(len(c)-k-tk)
	}
}

// Whole reports whether the rest of the body and its complete,
// successful end are already buffered, and if so how many bytes of body
// are left to read: a relay can then announce the length instead of
// streaming.
func (b *BodyReader) Whole() (n int64, ok bool) {
	switch {
	case b.err == io.EOF:
		return 0, true
	case b.err != nil:
		return 0, false
	}
	c, _ := b.r.br.Peek(b.r.br.Buffered())
	left := b.left
	for {
		if uint64(len(c)) < left {
			return 0, false
		}
		n += int64(left)
		c = c[left:]
		size, k := binary.Uvarint(c)
		if k <= 0 || size > MaxChunkSize {
			return 0, false
		}
		c = c[k:]
		if size == 0 {
			// The end marker, then an empty Trailer: no error.
			if tsize, tk := binary.Uvarint(c); tk > 0 && tsize == 0 {
				return n, true
			}
			return 0, false
		}
		left = size
	}
}

// Done reports whether the body has been read to its end, complete or not.
func (b *BodyReader) Done() bool { return b.err != nil }

func (b *BodyReader) readTrailer() error {
	var t Trailer
	if err := b.r.ReadHeader(&t, MaxTrailerSize); err != nil {
		return truncated(err)
	}
	if t.Error != "" {
		return &BodyError{Msg: t.Error}
	}
	b.trailer = t.Headers
	return io.EOF
}

// Drain reads the rest of the body and discards it, returning nil at a
// complete end.
func (b *BodyReader) Drain() error {
	_, err := io.Copy(io.Discard, b)
	return err
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return fmt.Errorf("read body: %w", err)
}

// EndIfEmpty reads the end of the body at once if the body is empty and
// its end marker and trailer have already arrived, and reports whether it
// did. The sender writes an empty body together with its Request, so this
// lets a receiver know without blocking that nothing more of the body will
// come.
func (b *BodyReader) EndIfEmpty() bool {
	if b.err != nil {
		return true
	}
	if b.left != 0 || b.r.br.Buffered() == 0 {
		return false
	}
	c, _ := b.r.br.Peek(b.r.br.Buffered())
	if c[0] != 0 {
		return false
	}
	// Reading the trailer must not block either: it must all be here.
	size, k := binary.Uvarint(c[1:])
	if k <= 0 || size > uint64(len(c)-1-k) {
		return false
	}
	b.nextChunk()
	return true
}

// WaitEnd blocks until the stream ends (nil) or fails (its error). It is
// for after the last message: any more data is a protocol error.
func (r *Reader) WaitEnd() error {
	_, err := r.br.ReadByte()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return err
	default:
		return errors.New("events: data after the end of the body")
	}
}

// MaxHeaderFields bounds the repeated elements (headers, header values,
// noun segments, arguments) of a Request or Reply read with
// ReadHeader: decoded, each costs far more memory than its two bytes on
// the wire, so the size of the message alone would not bound it.
const MaxHeaderFields = 1024

// ReadMessageMax is ReadMessage for a message of at most max bytes (and
// at most MaxMessageSize): a bigger one is refused (ErrTooLarge) before
// it is read.
func (r *Reader) ReadMessageMax(m proto.Message, max int) error {
	saved := r.opts.MaxSize
	r.opts.MaxSize = int64(min(max, MaxMessageSize))
	defer func() { r.opts.MaxSize = saved }()
	return r.ReadMessage(m)
}

// ReadHeader reads an event's Request or Reply, or a body's Trailer, of
// at most max bytes with at most MaxHeaderFields repeated elements: the
// bounds a node puts on what its peer sends. A message over either is
// refused with ErrTooLarge, before it is decoded.
func (r *Reader) ReadHeader(m proto.Message, max int) error {
	var nested protowire.Number // the Header field holding its values
	switch m.(type) {
	case *Request:
		nested = 7
	case *Reply:
		nested = 3
	case *Trailer:
		nested = 2
	default:
		return fmt.Errorf("read %T: not an event header", m)
	}
	size, err := binary.ReadUvarint(r.br)
	switch {
	case errors.Is(err, io.EOF):
		return io.EOF
	case err != nil:
		return fmt.Errorf("read %T: %w", m, truncatedEOF(err))
	case size > uint64(min(max, MaxMessageSize)):
		return fmt.Errorf("read %T: %w (%d bytes, the limit is %d)", m, ErrTooLarge, size, min(max, MaxMessageSize))
	}
	var b []byte
	if int(size) <= r.br.Size() {
		// Decoded straight from the buffer (strings are copied out).
		b, err = r.br.Peek(int(size))
		defer r.br.Discard(len(b))
	} else {
		b = make([]byte, size)
		_, err = io.ReadFull(r.br, b)
	}
	if err != nil {
		return fmt.Errorf("read %T: %w", m, truncatedEOF(err))
	}
	if n := countFields(b, nested); n < 0 {
		return fmt.Errorf("read %T: malformed message", m)
	} else if n > MaxHeaderFields {
		return fmt.Errorf("read %T: %w (%d headers, header values, noun segments and arguments, the limit is %d)",
			m, ErrTooLarge, n, MaxHeaderFields)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("read %T: %w", m, err)
	}
	return nil
}

// truncatedEOF reports a message cut short as io.ErrUnexpectedEOF.
func truncatedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// countFields counts the repeated elements of an encoded Request or
// Reply: every length-delimited top-level field (a scalar string repeated
// on the wire only replaces the last, so counting it too is on the safe
// side), and the values inside each Header (field nested). It returns -1
// for bytes that are not a valid message.
func countFields(b []byte, nested protowire.Number) int {
	n := 0
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return -1
		}
		b = b[k:]
		if typ != protowire.BytesType {
			if k = protowire.ConsumeFieldValue(num, typ, b); k < 0 {
				return -1
			}
			b = b[k:]
			continue
		}
		v, k := protowire.ConsumeBytes(b)
		if k < 0 {
			return -1
		}
		b = b[k:]
		n++
		if num == nested {
			for len(v) > 0 {
				num, typ, k := protowire.ConsumeTag(v)
				if k < 0 {
					return -1
				}
				kv := protowire.ConsumeFieldValue(num, typ, v[k:])
				if kv < 0 {
					return -1
				}
				v = v[k+kv:]
				if num == 2 { // values; a repeated name only replaces the last
					n++
				}
			}
		}
	}
	return n
}
