package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// usageError marks an error as a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// newFlagSet makes the flag set of one command. Its -h output has a
// one-line summary, the flags and an example.
func newFlagSet(env *cliEnv, name, summary, example string) *flag.FlagSet {
	fs := flag.NewFlagSet("restpipe "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "restpipe %s: %s\n\nFlags (each also from the environment as RESTPIPE_<FLAG>):\n", name, summary)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExample:\n  %s\n", example)
	}
	return fs
}

// parseFlags fills fs first from the environment (RESTPIPE_<FLAG>, with
// '-' as '_'), then from args, so that a flag on the command line wins.
// Stray positional arguments are a usage error.
func parseFlags(fs *flag.FlagSet, env *cliEnv, args []string) error {
	return parseFlagsWith(fs, env, args, nil)
}

// parseFlagsWith is parseFlags for a command that has a --config flag and
// other environment variables: it applies, lowest first, the config file
// (--config or RESTPIPE_CONFIG), then defaults (may be nil, for RestPipe's
// variables), then RESTPIPE_* variables, then args.
func parseFlagsWith(fs *flag.FlagSet, env *cliEnv, args []string, defaults func() error) error {
	if fs.Lookup("config") != nil {
		path := configPath(args, env.getenv("RESTPIPE_CONFIG"))
		if path != "" {
			if err := applyConfigFile(fs, path); err != nil {
				return err
			}
		}
	}
	if defaults != nil {
		if err := defaults(); err != nil {
			return err
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		key := "RESTPIPE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := env.getenv(key)
		if v == "" {
			return
		}
		values := []string{v}
		if _, repeatable := f.Value.(*stringList); repeatable {
			// RESTPIPE_ALLOW="c1=get_time ops-*=*": several values.
			values = strings.FieldsFunc(v, func(r rune) bool { return r == ';' || unicode.IsSpace(r) })
		}
		for _, one := range values {
			if err := fs.Set(f.Name, one); err != nil {
				envErr = usageError{fmt.Sprintf("%s=%q: %v", key, v, err)}
				return
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	// A mistake gets one line, not the whole usage: silence the flag
	// package's own printing, and print the usage for -h only.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
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

// stringList is a repeatable string flag.
type stringList []string

// Set appends one value, whole (a rule such as "c1=get_time,get_cat"
// holds commas). From the environment, values are separated by spaces or
// ';' (see parseFlagsWith).
func (s *stringList) Set(v string) error {
	if v = strings.TrimSpace(v); v != "" {
		*s = append(*s, v)
	}
	return nil
}

func (s *stringList) String() string { return strings.Join(*s, " ") }

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

// applyConfigFile sets flags from a JSON object whose keys are flag names:
//
//	{"listen": "0.0.0.0:7443", "max-body": 1048576,
//	 "forward": {"files": "http://127.0.0.1:9000"}}
//
// A list sets a repeatable flag once per element; an object sets it once
// per "key=value".
func applyConfigFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var settings map[string]any
	if err := dec.Decode(&settings); err != nil {
		return fmt.Errorf("config file %s: not a JSON object: %w", path, err)
	}
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "config" || fs.Lookup(name) == nil {
			return usageError{fmt.Sprintf("config file %s: unknown setting %q (settings are the flag names)", path, name)}
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

// byteSize is a size flag: bytes, or a number with KiB, MiB or GiB.
type byteSize uint64

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

// Set parses "262144", "256KiB", "4MiB" or "1GiB".
func (b *byteSize) Set(s string) error {
	num, unit := s, uint64(1)
	for suffix, mult := range map[string]uint64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			num, unit = n, mult
		}
	}
	v, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil {
		return fmt.Errorf("want bytes, or a number with KiB, MiB or GiB, like 4MiB")
	}
	*b = byteSize(v * unit)
	return nil
}
