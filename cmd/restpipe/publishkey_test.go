package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadPublishKey checks where --publish-key comes from, and that the
// key never reaches the log.
func TestLoadPublishKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withNewline := write("key", "k3y-from-file\n")
	empty := write("empty", "\n")
	tests := []struct {
		name     string
		value    string
		file     string
		want     string
		wantErr  string
		usageErr bool
	}{
		{name: "neither", want: ""},
		{name: "value", value: "k3y-value", want: "k3y-value"},
		{name: "file, its newline dropped", file: withNewline, want: "k3y-from-file"},
		{name: "both", value: "a", file: withNewline, wantErr: "give one of them", usageErr: true},
		{name: "empty file", file: empty, wantErr: "empty", usageErr: true},
		{name: "missing file", file: filepath.Join(dir, "none"), wantErr: "--publish-key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			n := &nodeFlags{publishKey: tt.value, publishKeyFile: tt.file}
			key, err := n.loadPublishKey(slog.New(slog.NewTextHandler(&log, nil)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || isUsageError(err) != tt.usageErr {
					t.Fatalf("loadPublishKey = %q, %v; want an error mentioning %q (usage %v)", key, err, tt.wantErr, tt.usageErr)
				}
				return
			}
			if err != nil || string(key) != tt.want {
				t.Fatalf("loadPublishKey = %q, %v; want %q", key, err, tt.want)
			}
			if strings.Contains(log.String(), "k3y") {
				t.Fatalf("the log shows the key: %s", log.String())
			}
		})
	}
}
