package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a node: the bench starts nodes
// by running its own executable, which under "go test" is this binary.
func TestMain(m *testing.M) {
	if os.Getenv(nodeEnv) == "1" && len(os.Args) > 1 && os.Args[1] == "node" {
		os.Exit(nodeMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestTinyRun runs every measurement at a tiny size, as a user would run
// the command, and checks that the table has every row, with a figure
// in each, and that -out got the same table.
func TestTinyRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "table.md")
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-clients", "10", "-event-clients", "10", "-stream-size", "4MiB",
		"-duration", "200ms", "-subscribers", "20", "-messages", "50", "-burst", "20", "-slow-streams", "5", "-slow-for", "1s", "-out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	table := stdout.String()
	for _, want := range []string{
		"- machine: ", " cores, ", "- command: `restpipe-bench -clients 10 -event-clients 10 -stream-size 4MiB -duration 200ms -subscribers 20 -messages 50 -burst 20 -slow-streams 5 -slow-for 1s -out ",
		"| measurement | restpipe | baseline | ratio | target | met |",
		"| c=1 requests/s | ", "| c=1 latency p50 | ", "| c=1 latency p99 | ",
		"| c=64 requests/s | ", "| c=64 latency p50 | ", "| c=64 latency p99 | ",
		"| direct ", "| proxy hop ", "| raw TLS 1.3 ",
		"| throughput, MB/s each way | ", "| server node peak RSS | ", "| client node peak RSS | ",
		"3. scale: 10 idle clients on one server",
		"| server RSS per idle client | ", "| server goroutines per idle client | ",
		"| time to connect them all | ", "| all back after a server restart | ",
		"4. server calling 10 clients in turn, 64 workers", "| events/s | ", "| latency p50 / p99 | ",
		"5. channels: 50 messages published on a client node, fanned out to 20 WebSocket subscribers over 4 nodes",
		"| messages/s | ", "| deliveries/s | ", "| one plain net/http server ",
		"6. burst: 20 small events in flight", "| events answered 200 with their body | 20 of 20 | ",
		"| server node: heap in use + stacks per event in flight (after GC) | ", "| client node: RSS per event in flight (after GC) | ",
		"| server node: heap + stacks back within 2x of idle after the release (RSS) | ",
		"| client node: left per event of the burst at the end, heap + stacks (RSS) | ",
		"7. slow readers: 5 callers reading a big reply at 10 KB/s, after 1s",
		"| server node heap and stacks per stream | ", "| client node RSS per stream | ", "| plain net/http ",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	// Every row with a target says whether it is met, unless this OS
	// does not give the figure; Linux gives every figure.
	for _, line := range strings.Split(table, "\n") {
		if strings.Contains(line, "| <= ") || strings.Contains(line, "| >= ") || strings.Contains(line, "| < ") {
			unmeasured := strings.Contains(line, " | n/a | ") && strings.HasSuffix(line, "| n/a |")
			if !strings.HasSuffix(line, "| yes |") && !strings.HasSuffix(line, "| NO |") && !unmeasured {
				t.Errorf("target row without a verdict: %s", line)
			}
		}
	}
	if runtime.GOOS == "linux" && strings.Contains(table, "n/a") {
		t.Errorf("a figure not measured on Linux:\n%s", table)
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != table {
		t.Errorf("-out file differs from stdout (err %v)", err)
	}
}

// TestBadFlags: a bad command line is one line on stderr and exit 2.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"}, {"-clients", "0"}, {"-stream-size", "12X"}, {"-duration", "1ns"},
		{"-only", "everything"}, {"stray"}, {"-reconnect-max", "1ms"}, {"-burst", "0"}, {"-burst", "70000"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if lines := strings.Count(stderr.String(), "\n"); lines != 1 || stdout.Len() != 0 {
			t.Errorf("%q: want one line on stderr and nothing on stdout, got %q / %q", args, stderr.String(), stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "child process") {
		t.Errorf("-h: exit %d, help %q", code, stdout.String())
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "4MiB": 4 << 20, "1GiB": 1 << 30, "64M": 64 << 20, "512KiB": 512 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5GiB", "GiB", "1TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := percentile(d, 50); got != 5 {
		t.Errorf("p50 = %d, want 5", got)
	}
	if got := percentile(d, 99); got != 10 {
		t.Errorf("p99 = %d, want 10", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %d", got)
	}
}

// TestUnmeasuredRow: a figure this OS does not give is "n/a" in the
// table, with no ratio and no verdict on its target, never a 0 that
// meets or misses it.
func TestUnmeasuredRow(t *testing.T) {
	r := unmeasured(row{Section: "s", Name: "server RSS per idle client", Value: -1, Unit: "KiB", Shown: "-1.0 KiB",
		Base: 3, Ratio: 2, Target: "<= 40 KiB", Met: "yes"}, "raw TLS echo process n/a")
	table := renderTable(report{Rows: []row{r, unmeasured(row{Section: "s", Name: "CPU seconds per GiB, all processes", Unit: "s"}, "")}})
	for _, want := range []string{
		"| server RSS per idle client | n/a | raw TLS echo process n/a | — | <= 40 KiB | n/a |\n",
		"| CPU seconds per GiB, all processes | n/a | — | — | — | — |\n",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if !r.NotMeasured || r.Value != 0 || r.Base != 0 || r.Ratio != 0 {
		t.Errorf("unmeasured row %+v", r)
	}
	if !measured[int64](1, 0) || measured[int64](1, notMeasured) || measured(2.5, notMeasured) {
		t.Error("measured does not tell notMeasured apart")
	}
	if got := kib(notMeasured); got != "n/a" {
		t.Errorf("kib(notMeasured) = %q", got)
	}
}
