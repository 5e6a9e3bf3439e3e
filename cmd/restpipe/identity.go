package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/restpipe/restpipe/certs"
)

func runIdentity(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "identity", []subcommand{
		{"set", "install a node identity (cert, key, CA) into the identity directory", runIdentitySet},
		{"show", "print the identity installed in the identity directory", runIdentityShow},
	}, args)
}

func runIdentitySet(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "identity set", "check a node identity and install it as DIR/node.crt, DIR/node.key and DIR/ca.crt",
		"restpipe identity set --cert c1.crt --key c1.key --ca ca.crt")
	certFile := fs.String("cert", "", "the node's certificate `file` (PEM)")
	keyFile := fs.String("key", "", "the node's private key `file` (PEM)")
	caFile := fs.String("ca", "", "the CA certificate `file` (PEM)")
	dir := fs.String("identity-dir", certs.DefaultIdentityDir(), "the identity `directory` (created 0700 if missing)")
	force := fs.Bool("force", false, "replace an identity already installed")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if err := required([2]string{"cert", *certFile}, [2]string{"key", *keyFile}, [2]string{"ca", *caFile}, [2]string{"identity-dir", *dir}); err != nil {
		return err
	}
	id, err := certs.LoadIdentity(*certFile, *keyFile, *caFile)
	if err != nil {
		return err
	}
	if err := certs.InstallIdentity(*dir, *certFile, *keyFile, *caFile, *force); err != nil {
		return err
	}
	if err := id.Check(time.Now()); err != nil {
		fmt.Fprintf(env.stderr, "restpipe identity: warning: %v\n", err)
	}
	certPath, keyPath, caPath := certs.IdentityFiles(*dir)
	fmt.Fprintf(env.stdout, "installed identity %q (%s auth, valid until %s) into %s\n", id.Name(), id.Usage(), date(id.Leaf.NotAfter), *dir)
	fmt.Fprintf(env.stdout, "  certificate: %s\n  key:         %s (%s)\n  CA:          %s\n", certPath, keyPath, keyMode(), caPath)
	return nil
}

func runIdentityShow(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "identity show", "print the name, usage and validity of the identity in the identity directory",
		"restpipe identity show --identity-dir /var/lib/restpipe")
	dir := fs.String("identity-dir", certs.DefaultIdentityDir(), "the identity `directory`")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	id, err := certs.LoadIdentityDir(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "name:   %s\n", id.Name())
	fmt.Fprintf(env.stdout, "usage:  %s\n", id.Usage())
	hosts := append([]string(nil), id.Leaf.DNSNames...)
	for _, ip := range id.Leaf.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	if len(hosts) > 0 {
		fmt.Fprintf(env.stdout, "hosts:  %s\n", strings.Join(hosts, ", "))
	}
	fmt.Fprintf(env.stdout, "valid:  %s to %s\n", date(id.Leaf.NotBefore), date(id.Leaf.NotAfter))
	fmt.Fprintf(env.stdout, "CA:     %s (valid until %s)\n", id.CA.Subject.CommonName, date(id.CA.NotAfter))
	if err := id.Check(time.Now()); err != nil {
		fmt.Fprintf(env.stderr, "restpipe identity: warning: %v\n", err)
	}
	return nil
}
