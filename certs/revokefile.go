package certs

import (
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRevocationInterval is how often, at most, a RevocationFile looks
// at its file when RevocationFileOptions.Interval is 0.
const DefaultRevocationInterval = time.Second

// RevocationFileOptions configure a RevocationFile.
type RevocationFileOptions struct {
	// Interval is how often, at most, the file is looked at (one stat;
	// it is read only when it changed). Default DefaultRevocationInterval.
	Interval time.Duration
	// OnChange, if set, is called with the new list each time a look at
	// the file (Check, Refresh) brought a changed list into force: the
	// place to drop live sessions that it now refuses. Not called by
	// Reload. It runs on the goroutine that looked, after the list is in
	// force; it may call Check.
	OnChange func(*RevocationList)
	// OnError, if set, is called when the file changed but cannot be
	// read or does not parse; the list in force stays. It is called once
	// per change of the file, not at every look.
	OnError func(error)
}

// RevocationFile is a revocation list kept in step with its file, so that
// a node notices a revocation (a "restpipe ca revoke", or a re-issue with
// --force) without being told: Check and Refresh look at the file at most
// once per Interval and re-read it when its size, modification time or
// identity changed. A change that does not parse leaves the list in force
// as it was. It is safe for concurrent use.
type RevocationFile struct {
	path string
	opts RevocationFileOptions
	list atomic.Pointer[RevocationList]

	mu      sync.Mutex
	checked time.Time   // when the file was last looked at
	seen    os.FileInfo // the file as last read, good or bad; nil if it was missing
	failed  bool        // seen did not load (an error was reported)
	racy    bool        // seen was modified so recently that a change may not show yet
}

// OpenRevocationFile loads the revocation list at path. Unlike later
// changes, a list that cannot be loaded now is an error (a missing one
// wraps fs.ErrNotExist): revocation fails closed.
func OpenRevocationFile(path string, opts RevocationFileOptions) (*RevocationFile, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultRevocationInterval
	}
	f := &RevocationFile{path: path, opts: opts}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file's path.
func (f *RevocationFile) Path() string { return f.path }

// List is the list in force.
func (f *RevocationFile) List() *RevocationList { return f.list.Load() }

// Check looks at the file if Interval has passed since the last look, then
// returns an error wrapping ErrRevoked if cert is on the list in force.
func (f *RevocationFile) Check(cert *x509.Certificate) error {
	f.Refresh()
	return f.List().Check(cert)
}

// Refresh looks at the file if Interval has passed since the last look,
// re-reads it if it changed, and reports whether a new list came into
// force. It calls OnChange or OnError as they say.
func (f *RevocationFile) Refresh() bool {
	now := time.Now()
	f.mu.Lock()
	if now.Sub(f.checked) < f.opts.Interval {
		f.mu.Unlock()
		return false
	}
	f.checked = now
	fi, err := os.Stat(f.path)
	switch {
	case err != nil:
		if f.seen == nil && f.failed {
			f.mu.Unlock()
			return false // reported already
		}
		f.seen, f.failed = nil, true
		f.mu.Unlock()
		f.report(fmt.Errorf("revocation list: %w (the list in force stays)", err))
		return false
	}
	changed := f.seen == nil || !sameFile(f.seen, fi)
	if !changed && !f.racy {
		f.mu.Unlock()
		return false
	}
	reported := f.failed && !changed // this version failed already
	list, err := f.read(fi, now)
	f.mu.Unlock()
	if err != nil {
		if !reported {
			f.report(err)
		}
		return false
	}
	if list == nil {
		return false // it looked changed but reads the same
	}
	if f.opts.OnChange != nil {
		f.opts.OnChange(list)
	}
	return true
}

// Reload re-reads the file now, changed or not (on SIGHUP, say), and
// returns the new list in force. On an error the list in force stays.
func (f *RevocationFile) Reload() (*RevocationList, error) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = now
	fi, err := os.Stat(f.path)
	if err != nil {
		f.seen, f.failed = nil, true
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	if _, err := f.read(fi, now); err != nil {
		return nil, err
	}
	return f.List(), nil
}

// read loads the file, which Stat described as fi, and puts it in force.
// It returns nil (and no error) when the list read is the one in force.
// Called with f.mu held.
func (f *RevocationFile) read(fi os.FileInfo, now time.Time) (*RevocationList, error) {
	f.seen = fi
	// A file modified within the last two seconds may change again with
	// the same size and a modification time the file system does not tell
	// apart (a coarse clock): look at it again next time.
	f.racy = now.Sub(fi.ModTime()) < 2*time.Second
	list, err := LoadRevocationList(f.path)
	if err != nil {
		f.failed = true
		return nil, err
	}
	f.failed = false
	if old := f.list.Load(); old != nil && old.equal(list) {
		return nil, nil
	}
	f.list.Store(list)
	return list, nil
}

func (f *RevocationFile) report(err error) {
	if f.opts.OnError != nil {
		f.opts.OnError(err)
	}
}

// sameFile reports whether b is a, unchanged.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// equal reports whether l and m hold the same serial numbers.
func (l *RevocationList) equal(m *RevocationList) bool {
	if l.Len() != m.Len() {
		return false
	}
	for s := range l.serials {
		if _, ok := m.serials[s]; !ok {
			return false
		}
	}
	return true
}
