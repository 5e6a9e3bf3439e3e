//go:build unix

package certs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckKeyFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		mode os.FileMode
		why  string // "": not exposed
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, "readable by group or others"},
		{0o604, "readable by group or others"},
		{0o620, "writable by group or others"},
		{0o601, "executable by group or others"}, // still not private
	}
	for _, tt := range tests {
		path := filepath.Join(dir, "node.key")
		if err := os.WriteFile(path, []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		e, exposed := CheckKeyFile(path)
		if exposed != (tt.why != "") || e.Why != tt.why {
			t.Errorf("mode %#o: %v %q, want exposed=%v %q", tt.mode, exposed, e.Why, tt.why != "", tt.why)
		}
		if exposed && (e.Path != path || e.Mode.Perm() != tt.mode || e.Fix != "chmod 600 "+path) {
			t.Errorf("mode %#o: %+v", tt.mode, e)
		}
	}
	if _, exposed := CheckKeyFile(filepath.Join(dir, "missing.key")); exposed {
		t.Error("a missing key is reported")
	}
}
