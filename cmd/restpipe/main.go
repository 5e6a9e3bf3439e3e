// Command restpipe runs a restpipe node (server or client), the bundled CA
// and a self-contained demo. Run "restpipe help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one "restpipe <name>" subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is what a command may touch of the outside world, so that tests
// can run commands in-process.
type cliEnv struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// reload delivers SIGHUP: reload what can be reloaded. May be nil.
	reload <-chan os.Signal
}

func commands() []command {
	return []command{
		{"server", "run the central node that clients connect to", runServer},
		{"client", "run a node that keeps a tunnel to the server", runClient},
		{"ca", "the bundled CA: init, issue, install, uninstall", runCA},
		{"identity", "install a node identity into the identity directory", runIdentity},
		{"demo", "a server and a client on loopback with a temporary CA", runDemo},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	env := &cliEnv{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, reload: hup}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run executes one command line and returns the process exit code: 0 on
// success, 1 when the command failed, 2 for a usage error.
func run(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case isUsageError(err):
			fmt.Fprintf(env.stderr, "restpipe %s: %s\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(env.stderr, "restpipe %s: %s\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.stderr, "restpipe: unknown command %q (run \"restpipe help\")\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "restpipe: a mutually-authenticated bidirectional REST tunnel")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: restpipe <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "restpipe <command> -h" for a command's flags.`)
}

func runVersion(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "version", "print the version", "restpipe version")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "restpipe %s (protocol %d)\n", version, protocolVersion())
	return nil
}
