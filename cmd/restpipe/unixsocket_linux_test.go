package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// TestUnixSocketModeFromTheStart: the front end's socket never exists
// under its name with any mode but 0600. inotify on its directory sees
// the name appear; a chmod after that (the old bind-then-chmod, during
// which anyone could connect) would show as IN_ATTRIB on it.
func TestUnixSocketModeFromTheStart(t *testing.T) {
	d := identities(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "front.sock")
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_ATTRIB); err != nil {
		t.Skipf("no inotify: %v", err)
	}
	srv := startNode(t, nil, "server", "--listen", "127.0.0.1:0", "--http", "unix:"+sock,
		"--cert", filepath.Join(d, "server.crt"), "--key", filepath.Join(d, "server.key"), "--ca", filepath.Join(d, "ca.crt"))
	srv.log.wait(t, unixAddrRe)
	assertSocketMode(t, sock)

	buf := make([]byte, 64<<10)
	n, err := syscall.Read(fd, buf)
	if err != nil {
		t.Fatalf("read inotify: %v", err)
	}
	appeared := false
	for off := 0; off+syscall.SizeofInotifyEvent <= n; {
		ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
		off += syscall.SizeofInotifyEvent + int(ev.Len)
		name := string(nameBytes[:clen(nameBytes)])
		if name != "front.sock" {
			continue
		}
		switch {
		case ev.Mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0:
			appeared = true
		case ev.Mask&syscall.IN_ATTRIB != 0:
			t.Errorf("the socket's attributes changed after it appeared (event %#x): it was not 0600 from the start", ev.Mask)
		}
	}
	if !appeared {
		t.Error("inotify did not see the socket appear")
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Fatal(err)
	}
}

// clen is the length of a NUL-padded name.
func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}
