package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockWait bounds how long a writer of a revocation list waits for
// another one to finish: a write takes milliseconds, so a lock held
// longer was left by a writer that was killed.
const lockWait = 10 * time.Second

// lockList takes the write lock of the revocation list at listPath: the
// file listPath+".lock", created exclusively (portable: no flock). Every
// read-modify-write of the list holds it, so that writers running at the
// same time ("restpipe ca issue --force" for many names at once) each
// add their serial instead of replacing each other's. The returned func
// releases it.
func lockList(listPath string) (unlock func(), err error) {
	lock := listPath + ".lock"
	deadline := time.Now().Add(lockWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "pid %d\n", os.Getpid())
			f.Close()
			return func() { _ = os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock %s: %w", listPath, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s: %s has existed for over %v: another restpipe ca command is writing the list, or one was killed while it did (then remove %s)",
				listPath, lock, lockWait, lock)
		}
		time.Sleep(delay)
	}
}
