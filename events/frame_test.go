package events_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/restpipe/restpipe/events"
)

// waitLimit bounds every wait on another goroutine, so that a bug shows
// as a failure instead of a hung test.
const waitLimit = 10 * time.Second

// encodeFrames returns what fn writes through a Writer.
func encodeFrames(tb testing.TB, fn func(w *events.Writer) error) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	if err := fn(w); err != nil {
		tb.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// encodeBody returns the framing of a complete body of the given chunks
// ended with errMsg in its trailer.
func encodeBody(tb testing.TB, errMsg string, chunks ...string) []byte {
	tb.Helper()
	return encodeFrames(tb, func(w *events.Writer) error {
		for _, c := range chunks {
			if err := w.WriteChunk([]byte(c)); err != nil {
				return err
			}
		}
		return w.EndBody(errMsg)
	})
}

func uvarint(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func sampleRequest() *events.Request {
	return &events.Request{
		Id:          "req-1",
		Method:      "POST",
		Noun:        events.Bytes([]string{"files", "upload"}),
		Args:        events.Bytes([]string{"a b", "c/d", ""}),
		Query:       []byte("x=1&y=2"),
		ContentType: []byte("text/plain"),
		Headers: []*events.Header{
			{Name: "Accept", Values: events.Bytes([]string{"text/plain", "application/json"})},
			{Name: "X-Request-Id", Values: events.Bytes([]string{"req-1"})},
		},
		TimeoutMs:  30000,
		RawPath:    []byte("/server/files/upload//a%20b/c%2Fd/"),
		RemoteAddr: "127.0.0.1:5555",
	}
}

func sampleReply() *events.Reply {
	return &events.Reply{
		Status:      418,
		ContentType: []byte("application/json"),
		Headers:     []*events.Header{{Name: "X-Event-Return-Code", Values: events.Bytes([]string{"418"})}},
		ErrorCode:   "teapot",
	}
}

func sampleHello() *events.Hello {
	return &events.Hello{ProtocolVersion: events.ProtocolVersion, NodeName: "c1", SoftwareVersion: "v0.0.0-test"}
}

// newMessage returns an empty message of the same type as m.
func newMessage(m proto.Message) proto.Message {
	return m.ProtoReflect().New().Interface()
}

// TestRoundTrip sends each kind of message with each kind of body across
// a synchronous in-memory connection, twice in a row on the same stream,
// and reads them back.
func TestRoundTrip(t *testing.T) {
	messages := []proto.Message{sampleRequest(), sampleReply(), sampleHello(), &events.Request{}}
	bodies := map[string][]byte{
		"empty": nil,
		"small": []byte("hello, world"),
		"big":   bytes.Repeat([]byte("0123456789abcdef"), (2*events.MaxChunkSize+7)/16+1),
	}
	for _, m := range messages {
		for bname, body := range bodies {
			t.Run(fmt.Sprintf("%T/%s", m, bname), func(t *testing.T) {
				client, server := net.Pipe()
				t.Cleanup(func() { client.Close(); server.Close() })

				werr := make(chan error, 1)
				go func() {
					defer client.Close()
					w := events.NewWriter(client)
					for range 2 {
						if err := w.WriteMessage(m); err != nil {
							werr <- err
							return
						}
						if err := w.WriteChunk(body); err != nil {
							werr <- err
							return
						}
						if err := w.EndBody(""); err != nil {
							werr <- err
							return
						}
					}
					werr <- w.Flush()
				}()

				r := events.NewReader(server)
				for i := range 2 {
					got := newMessage(m)
					if err := r.ReadMessage(got); err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if !proto.Equal(got, m) {
						t.Fatalf("message %d: got %v, want %v", i, got, m)
					}
					b := r.Body()
					gotBody, err := io.ReadAll(b)
					if err != nil {
						t.Fatalf("body %d: %v", i, err)
					}
					if !bytes.Equal(gotBody, body) {
						t.Fatalf("body %d: got %d bytes, want %d", i, len(gotBody), len(body))
					}
					if !b.Done() {
						t.Fatalf("body %d: not Done after io.EOF", i)
					}
				}
				if err := r.WaitEnd(); err != nil {
					t.Fatalf("WaitEnd: %v", err)
				}
				if err := <-werr; err != nil {
					t.Fatalf("writer: %v", err)
				}
			})
		}
	}
}

// TestWriteChunkSplits checks the wire format of a body larger than one
// chunk, byte for byte against the package documentation.
func TestWriteChunkSplits(t *testing.T) {
	body := bytes.Repeat([]byte{'x'}, 2*events.MaxChunkSize+7)
	enc := encodeBody(t, "", string(body))

	var want []byte
	for _, n := range []int{events.MaxChunkSize, events.MaxChunkSize, 7} {
		want = append(want, uvarint(uint64(n))...)
		want = append(want, body[:n]...)
	}
	want = append(want, 0)                           // end marker
	trailer, err := proto.Marshal(&events.Trailer{}) // empty: complete
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, uvarint(uint64(len(trailer)))...)
	want = append(want, trailer...)
	if !bytes.Equal(enc, want) {
		t.Fatalf("encoding differs: got %d bytes, want %d", len(enc), len(want))
	}

	// An empty write frames nothing: a zero length would end the body.
	if got := encodeFrames(t, func(w *events.Writer) error { return w.WriteChunk(nil) }); len(got) != 0 {
		t.Errorf("WriteChunk(nil) wrote %q", got)
	}
	if got := encodeBody(t, ""); !bytes.Equal(got, []byte{0, 0}) {
		t.Errorf("empty body = %q, want end marker and empty trailer", got)
	}
}

// TestCopyBodyFlushesEachRead: a slow producer's first chunk reaches the
// reader before the producer writes its second.
func TestCopyBodyFlushesEachRead(t *testing.T) {
	pr, pw := io.Pipe()
	client, server := net.Pipe()
	t.Cleanup(func() { pw.Close(); client.Close(); server.Close() })

	type result struct {
		n              int64
		srcErr, dstErr error
	}
	done := make(chan result, 1)
	go func() {
		w := events.NewWriter(client)
		var res result
		res.n, res.srcErr, res.dstErr = w.CopyBody(pr, make([]byte, 4096))
		done <- res
	}()

	body := events.NewReader(server).Body()
	readSome := func(want string) {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			p := make([]byte, 100)
			n, err := body.Read(p)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(p[:n])
		}()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("read %q, want %q", s, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%q did not arrive: CopyBody did not flush", want)
		}
	}

	// io.Pipe's Write returns once CopyBody has read it all, so the second
	// Write below cannot happen before the first chunk was read.
	if _, err := pw.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	readSome("first")
	if _, err := pw.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	readSome("second")
	pw.Close()
	if rest, err := io.ReadAll(body); err != nil || len(rest) != 0 {
		t.Fatalf("end of body: %q, %v; want nothing, nil", rest, err)
	}
	res := <-done
	if res.n != int64(len("firstsecond")) || res.srcErr != nil || res.dstErr != nil {
		t.Fatalf("CopyBody = %d, %v, %v; want 11, nil, nil", res.n, res.srcErr, res.dstErr)
	}
}

// sizedReads yields data in reads of the given sizes, in turn, and has no
// Len: CopyBody takes its streaming path.
type sizedReads struct {
	data  []byte
	sizes []int
	i     int
}

func (r *sizedReads) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), r.sizes[r.i%len(r.sizes)])
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// writeLog keeps a copy of every write, as a stream that must not be
// handed a buffer to keep would.
type writeLog struct{ writes [][]byte }

func (l *writeLog) Write(p []byte) (int, error) {
	l.writes = append(l.writes, bytes.Clone(p))
	return len(p), nil
}

// TestCopyBodyBigReads: big reads go out without the buffer, each in one
// write with its chunk header in front of it in the copy buffer: the body
// comes out whole and in order behind the message written before it,
// whatever the sizes of the reads and of the copy buffer.
func TestCopyBodyBigReads(t *testing.T) {
	body := make([]byte, 700<<10)
	for i := range body {
		body[i] = byte(i * 7 / 5)
	}
	for _, tc := range []struct {
		name  string
		buf   int
		sizes []int
	}{
		{"big reads, big buffer", 256 << 10, []int{256 << 10}},
		{"mixed reads", 256 << 10, []int{100, 40 << 10, 16 << 10, 200 << 10, 1, 70 << 10}},
		{"buffer just big enough", 16<<10 + binary.MaxVarintLen64, []int{64 << 10}},
		{"buffer one byte short", 16<<10 + binary.MaxVarintLen64 - 1, []int{64 << 10}},
		{"small buffer", 4 << 10, []int{64 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log writeLog
			w := events.NewWriter(&log)
			if err := w.WriteMessage(&events.Reply{Status: 200}); err != nil {
				t.Fatal(err)
			}
			n, srcErr, dstErr := w.CopyBody(&sizedReads{data: body, sizes: tc.sizes}, make([]byte, tc.buf))
			if n != int64(len(body)) || srcErr != nil || dstErr != nil {
				t.Fatalf("CopyBody = %d, %v, %v; want %d, nil, nil", n, srcErr, dstErr, len(body))
			}
			w.Release()
			var stream []byte
			// A write is one piece: a read with its header (the copy
			// buffer's size at most), or a buffer's worth.
			limit := max(tc.buf, 64<<10+binary.MaxVarintLen64)
			for _, p := range log.writes {
				if len(p) > limit {
					t.Errorf("a write of %d bytes, over %d", len(p), limit)
				}
				stream = append(stream, p...)
			}
			r := events.NewReader(bytes.NewReader(stream))
			var rep events.Reply
			if err := r.ReadMessage(&rep); err != nil || rep.Status != 200 {
				t.Fatalf("message before the body: %v %v", &rep, err)
			}
			got, err := io.ReadAll(r.Body())
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("body: %d bytes came out, %d went in, or not the same", len(got), len(body))
			}
		})
	}
}

// TestCopyBodySourceError: a producer that fails ends the body with its
// error, which the reader sees as a *BodyError after the data.
func TestCopyBodySourceError(t *testing.T) {
	boom := errors.New("disk on fire")
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	src := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(boom))
	n, srcErr, dstErr := w.CopyBody(src, make([]byte, 3))
	if n != 7 || srcErr != boom || dstErr != nil {
		t.Fatalf("CopyBody = %d, %v, %v; want 7, %v, nil", n, srcErr, dstErr, boom)
	}

	got, err := io.ReadAll(events.NewReader(&buf).Body())
	if string(got) != "partial" {
		t.Errorf("body = %q, want %q", got, "partial")
	}
	var be *events.BodyError
	if !errors.As(err, &be) || be.Msg != boom.Error() {
		t.Fatalf("error = %v, want *BodyError{%q}", err, boom.Error())
	}
}

// TestCopyBodyWriteError: a write error is returned as dstErr.
func TestCopyBodyWriteError(t *testing.T) {
	client, server := net.Pipe()
	server.Close()
	defer client.Close()
	w := events.NewWriter(client)
	_, srcErr, dstErr := w.CopyBody(strings.NewReader("x"), make([]byte, 10))
	if srcErr != nil || dstErr == nil {
		t.Fatalf("CopyBody = %v, %v; want nil, an error", srcErr, dstErr)
	}
}

func TestBodyError(t *testing.T) {
	enc := encodeBody(t, "producer gave up", "some", "data")
	r := events.NewReader(bytes.NewReader(enc))
	b := r.Body()
	got, err := io.ReadAll(b)
	if string(got) != "somedata" {
		t.Errorf("body = %q, want %q", got, "somedata")
	}
	var be *events.BodyError
	if !errors.As(err, &be) || be.Msg != "producer gave up" {
		t.Fatalf("error = %#v, want *BodyError{producer gave up}", err)
	}
	// The error is sticky, and the body is over.
	if n, err2 := b.Read(make([]byte, 10)); n != 0 || err2 != err {
		t.Errorf("second Read = %d, %v; want 0, %v", n, err2, err)
	}
	if !b.Done() {
		t.Error("not Done after the trailer")
	}
	if err := b.Drain(); !errors.As(err, &be) {
		t.Errorf("Drain = %v, want the *BodyError", err)
	}
	if err := r.WaitEnd(); err != nil {
		t.Errorf("WaitEnd after the trailer: %v", err)
	}
}

// TestTruncated cuts a valid body at every byte: each prefix is a stream
// that ended inside the body.
func TestTruncated(t *testing.T) {
	encodings := map[string][]byte{
		"complete":   encodeBody(t, "", "abc", strings.Repeat("y", 300)), // 300 has a two-byte header
		"with error": encodeBody(t, "failed", "abc"),
		"empty":      encodeBody(t, ""),
	}
	for name, enc := range encodings {
		for cut := range len(enc) {
			for _, mode := range []string{"Read", "WriteTo"} {
				r := events.NewReader(bytes.NewReader(enc[:cut]))
				var err error
				if mode == "Read" {
					_, err = io.ReadAll(r.Body())
				} else {
					_, err = r.Body().WriteTo(io.Discard)
				}
				if !errors.Is(err, events.ErrTruncated) {
					t.Errorf("%s cut at %d/%d, %s: error %v, want ErrTruncated", name, cut, len(enc), mode, err)
				}
			}
		}
	}
}

// errAfterReader yields data, then err instead of io.EOF.
type errAfterReader struct {
	data []byte
	err  error
}

func (r *errAfterReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestBodyStreamError: a stream error that is not the end of the stream
// is reported as itself, not as a truncated body.
func TestBodyStreamError(t *testing.T) {
	reset := errors.New("connection reset")
	enc := encodeBody(t, "", "abcdef")
	_, err := io.ReadAll(events.NewReader(&errAfterReader{data: enc[:4], err: reset}).Body())
	if !errors.Is(err, reset) || errors.Is(err, events.ErrTruncated) {
		t.Fatalf("error = %v, want one wrapping %v", err, reset)
	}
}

func TestMessageTooLarge(t *testing.T) {
	for _, size := range []uint64{events.MaxMessageSize + 1, 1 << 40, 1<<64 - 1} {
		// The bytes the header announces are there (for the small case):
		// the reader must refuse before reading them, not after.
		data := uvarint(size)
		if size == events.MaxMessageSize+1 {
			data = append(data, make([]byte, size)...)
		}
		r := events.NewReader(bytes.NewReader(data))

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := r.ReadMessage(&events.Request{})
		runtime.ReadMemStats(&after)

		if !errors.Is(err, events.ErrTooLarge) {
			t.Errorf("size %d: error %v, want ErrTooLarge", size, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > events.MaxMessageSize/4 {
			t.Errorf("size %d: ReadMessage allocated %d bytes to refuse it", size, grew)
		}
	}
}

// TestMessageMaxSize: a message of exactly MaxMessageSize is accepted.
func TestMessageMaxSize(t *testing.T) {
	// Field 2 (node_name): a one-byte tag, a three-byte length, the name.
	m := &events.Hello{NodeName: strings.Repeat("n", events.MaxMessageSize-4)}
	if n := proto.Size(m); n != events.MaxMessageSize {
		t.Fatalf("test message is %d bytes, want %d", n, events.MaxMessageSize)
	}
	enc := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(m) })
	var got events.Hello
	if err := events.NewReader(bytes.NewReader(enc)).ReadMessage(&got); err != nil {
		t.Fatal(err)
	}
	if got.NodeName != m.NodeName {
		t.Error("message changed on the way")
	}
}

func TestReadMessageErrors(t *testing.T) {
	valid := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(sampleRequest()) })
	tests := []struct {
		name string
		data []byte
		want error // nil: any error but those below
	}{
		{"clean end", nil, io.EOF},
		{"inside the length", []byte{0x80}, io.ErrUnexpectedEOF},
		{"inside the message", valid[:len(valid)-1], io.ErrUnexpectedEOF},
		{"after the length", valid[:1], io.ErrUnexpectedEOF},
		{"not protobuf", append(uvarint(3), 0xff, 0xff, 0xff), nil},
		{"overlong length", bytes.Repeat([]byte{0xff}, 11), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := events.NewReader(bytes.NewReader(tt.data)).ReadMessage(&events.Request{})
			switch {
			case tt.want == io.EOF:
				if err != io.EOF {
					t.Fatalf("error %v, want io.EOF itself", err)
				}
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
			case err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				t.Fatalf("error %v, want a decoding error", err)
			}
		})
	}
}

func TestChunkTooLarge(t *testing.T) {
	for _, size := range []uint64{events.MaxChunkSize + 1, 1<<64 - 1} {
		data := uvarint(size)
		for _, mode := range []string{"Read", "WriteTo"} {
			b := events.NewReader(bytes.NewReader(data)).Body()
			var err error
			if mode == "Read" {
				_, err = b.Read(make([]byte, 10))
			} else {
				_, err = b.WriteTo(io.Discard)
			}
			if !errors.Is(err, events.ErrTooLarge) {
				t.Errorf("chunk of %d, %s: error %v, want ErrTooLarge", size, mode, err)
			}
		}
	}
}

// readBoth reads the body in enc once through Read (with the given buffer
// size) and once through WriteTo, over the same kind of stream.
func readBoth(enc []byte, bufSize int, wrap func(io.Reader) io.Reader) (viaRead, viaWriteTo []byte, readErr, writeToErr error) {
	b := events.NewReader(wrap(bytes.NewReader(enc))).Body()
	p := make([]byte, bufSize)
	for {
		n, err := b.Read(p)
		viaRead = append(viaRead, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	var out bytes.Buffer
	_, writeToErr = events.NewReader(wrap(bytes.NewReader(enc))).Body().WriteTo(&out)
	return viaRead, out.Bytes(), readErr, writeToErr
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}

// TestWriteToMatchesRead: io.Copy from a body (WriteTo) yields what Read
// yields, whatever the stream hands out at a time.
func TestWriteToMatchesRead(t *testing.T) {
	big := strings.Repeat("z", 100<<10) // more than the stream buffer
	encodings := map[string][]byte{
		"empty":       encodeBody(t, ""),
		"small":       encodeBody(t, "", "a", "bc", "def"),
		"big":         encodeBody(t, "", big, "tail"),
		"error":       encodeBody(t, "bad", "abc"),
		"truncated":   encodeBody(t, "", "abcdef")[:4],
		"too large":   append(encodeBody(t, "", "ok")[:3], uvarint(events.MaxChunkSize+1)...),
		"bad trailer": append([]byte{1, 'a', 0}, append(uvarint(3), 0xff, 0xff, 0xff)...),
	}
	wraps := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
	}
	for name, enc := range encodings {
		for wname, wrap := range wraps {
			for _, bufSize := range []int{1, 7, 32 << 10} {
				r, w, rerr, werr := readBoth(enc, bufSize, wrap)
				if !bytes.Equal(r, w) || !sameError(rerr, werr) {
					t.Errorf("%s, %s, buffer %d: Read gave %d bytes, %v; WriteTo gave %d bytes, %v",
						name, wname, bufSize, len(r), rerr, len(w), werr)
				}
			}
		}
	}
}

// TestBodyReaderIOTest runs the standard library's io.Reader checks on a
// body.
func TestBodyReaderIOTest(t *testing.T) {
	want := []byte(strings.Repeat("restpipe ", 1000))
	enc := encodeBody(t, "", string(want[:10]), string(want[10:5000]), string(want[5000:]))
	if err := iotest.TestReader(events.NewReader(bytes.NewReader(enc)).Body(), want); err != nil {
		t.Fatal(err)
	}
}

func TestEndIfEmpty(t *testing.T) {
	req := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(sampleRequest()) })
	tests := []struct {
		name string
		body []byte
		want bool
		// rest is what the body reads afterwards
		rest string
	}{
		{"empty body buffered", encodeBody(t, ""), true, ""},
		{"body with data", encodeBody(t, "", "abc"), false, "abc"},
		{"nothing buffered", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := events.NewReader(bytes.NewReader(append(append([]byte{}, req...), tt.body...)))
			if err := r.ReadMessage(&events.Request{}); err != nil {
				t.Fatal(err)
			}
			b := r.Body()
			if got := b.EndIfEmpty(); got != tt.want {
				t.Fatalf("EndIfEmpty = %v, want %v", got, tt.want)
			}
			if got := b.Done(); got != tt.want {
				t.Errorf("Done = %v, want %v", got, tt.want)
			}
			if !tt.want {
				rest, err := io.ReadAll(b)
				if tt.body != nil && (err != nil || string(rest) != tt.rest) {
					t.Errorf("body after EndIfEmpty = %q, %v; want %q, nil", rest, err, tt.rest)
				}
			}
			// Once the body has ended, EndIfEmpty says so without reading.
			if !b.EndIfEmpty() && tt.body != nil {
				t.Error("EndIfEmpty false after the body ended")
			}
		})
	}
}

// TestEndIfEmptyDoesNotBlock: EndIfEmpty never waits for the stream, not
// even when the end marker has arrived and the trailer has not.
func TestEndIfEmptyDoesNotBlock(t *testing.T) {
	req := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(sampleRequest()) })
	body := encodeBody(t, "")
	for _, split := range []int{0, 1, 2} { // before the marker, after it, complete
		t.Run(fmt.Sprint(split), func(t *testing.T) {
			client, server := net.Pipe()
			t.Cleanup(func() { client.Close(); server.Close() })
			firstWritten := make(chan error, 1)
			sendRest := make(chan struct{})
			go func() {
				defer client.Close()
				_, err := client.Write(append(append([]byte{}, req...), body[:split]...))
				firstWritten <- err
				<-sendRest
				_, _ = client.Write(body[split:])
			}()

			r := events.NewReader(server)
			if err := r.ReadMessage(&events.Request{}); err != nil {
				t.Fatal(err)
			}
			if err := <-firstWritten; err != nil {
				t.Fatal(err)
			}
			b := r.Body()
			ended := make(chan bool, 1)
			go func() { ended <- b.EndIfEmpty() }()
			var got bool
			select {
			case got = <-ended:
			case <-time.After(waitLimit):
				close(sendRest)
				t.Fatal("EndIfEmpty blocked on the stream")
			}
			if want := split == len(body); got != want {
				t.Errorf("EndIfEmpty = %v, want %v", got, want)
			}
			close(sendRest)
			if rest, err := io.ReadAll(b); err != nil || len(rest) != 0 {
				t.Errorf("body = %q, %v; want empty, nil", rest, err)
			}
		})
	}
}

// TestEndIfEmptyErrorTrailer: an empty body whose producer failed has
// ended too, and its error is still there for the next Read.
func TestEndIfEmptyErrorTrailer(t *testing.T) {
	req := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(sampleRequest()) })
	r := events.NewReader(bytes.NewReader(append(req, encodeBody(t, "gave up")...)))
	if err := r.ReadMessage(&events.Request{}); err != nil {
		t.Fatal(err)
	}
	b := r.Body()
	if !b.EndIfEmpty() {
		t.Fatal("EndIfEmpty = false for an ended, buffered body")
	}
	var be *events.BodyError
	if _, err := io.ReadAll(b); !errors.As(err, &be) || be.Msg != "gave up" {
		t.Errorf("body error = %v, want *BodyError{gave up}", err)
	}
}

func TestWaitEnd(t *testing.T) {
	enc := encodeBody(t, "", "abc")
	tests := []struct {
		name    string
		stream  io.Reader
		wantErr bool
	}{
		{"clean end", bytes.NewReader(enc), false},
		{"extra data", bytes.NewReader(append(append([]byte{}, enc...), 'x')), true},
		{"stream error", &errAfterReader{data: enc, err: errors.New("reset")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := events.NewReader(tt.stream)
			if err := r.Body().Drain(); err != nil {
				t.Fatal(err)
			}
			if err := r.WaitEnd(); (err != nil) != tt.wantErr {
				t.Fatalf("WaitEnd = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

// TestWaitEndBlocks: WaitEnd waits for the peer to close its side.
func TestWaitEndBlocks(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	done := make(chan error, 1)
	go func() { done <- events.NewReader(server).WaitEnd() }()
	select {
	case err := <-done:
		t.Fatalf("WaitEnd returned %v before the end", err)
	default:
	}
	client.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitEnd = %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("WaitEnd did not return after the close")
	}
}

func BenchmarkWriteReadSmallEvent(b *testing.B) {
	req := sampleRequest()
	rep := sampleReply()
	replyBody := bytes.Repeat([]byte("x"), 100)
	var stream bytes.Buffer
	got := make([]byte, 200)
	b.ReportAllocs()
	b.SetBytes(int64(len(replyBody)))
	for b.Loop() {
		stream.Reset()
		w := events.NewWriter(&stream)
		if err := w.WriteMessage(req); err != nil {
			b.Fatal(err)
		}
		if err := w.EndBody(""); err != nil {
			b.Fatal(err)
		}
		if err := w.WriteMessage(rep); err != nil {
			b.Fatal(err)
		}
		if err := w.WriteChunk(replyBody); err != nil {
			b.Fatal(err)
		}
		if err := w.EndBody(""); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}

		r := events.NewReader(&stream)
		var gotReq events.Request
		if err := r.ReadMessage(&gotReq); err != nil {
			b.Fatal(err)
		}
		if err := r.Body().Drain(); err != nil {
			b.Fatal(err)
		}
		var gotRep events.Reply
		if err := r.ReadMessage(&gotRep); err != nil {
			b.Fatal(err)
		}
		n, err := io.ReadFull(r.Body(), got[:len(replyBody)])
		if err != nil || n != len(replyBody) {
			b.Fatal(n, err)
		}
	}
}

// frameSeeds are valid streams written by Writer and a few corrupt ones.
func frameSeeds(tb testing.TB) (requests, bodies [][]byte) {
	bodyEncodings := [][]byte{
		encodeBody(tb, ""),
		encodeBody(tb, "", "hello"),
		encodeBody(tb, "", "a", "bc", strings.Repeat("d", 300)),
		encodeBody(tb, "failed"),
		encodeBody(tb, "failed", "partial"),
	}
	req := encodeFrames(tb, func(w *events.Writer) error { return w.WriteMessage(sampleRequest()) })
	for _, body := range bodyEncodings {
		requests = append(requests, append(append([]byte{}, req...), body...))
	}
	requests = append(requests,
		nil,
		req,
		req[:len(req)/2],
		append(uvarint(events.MaxMessageSize+1), 'x'),
		append(uvarint(3), 0xff, 0xff, 0xff),
	)
	bodies = append(bodyEncodings,
		nil,
		[]byte{0},
		[]byte{5, 'a'},
		uvarint(events.MaxChunkSize+1),
		bytes.Repeat([]byte{0xff}, 11),
		append([]byte{1, 'a', 0}, append(uvarint(3), 0xff, 0xff, 0xff)...),
		append(encodeBody(tb, "", "x"), "trailing garbage"...),
	)
	return requests, bodies
}

// checkBody reads the body that starts at the reader's position in data
// both ways, checks they agree and that a complete body re-encodes to a
// body that reads the same.
func checkBody(t *testing.T, data []byte, skip func(r *events.Reader) error) {
	open := func(wrap func(io.Reader) io.Reader) *events.BodyReader {
		r := events.NewReader(wrap(bytes.NewReader(data)))
		if err := skip(r); err != nil {
			t.Fatalf("skip: %v", err) // it worked the first time
		}
		return r.Body()
	}
	var viaRead []byte
	b := open(iotest.OneByteReader)
	p := make([]byte, 5)
	var readErr error
	for {
		n, err := b.Read(p)
		if n < 0 || n > len(p) {
			t.Fatalf("Read returned %d", n)
		}
		viaRead = append(viaRead, p[:n]...)
		if err != nil {
			if err != io.EOF {
				readErr = err
			}
			break
		}
	}
	var out bytes.Buffer
	_, writeToErr := open(func(r io.Reader) io.Reader { return r }).WriteTo(&out)
	if !bytes.Equal(viaRead, out.Bytes()) || !sameError(readErr, writeToErr) {
		t.Fatalf("Read gave %q, %v; WriteTo gave %q, %v", viaRead, readErr, out.Bytes(), writeToErr)
	}
	var be *events.BodyError
	switch {
	case readErr == nil:
		again := encodeBody(t, "", string(viaRead))
		got, err := io.ReadAll(events.NewReader(bytes.NewReader(again)).Body())
		if err != nil || !bytes.Equal(got, viaRead) {
			t.Fatalf("re-encoded body reads %q, %v; want %q, nil", got, err, viaRead)
		}
	case errors.Is(readErr, events.ErrTruncated), errors.Is(readErr, events.ErrTooLarge), errors.As(readErr, &be):
	case strings.HasPrefix(readErr.Error(), "read body: "):
		// a trailer that is not a Trailer
	default:
		t.Fatalf("unexpected body error %v", readErr)
	}
}

func FuzzReadRequest(f *testing.F) {
	requests, _ := frameSeeds(f)
	for _, s := range requests {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req events.Request
		err := events.NewReader(bytes.NewReader(data)).ReadMessage(&req)
		if err != nil {
			if err != io.EOF && len(data) == 0 {
				t.Fatalf("empty stream: %v, want io.EOF", err)
			}
			return
		}
		checkBody(t, data, func(r *events.Reader) error { return r.ReadMessage(&events.Request{}) })

		// What was read writes back as something that reads the same.
		again := encodeFrames(t, func(w *events.Writer) error { return w.WriteMessage(&req) })
		var req2 events.Request
		if err := events.NewReader(bytes.NewReader(again)).ReadMessage(&req2); err != nil {
			t.Fatalf("re-encoded request: %v", err)
		}
		if !proto.Equal(&req, &req2) {
			t.Fatalf("re-encoded request %v, want %v", &req2, &req)
		}
	})
}

func FuzzReadBody(f *testing.F) {
	_, bodies := frameSeeds(f)
	for _, s := range bodies {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkBody(t, data, func(*events.Reader) error { return nil })
	})
}

// TestBodyReady: Ready is true only when the next step of the body (data
// of a chunk, or its whole end) is already buffered.
func TestBodyReady(t *testing.T) {
	frame := func(f func(w *events.Writer)) []byte {
		var buf bytes.Buffer
		w := events.NewWriter(&buf)
		f(w)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	whole := frame(func(w *events.Writer) { _ = w.WriteChunk([]byte("hello")); _ = w.EndBody("") })
	b := events.NewReader(bytes.NewReader(whole)).Body()
	if b.Ready() {
		t.Error("Ready before anything was read")
	}
	p := make([]byte, 2)
	if _, err := b.Read(p); err != nil {
		t.Fatal(err)
	}
	if !b.Ready() {
		t.Error("not Ready with the rest of the chunk buffered")
	}
	if _, err := io.ReadFull(b, make([]byte, 3)); err != nil {
		t.Fatal(err)
	}
	if !b.Ready() {
		t.Error("not Ready with the end buffered")
	}
	if _, err := b.Read(p); err != io.EOF {
		t.Fatalf("Read at the end = %v, want io.EOF", err)
	}
	if !b.Ready() {
		t.Error("not Ready after the end")
	}

	// The next chunk's header alone, and the end marker without its whole
	// trailer, are not enough.
	next := frame(func(w *events.Writer) { _ = w.WriteChunk([]byte("ab")) })
	next = append(next, 3) // a header: 3 bytes follow, none here
	end := frame(func(w *events.Writer) { _ = w.WriteChunk([]byte("ab")); _ = w.EndBody("an error") })
	for name, in := range map[string][]byte{"header only": next, "part of the trailer": end[:len(end)-2]} {
		b := events.NewReader(bytes.NewReader(in)).Body()
		if _, err := io.ReadFull(b, make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
		if b.Ready() {
			t.Errorf("%s: Ready", name)
		}
	}
}

// readyWriter records the body's Ready at each Write, as a relay that
// flushes only when nothing more is there would see it.
type readyWriter struct {
	b     *events.BodyReader
	ready []bool
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.ready = append(w.ready, w.b.Ready())
	return len(p), nil
}

// TestBodyWriteToReady: during WriteTo's last write of a body whose end
// is buffered, Ready is true; during a write after which the stream must
// be waited for, it is false.
func TestBodyWriteToReady(t *testing.T) {
	var buf bytes.Buffer
	w := events.NewWriter(&buf)
	_ = w.WriteChunk([]byte("hello"))
	_ = w.EndBody("")
	_ = w.Flush()
	b := events.NewReader(bytes.NewReader(buf.Bytes())).Body()
	rw := &readyWriter{b: b}
	if _, err := b.WriteTo(rw); err != nil {
		t.Fatal(err)
	}
	if len(rw.ready) != 1 || !rw.ready[0] {
		t.Errorf("Ready at the writes of a whole small body: %v, want [true]", rw.ready)
	}

	pr, pw := io.Pipe()
	go func() {
		w := events.NewWriter(pw)
		_ = w.WriteChunk([]byte("first"))
		_ = w.Flush()
		_ = w.WriteChunk([]byte("second")) // after the first was relayed
		_ = w.EndBody("")
		_ = w.Flush()
		pw.Close()
	}()
	b = events.NewReader(pr).Body()
	rw = &readyWriter{b: b}
	if _, err := b.WriteTo(rw); err != nil {
		t.Fatal(err)
	}
	if len(rw.ready) < 2 || rw.ready[0] {
		t.Errorf("Ready at the writes of a streamed body: %v, want false first", rw.ready)
	}
}

// TestBodyWhole: Whole gives the length left when the rest of the body
// and its successful end are buffered, and nothing otherwise.
func TestBodyWhole(t *testing.T) {
	frame := func(f func(w *events.Writer)) []byte {
		var buf bytes.Buffer
		w := events.NewWriter(&buf)
		f(w)
		_ = w.Flush()
		return buf.Bytes()
	}
	ok := frame(func(w *events.Writer) {
		_ = w.WriteChunk([]byte("hel"))
		_ = w.WriteChunk([]byte("lo"))
		_ = w.EndBody("")
	})
	failed := frame(func(w *events.Writer) { _ = w.WriteChunk([]byte("hello")); _ = w.EndBody("disk gone") })
	for _, c := range []struct {
		name string
		in   []byte
		n    int64
		ok   bool
	}{
		{"whole", ok, 4, true}, // after the first byte read
		{"end cut off", ok[:len(ok)-1], 0, false},
		{"error trailer", failed, 0, false},
	} {
		b := events.NewReader(bytes.NewReader(c.in)).Body()
		if _, err := b.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if n, ok := b.Whole(); n != c.n || ok != c.ok {
			t.Errorf("%s: Whole = %d, %v; want %d, %v", c.name, n, ok, c.n, c.ok)
		}
	}
}
