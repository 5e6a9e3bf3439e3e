package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/restpipe/restpipe/certs"
)

// serverName is the server node's name; its certificate is valid for
// 127.0.0.1, where every node listens.
const serverName = "server"

// clientName is the name of the i-th client node.
func clientName(i int) string { return fmt.Sprintf("c%05d", i) }

// identityFiles are the certificate and key files of node name in dir,
// as certs.IssueToDir names them.
func identityFiles(dir, name string) (certFile, keyFile string) {
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
}

// caFile is the CA certificate in dir.
func caFile(dir string) string { return filepath.Join(dir, "ca.crt") }

// writePKI creates a CA in memory and writes, to dir, its certificate,
// a server identity and clients client identities (c00000, c00001, ...),
// issued on every core at once. The CA key is not written: nothing needs
// it after this.
func writePKI(dir string, clients int) error {
	ca, err := certs.NewCA("restpipe-bench CA", 0)
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	if err := os.WriteFile(caFile(dir), ca.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	issue := func(req certs.IssueRequest) error {
		id, err := ca.Issue(req)
		if err != nil {
			return fmt.Errorf("issue %s: %w", req.Name, err)
		}
		c, k := identityFiles(dir, req.Name)
		if err := certs.WriteIdentity(c, k, id); err != nil {
			return fmt.Errorf("write identity %s: %w", req.Name, err)
		}
		return nil
	}
	if err := issue(certs.IssueRequest{Name: serverName, Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
		return err
	}
	return parallel(clients, func(i int) error {
		return issue(certs.IssueRequest{Name: clientName(i)})
	})
}

// loadClientIdentities loads clients first .. first+n-1 from dir, on every
// core at once.
func loadClientIdentities(dir string, first, n int) ([]*certs.Identity, error) {
	ids := make([]*certs.Identity, n)
	err := parallel(n, func(i int) error {
		name := clientName(first + i)
		c, k := identityFiles(dir, name)
		id, err := certs.LoadIdentity(c, k, caFile(dir))
		if err != nil {
			return fmt.Errorf("load identity %s: %w", name, err)
		}
		ids[i] = id
		return nil
	})
	return ids, err
}

// parallel runs f(0) .. f(n-1) on GOMAXPROCS goroutines and returns the
// first error.
func parallel(n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		next  int
		first error
	)
	for range min(runtime.GOMAXPROCS(0), max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if stop || i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
