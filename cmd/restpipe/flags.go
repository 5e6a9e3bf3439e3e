package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
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
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		key := "RESTPIPE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env.getenv(key); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = usageError{fmt.Sprintf("%s=%q: %v", key, v, err)}
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

// Set appends one value; from the environment, a comma-separated list.
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}
