//go:build !unix

package main

import "os/exec"

// ownProcessGroup does nothing here: without Unix process groups a node
// is killed alone (it starts no process of its own), and a Ctrl-C in the
// console reaches the nodes too, which then exit as on SIGTERM.
func ownProcessGroup(*exec.Cmd) {}

// killGroup kills cmd's process.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
