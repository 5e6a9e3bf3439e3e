package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/restpipe/restpipe/certs"
)

// subcommand is one "restpipe <command> <name>", such as "ca init".
type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// runSubcommand dispatches "restpipe <parent> <sub> [flags]" to one of subs.
func runSubcommand(ctx context.Context, env *cliEnv, parent string, subs []subcommand, args []string) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	list := strings.Join(names, ", ")
	if len(args) == 0 {
		return usageError{fmt.Sprintf("want a subcommand: %s (run \"restpipe %s -h\")", list, parent)}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(env.stdout, "Usage: restpipe %s <subcommand> [flags]\n\n", parent)
		for _, s := range subs {
			fmt.Fprintf(env.stdout, "  %-10s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(env.stdout, "\nRun \"restpipe %s <subcommand> -h\" for its flags.\n", parent)
		return flag.ErrHelp
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, env, args[1:])
		}
	}
	return usageError{fmt.Sprintf("unknown subcommand %q: want %s", args[0], list)}
}

// required reports the first of the named flags left empty.
func required(flags ...[2]string) error {
	for _, f := range flags {
		if f[1] == "" {
			return usageError{fmt.Sprintf("--%s is required", f[0])}
		}
	}
	return nil
}

// maxDays bounds --days: 100 years, far inside what a time.Duration
// (about 292 years) and an x509 date (up to the year 9999) can hold, so
// that the multiplication below cannot wrap around.
const maxDays = 36500

// days turns a --days value into a validity.
func days(n int) (time.Duration, error) {
	if n <= 0 || n > maxDays {
		return 0, usageError{fmt.Sprintf("--days %d: want 1 to %d (100 years)", n, maxDays)}
	}
	return time.Duration(n) * 24 * time.Hour, nil
}

// asUsageError makes a rejected request (a bad name, host or usage) a
// command-line mistake.
func asUsageError(err error) error {
	if errors.Is(err, certs.ErrInvalidRequest) {
		return usageError{err.Error()}
	}
	return err
}

func date(t time.Time) string { return t.UTC().Format("2006-01-02") }

// warnExposed prints one line on stderr for each part of the CA in dir
// that users other than its owner can reach (see certs.CheckCADir): the
// command works, but the CA key may not be private any more. Where
// there are no permission bits to check, it says so.
func warnExposed(env *cliEnv, dir string) {
	noteUncheckedCADir(env.stderr, dir)
	for _, e := range certs.CheckCADir(dir) {
		fmt.Fprintf(env.stderr, "restpipe ca: warning: %s\n", e)
	}
}

func runCA(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "ca", []subcommand{
		{"init", "create a CA: DIR/ca.crt and DIR/ca.key", runCAInit},
		{"issue", "issue a node identity: DIR/NAME.crt and DIR/NAME.key", runCAIssue},
		{"install", "add the CA certificate to the system trust store", runCAInstall},
		{"uninstall", "remove the CA certificate from the system trust store", runCAUninstall},
		{"revoke", "revoke an identity: add its serial number to DIR/revoked.txt", runCARevoke},
	}, args)
}

func runCAInit(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "ca init", "create a CA: DIR/ca.crt (for every node) and DIR/ca.key (stays in DIR)",
		"restpipe ca init --dir ./ca")
	dir := fs.String("dir", "", "the CA `directory` (created 0700 if missing)")
	name := fs.String("name", "restpipe CA", "the CA's Common Name")
	nDays := fs.Int("days", 3650, "how many days the CA is valid")
	force := fs.Bool("force", false, "replace an existing CA (every identity it issued stops working)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := required([2]string{"dir", *dir}); err != nil {
		return err
	}
	validity, err := days(*nDays)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(*dir)
	ca, err := certs.InitCA(*dir, *name, validity, *force)
	if err != nil {
		return asUsageError(err)
	}
	if statErr == nil { // a directory made by someone else, with their modes
		warnExposed(env, *dir)
	}
	fmt.Fprintf(env.stdout, "created CA %q, valid until %s\n", ca.Cert.Subject.CommonName, date(ca.Cert.NotAfter))
	fmt.Fprintf(env.stdout, "  certificate: %s (every node needs it)\n", filepath.Join(*dir, "ca.crt"))
	fmt.Fprintf(env.stdout, "  key:         %s (%s; keep it there)\n", filepath.Join(*dir, "ca.key"), keyMode())
	fmt.Fprintf(env.stdout, "next: restpipe ca issue --dir %s --name server --host HOST\n", *dir)
	return nil
}

func runCAIssue(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "ca issue", "issue a node identity signed by the CA: DIR/NAME.crt and DIR/NAME.key",
		"restpipe ca issue --dir ./ca --name server --host files.example.com --host 10.0.0.5")
	dir := fs.String("dir", "", "the CA `directory` (from \"restpipe ca init\")")
	name := fs.String("name", "", "the node's `name`, its certificate's Common Name (A-Z a-z 0-9 . _ -)")
	var hosts stringList
	fs.Var(&hosts, "host", "a `host` name or IP address the node serves as (repeatable; a server needs one)")
	usage := fs.String("usage", "", "what the certificate is for: server, client or both (default: server with --host, else client)")
	nDays := fs.Int("days", 365, "how many days the certificate is valid (never past the CA's end)")
	force := fs.Bool("force", false, "replace an existing NAME.crt and NAME.key, revoking the old certificate in DIR/revoked.txt")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := required([2]string{"dir", *dir}, [2]string{"name", *name}); err != nil {
		return err
	}
	validity, err := days(*nDays)
	if err != nil {
		return err
	}
	u, err := certs.ParseUsage(*usage)
	if err != nil {
		return asUsageError(err)
	}
	req := certs.IssueRequest{Name: *name, Hosts: hosts, Usage: u, Validity: validity}
	// A bad request is a usage error even when the CA is missing too.
	if err := req.Validate(); err != nil {
		return asUsageError(err)
	}
	ca, err := certs.OpenCA(*dir)
	if err != nil {
		return err
	}
	var certPath, keyPath string
	var revoked *x509.Certificate
	if *force {
		certPath, keyPath, revoked, err = ca.ReissueToDir(*dir, req)
	} else {
		certPath, keyPath, err = ca.IssueToDir(*dir, req, false)
	}
	if err != nil {
		return asUsageError(err)
	}
	caPath := filepath.Join(*dir, "ca.crt")
	id, err := certs.LoadIdentity(certPath, keyPath, caPath)
	if err != nil {
		return fmt.Errorf("check the new identity: %w", err)
	}
	warnExposed(env, *dir)
	what := fmt.Sprintf("issued %q for %s auth", id.Name(), id.Usage())
	if len(hosts) > 0 {
		what += " as " + strings.Join(hosts, ", ")
	}
	fmt.Fprintf(env.stdout, "%s, valid until %s\n", what, date(id.Leaf.NotAfter))
	fmt.Fprintf(env.stdout, "  certificate: %s\n", certPath)
	fmt.Fprintf(env.stdout, "  key:         %s (%s)\n", keyPath, keyMode())
	fmt.Fprintf(env.stdout, "  CA:          %s\n", caPath)
	if revoked != nil {
		list := filepath.Join(*dir, certs.RevokedFile)
		fmt.Fprintf(env.stdout, "revoked the certificate it replaces: %q serial %s, in %s\n",
			revoked.Subject.CommonName, revoked.SerialNumber.Text(16), list)
		fmt.Fprintf(env.stdout, "  nodes given --revoked %s refuse it within a second and drop its sessions\n", list)
	}
	return nil
}

func runCAInstall(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "ca install", "add the CA certificate DIR/ca.crt to the system trust store (runs sudo when not root)",
		"restpipe ca install --dir ./ca")
	dir := fs.String("dir", "", "the `directory` holding ca.crt (a CA or an identity directory)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := required([2]string{"dir", *dir}); err != nil {
		return err
	}
	if err := certs.InstallCA(*dir, certs.SystemTrustStore()); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "installed %s into the system trust store\n", filepath.Join(*dir, "ca.crt"))
	return nil
}

func runCAUninstall(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "ca uninstall", "remove the CA certificate DIR/ca.crt from the system trust store (runs sudo when not root)",
		"restpipe ca uninstall --dir ./ca")
	dir := fs.String("dir", "", "the `directory` holding ca.crt (a CA or an identity directory)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := required([2]string{"dir", *dir}); err != nil {
		return err
	}
	if err := certs.UninstallCA(*dir, certs.SystemTrustStore()); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "removed %s from the system trust store\n", filepath.Join(*dir, "ca.crt"))
	return nil
}

func runCARevoke(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "ca revoke", "revoke a node identity: add its certificate's serial number to DIR/revoked.txt, which nodes given --revoked refuse (they notice a change within a second; SIGHUP reloads at once)",
		"restpipe ca revoke --dir ./ca --name c1")
	dir := fs.String("dir", "", "the CA `directory`")
	name := fs.String("name", "", "the `name` of the identity to revoke (DIR/NAME.crt)")
	certFile := fs.String("cert", "", "revoke this certificate `file` instead of DIR/NAME.crt")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := required([2]string{"dir", *dir}); err != nil {
		return err
	}
	list := filepath.Join(*dir, certs.RevokedFile)
	var leaf *x509.Certificate
	var err error
	switch {
	case *name != "" && *certFile != "":
		return usageError{"give --name or --cert, not both"}
	case *name != "":
		leaf, err = certs.RevokeName(*dir, *name)
	case *certFile != "":
		leaf, err = certs.Revoke(list, *certFile)
	default:
		return usageError{"--name or --cert is required"}
	}
	if err != nil {
		return asUsageError(err)
	}
	warnExposed(env, *dir)
	fmt.Fprintf(env.stdout, "revoked %q (serial %s) in %s\n", leaf.Subject.CommonName, leaf.SerialNumber.Text(16), list)
	fmt.Fprintf(env.stdout, "next: nodes given --revoked %s refuse it within a second and drop its sessions (start them with it, or SIGHUP them to reload at once)\n", list)
	return nil
}
