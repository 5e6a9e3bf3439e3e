package main

import (
	"context"
	"errors"
)

// Placeholders until the node commands land.
func runServer(context.Context, *cliEnv, []string) error { return errors.New("not built yet") }
func runClient(context.Context, *cliEnv, []string) error { return errors.New("not built yet") }
func runDemo(context.Context, *cliEnv, []string) error   { return errors.New("not built yet") }
func protocolVersion() int                               { return 1 }
