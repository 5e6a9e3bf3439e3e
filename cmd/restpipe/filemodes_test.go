package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/restpipe/restpipe/certs"
)

// TestFileModeNotes: where files have permission bits the CLI names the
// key's mode and adds no note; where they have none (Windows) it never
// claims 0600 and says, once each, that the CA directory and the node's
// key were not checked and who can connect to the front end's socket.
func TestFileModeNotes(t *testing.T) {
	var stderr, logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	noteUncheckedCADir(&stderr, "ca")
	noteUncheckedKey(logger, "node.key")
	warnSocketWithoutMode(logger, "run/front.sock")

	if certs.PermissionBits != socketHasMode {
		t.Errorf("certs.PermissionBits %v but socketHasMode %v", certs.PermissionBits, socketHasMode)
	}
	if certs.PermissionBits {
		if got := keyMode(); got != "0600" {
			t.Errorf("keyMode() = %q, want 0600", got)
		}
		if stderr.Len() != 0 || logs.Len() != 0 {
			t.Errorf("notes where modes apply: stderr %q, log %q", stderr.String(), logs.String())
		}
		return
	}
	if got := keyMode(); strings.Contains(got, "0600") || !strings.Contains(got, "ACL") {
		t.Errorf("keyMode() = %q: want no mode, and what decides instead", got)
	}
	if got := stderr.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "restpipe ca: note: permissions are not checked") || !strings.Contains(got, " ca\n") {
		t.Errorf("CA directory note %q", got)
	}
	for _, want := range []string{"this node's private key is not checked", "file=node.key", "level=WARN msg=\"the front end's socket has no mode", "dir=run"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
