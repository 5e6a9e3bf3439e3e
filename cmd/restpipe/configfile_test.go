package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// parseConfigFile parses "restpipe server --config FILE" with content
// written to FILE (named name), and nothing else set.
func parseConfigFile(t *testing.T, name, content string) (*serverFlags, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &cliEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	return parseServerFlags(env, []string{"--config", path})
}

// TestConfigTOML: a .toml config file sets the same flags as its JSON
// twin, comments allowed, and a bad one is one line naming the key.
func TestConfigTOML(t *testing.T) {
	const tomlConfig = `# restpipe server
listen = "127.0.0.1:7443"   # the tunnel
max-body = "1MiB"
max-streams = 64
allow = ["c1=get_time", "ops-*=*"]

[forward]
files = "http://127.0.0.1:9000"
`
	const jsonConfig = `{"listen": "127.0.0.1:7443", "max-body": "1MiB", "max-streams": 64,
 "allow": ["c1=get_time", "ops-*=*"], "forward": {"files": "http://127.0.0.1:9000"}}`
	for _, tc := range []struct{ name, content string }{{"node.toml", tomlConfig}, {"node.json", jsonConfig}, {"NODE.TOML", tomlConfig}} {
		f, err := parseConfigFile(t, tc.name, tc.content)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if f.listen != "127.0.0.1:7443" || f.maxBody != 1<<20 || f.maxStreams != 64 ||
			!slices.Equal(f.allow, []string{"c1=get_time", "ops-*=*"}) || !slices.Equal(f.forward, []string{"files=http://127.0.0.1:9000"}) {
			t.Errorf("%s: listen %q max-body %d max-streams %d allow %q forward %q", tc.name, f.listen, f.maxBody, f.maxStreams, f.allow, f.forward)
		}
	}

	for _, tc := range []struct{ name, content, want string }{
		{"node.toml", "listen = \"127.0.0.1:1\"\n# note\nlisten-addr = \"x\"\n", `unknown setting "listen-addr", line 3`},
		{"node.toml", "max-streams = \"many\"\n", `max-streams "many": parse error`},
		{"node.toml", "max-body = true\n", `max-body "true": want a size`},
		{"node.toml", "listen = \n", "not valid TOML"},
		{"node.toml", "config = \"other.toml\"\n", `unknown setting "config", line 1`},
		{"node.json", "{\n \"listen\": \"127.0.0.1:1\",\n \"bogus\": 1}", `unknown setting "bogus", line 3`},
	} {
		_, err := parseConfigFile(t, tc.name, tc.content)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %q: %v, want one line with %q", tc.name, tc.content, err, tc.want)
		}
	}
}

// FuzzConfigFile: no config file content, TOML or JSON, panics the parser
// or the flags it sets.
func FuzzConfigFile(f *testing.F) {
	f.Add(true, "listen = \"127.0.0.1:7443\"\nmax-body = \"1MiB\"\n[forward]\nfiles = \"http://127.0.0.1:9000\"\n")
	f.Add(true, "allow = [\"a=*\", 1, 2.5, true, 1979-05-27T07:32:00Z]\n[[forward]]\nx = 1\n")
	f.Add(true, "[forward.a.b]\nc = {d = [1, {e = 2}]}\n")
	f.Add(false, `{"listen": "x", "forward": {"a": {"b": [1, null]}}, "allow": [null, {}]}`)
	f.Add(false, `[1, 2]`)
	f.Fuzz(func(t *testing.T, asTOML bool, content string) {
		name := "node.json"
		if asTOML {
			name = "node.toml"
		}
		settings, err := parseConfig(name, []byte(content))
		if err != nil {
			return
		}
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := &serverFlags{}
		fs.StringVar(&f.listen, "listen", "", "")
		f.register(fs, "127.0.0.1:8080")
		_ = applySettings(fs, name, []byte(content), settings)
		_ = keyLine([]byte(content), "listen")
	})
}
