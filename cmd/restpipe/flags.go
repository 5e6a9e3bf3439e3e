package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/BurntSushi/toml"
)

// usageError marks an error as a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// newFlagSet makes the flag set of a command that takes its settings
// from the command line only (ca, identity, demo, version). Its -h output
// has a one-line summary, the flags and an example.
func newFlagSet(env *cliEnv, name, summary, example string) *flag.FlagSet {
	return makeFlagSet(env, name, summary, example, "Flags:")
}

// newNodeFlagSet makes the flag set of a node command (server, client),
// whose flags also come from a config file and the environment (see
// parseFlagsWith).
func newNodeFlagSet(env *cliEnv, name, summary, example string) *flag.FlagSet {
	return makeFlagSet(env, name, summary, example,
		"Flags (each also from --config and from the environment as RESTPIPE_<FLAG>; the command line wins over\nthe environment, the environment over the config file, and a repeatable flag's list is replaced, not merged):")
}

func makeFlagSet(env *cliEnv, name, summary, example, flagsTitle string) *flag.FlagSet {
	fs := flag.NewFlagSet("restpipe "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "restpipe %s: %s\n\n%s\n", name, summary, flagsTitle)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExample:\n  %s\n", example)
	}
	return fs
}

// envKey is the environment variable of a flag: RESTPIPE_<FLAG>, with '-'
// as '_'.
func envKey(flagName string) string {
	return "RESTPIPE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags fills fs from args only. The commands that use it (ca,
// identity, demo, version) never read RESTPIPE_* variables: one left set in
// a shell for a node (RESTPIPE_FORCE=1) must not replace a CA or an
// identity, nor add a host to a certificate. Such variables that name one
// of fs's flags are listed in a one-line note on stderr, so that nobody
// believes they applied. Stray positional arguments are a usage error.
func parseFlags(fs *flag.FlagSet, env *cliEnv, args []string) error {
	var ignored []string
	fs.VisitAll(func(f *flag.Flag) {
		if key := envKey(f.Name); env.getenv(key) != "" {
			ignored = append(ignored, key)
		}
	})
	if len(ignored) > 0 {
		fmt.Fprintf(env.stderr, "%s: note: ignoring %s: the environment sets flags of server and client only\n",
			fs.Name(), strings.Join(ignored, ", "))
	}
	return parseSources(fs, args)
}

// parseFlagsWith fills fs, the flags of a node command, from its sources,
// lowest first: the config file (--config or RESTPIPE_CONFIG), then
// defaults (may be nil; RestPipe's RP_* variables), then RESTPIPE_*
// variables (RESTPIPE_<FLAG>, with '-' as '_'), then args. A higher source
// wins: a plain flag takes its value, and a repeatable flag takes its
// whole list, so that the command line can narrow the rules of a config
// file rather than only add to them. Within one source a repeatable flag
// adds up.
func parseFlagsWith(fs *flag.FlagSet, env *cliEnv, args []string, defaults func() error) error {
	var sources []func() error
	if fs.Lookup("config") != nil {
		sources = append(sources, func() error {
			if path := configPath(args, env.getenv("RESTPIPE_CONFIG")); path != "" {
				return applyConfigFile(fs, path)
			}
			return nil
		})
	}
	if defaults != nil {
		sources = append(sources, defaults)
	}
	sources = append(sources, func() error { return applyEnv(fs, env) })
	return parseSources(fs, args, sources...)
}

// applyEnv sets fs's flags from RESTPIPE_<FLAG> variables. A repeatable
// flag takes several values separated by spaces or ';'
// (RESTPIPE_ALLOW="c1=get_time ops-*=*").
func applyEnv(fs *flag.FlagSet, env *cliEnv) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		key := envKey(f.Name)
		v := env.getenv(key)
		if v == "" {
			return
		}
		values := []string{v}
		if _, repeatable := f.Value.(listValue); repeatable {
			values = strings.FieldsFunc(v, func(r rune) bool { return r == ';' || unicode.IsSpace(r) })
		}
		for _, one := range values {
			if err := fs.Set(f.Name, one); err != nil {
				envErr = usageError{fmt.Sprintf("%s=%q: %v", key, v, err)}
				return
			}
		}
	})
	return envErr
}

// parseSources applies sources to fs in order, then args, with each
// repeatable flag's list replaced by the first value a higher source gives
// it (see sourceLists).
func parseSources(fs *flag.FlagSet, args []string, sources ...func() error) error {
	lists := newSourceLists(fs)
	for _, apply := range sources {
		lists.next()
		if err := apply(); err != nil {
			lists.restore()
			return err
		}
	}
	lists.next()
	// A mistake gets one line, not the whole usage: silence the flag
	// package's own printing, and print the usage for -h only.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	lists.restore()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.Usage()
			return err
		}
		return usageError{err.Error() + " (see -h)"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// listValue is a repeatable flag: each Set adds a value, and resetList
// empties the list. Every repeatable flag's Value must be one (stringList
// is), or the source rule of parseFlagsWith passes it by;
// TestRepeatableFlagsAreLists holds the node flags to that.
type listValue interface {
	flag.Value
	resetList()
}

// sourceLists makes each repeatable flag of a flag set hold the values of
// one source only: while the sources are applied, each list flag's Value
// is wrapped so that the first Set from a new source empties the list
// before adding to it.
type sourceLists struct {
	source  int // the source being applied; 0 is the flag's default
	wrapped map[*flag.Flag]flag.Value
}

func newSourceLists(fs *flag.FlagSet) *sourceLists {
	s := &sourceLists{wrapped: map[*flag.Flag]flag.Value{}}
	fs.VisitAll(func(f *flag.Flag) {
		if l, ok := f.Value.(listValue); ok {
			s.wrapped[f] = f.Value
			f.Value = &sourcedList{list: l, lists: s}
		}
	})
	return s
}

// next moves on to the next, higher source.
func (s *sourceLists) next() { s.source++ }

// restore puts the flags' own Values back.
func (s *sourceLists) restore() {
	for f, v := range s.wrapped {
		f.Value = v
	}
}

// sourcedList is a list flag's Value while the sources are applied.
type sourcedList struct {
	list  listValue
	owner int // the source whose values the list holds
	lists *sourceLists
}

// Set replaces the list of a lower source, or adds to the list of this
// one. An empty value is ignored and replaces nothing: --allow "$RULES"
// with RULES unset must not lift a config file's rules.
func (l *sourcedList) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	if l.owner != l.lists.source {
		l.list.resetList()
		l.owner = l.lists.source
	}
	return l.list.Set(v)
}

func (l *sourcedList) String() string {
	if l == nil || l.list == nil {
		return ""
	}
	return l.list.String()
}

func (l *sourcedList) resetList() { l.list.resetList() }

// stringList is a repeatable string flag (a listValue).
type stringList []string

// Set appends one value, whole (a rule such as "c1=get_time,get_cat"
// holds commas); an empty value adds nothing. From the environment,
// values are separated by spaces or ';' (see applyEnv).
func (s *stringList) Set(v string) error {
	if v = strings.TrimSpace(v); v != "" {
		*s = append(*s, v)
	}
	return nil
}

func (s *stringList) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(*s, " ")
}

func (s *stringList) resetList() { *s = nil }

// configPath finds --config in args before they are parsed, since the
// file must apply below everything else.
func configPath(args []string, fromEnv string) string {
	path := fromEnv
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasValue {
			path = value
		} else if i+1 < len(args) {
			path = args[i+1]
			i++
		}
	}
	return path
}

// applyConfigFile sets flags from a config file whose keys are flag
// names: TOML when its name ends in .toml (comments allowed), JSON
// otherwise:
//
//	{"listen": "0.0.0.0:7443", "max-body": 1048576,
//	 "forward": {"files": "http://127.0.0.1:9000"}}
//
//	listen = "0.0.0.0:7443"  # the tunnel
//	max-body = "1MiB"
//	[forward]
//	files = "http://127.0.0.1:9000"
//
// A list sets a repeatable flag once per element; an object (a TOML
// table) sets it once per "key=value".
func applyConfigFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	settings, err := parseConfig(path, data)
	if err != nil {
		return err
	}
	return applySettings(fs, path, data, settings)
}

// isTOML reports whether the config file at path is read as TOML.
func isTOML(path string) bool { return strings.EqualFold(filepath.Ext(path), ".toml") }

// parseConfig parses a config file's content into its settings.
func parseConfig(path string, data []byte) (map[string]any, error) {
	var settings map[string]any
	if isTOML(path) {
		if _, err := toml.Decode(string(data), &settings); err != nil {
			return nil, usageError{fmt.Sprintf("config file %s: not valid TOML: %v", path, err)}
		}
		return settings, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&settings); err != nil {
		return nil, fmt.Errorf("config file %s: not a JSON object: %w", path, err)
	}
	return settings, nil
}

// keyLine is the line of the config file data on which the setting name
// is first given, 0 if it cannot be told.
func keyLine(data []byte, name string) int {
	for i, line := range strings.Split(string(data), "\n") {
		for _, form := range []string{name, `"` + name + `"`, "[" + name + "]"} {
			rest, ok := strings.CutPrefix(strings.TrimLeft(line, " \t{,"), form)
			if ok && (rest == "" || strings.ContainsAny(rest[:1], " \t=:]\r")) {
				return i + 1
			}
		}
	}
	return 0
}

// applySettings sets fs's flags from a config file's parsed settings.
func applySettings(fs *flag.FlagSet, path string, data []byte, settings map[string]any) error {
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "config" || fs.Lookup(name) == nil {
			at := ""
			if line := keyLine(data, name); line > 0 {
				at = fmt.Sprintf(", line %d", line)
			}
			return usageError{fmt.Sprintf("config file %s: unknown setting %q%s (settings are the flag names)", path, name, at)}
		}
		var values []string
		switch v := settings[name].(type) {
		case []any:
			for _, e := range v {
				values = append(values, fmt.Sprint(e))
			}
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				values = append(values, k+"="+fmt.Sprint(v[k]))
			}
		case nil:
			continue
		default:
			values = []string{fmt.Sprint(v)}
		}
		for _, val := range values {
			if err := fs.Set(name, val); err != nil {
				return usageError{fmt.Sprintf("config file %s: %s %q: %v", path, name, val, err)}
			}
		}
	}
	return nil
}

// byteSize is a size flag, and the one parser of every size a node
// takes (flag, RESTPIPE_* variable or config-file key): bytes, or a
// number with one of sizeUnits.
type byteSize uint64

// sizeUnits are the units of a size, any case, with or without a space
// (or tab) before them: 1024-based (KiB) and 1000-based (KB), and B for bytes.
var sizeUnits = []struct {
	name string
	mult uint64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

func (b *byteSize) String() string {
	switch v := uint64(*b); {
	case v != 0 && v%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", v>>20)
	case v != 0 && v%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", v>>10)
	default:
		return fmt.Sprint(v)
	}
}

// errSize says what a size may be.
var errSize = errors.New("want a size: bytes (1048576), or a number with KiB, MiB, GiB (1024-based) or KB, MB, GB (1000-based), like 4MiB")

// Set parses "262144", "256KiB", "4MiB", "1GiB", "500KB", "1 MB" or "64B".
func (b *byteSize) Set(s string) error {
	num, mult := strings.Trim(s, " \t"), uint64(1)
	for _, u := range sizeUnits {
		if n := len(num) - len(u.name); n > 0 && strings.EqualFold(num[n:], u.name) {
			num, mult = strings.TrimRight(num[:n], " \t"), u.mult
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return errSize
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v > math.MaxUint64/mult {
		return fmt.Errorf("%q is too large", s)
	}
	*b = byteSize(v * mult)
	return nil
}
