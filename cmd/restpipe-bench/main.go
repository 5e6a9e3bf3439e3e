// Command restpipe-bench measures restpipe against the physical limit,
// side by side: it starts real nodes on loopback, measures the tunnel and
// a baseline for each figure in the same run, and prints one markdown
// table with the ratios and the targets of issue 5.
//
// Every node runs in its own child process (this binary again, started as
// "restpipe-bench node -role ..."), so that the memory (VmRSS, VmHWM) and
// goroutines of each node are its own. The bench process generates the
// load and the identities. Run "restpipe-bench -h" for what is measured.
//
// It builds and runs on every OS restpipe supports; a figure the OS does
// not give it is "n/a" in the table (memory_*.go, cpu_*.go): Linux gives
// all, macOS and FreeBSD the peak RSS but not the current RSS, Windows
// the CPU time but neither RSS.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usageText = `restpipe-bench: measure restpipe against the physical limit, side by side.

Usage: restpipe-bench [flags]

It starts real nodes on 127.0.0.1, each in its own child process (this
binary again, as "restpipe-bench node -role ..."; the nodes die with the
bench, however it ends). The bench process itself makes the CA and the
identities (in a temporary directory, removed at the end), generates the
load, and is the raw TLS sender. It prints one markdown table: each
restpipe figure, its baseline measured in the same run, the ratio, and the
target it is held to.

  1. round trip of a small event: GET /server/time on a client node's front
     end -> tunnel -> server's get_time -> back, at concurrency 1 and 64
     (requests/s, p50, p99), kept-alive connections, warm-up first.
     Baselines, called by the same load generator: "direct", the same
     get_time handler on a plain net/http server (child process), and
     "proxy hop", that server behind one plain httputil.ReverseProxy
     without TLS (another child process; 256 idle connections kept).
  2. streaming: -stream-size bytes POSTed through post_echo on the server
     and back (client node -> server node -> client node), while they are
     read back and checked: MB/s each way, the CPU seconds every process
     (this one included) spent per GiB, and the peak RSS (VmHWM) of the
     server and client node processes. Baseline: the same bytes echoed
     over one mutually authenticated TLS 1.3 loopback connection to a
     child echo process.
  3. scale: -clients idle clients (tunnel.Client instances, at most
     -clients-per-process per child process; ReconnectMax 2 s, see
     -reconnect-max) on one server process: its RSS and goroutines per
     client, the time to connect them all; then the server process is
     killed, a new one started on the same port, and the time until all
     are back is measured.
     Where the OS gives no figure (current RSS: only Linux; peak RSS:
     Linux, macOS, FreeBSD) the table says "n/a", and no verdict.
  4. event rate: the server calling -event-clients clients in turn
     (GET /client/<name>/time on its front end), 64 workers: events/s.
  5. channels: -messages messages POSTed on a client node's /channels/,
     fanned out to -subscribers WebSocket subscribers spread over the
     server and 3 client nodes (each checks it gets every message once, in
     order; the publisher stays at most 32 messages ahead of the slowest):
     messages/s and deliveries/s. Baseline: the same subscribers and
     publisher on one plain net/http server with the same channels handler
     over a local hub (no tunnel).
  6. burst: -burst small events in flight at once: as many callers POST a
     small body to /server/hold on a client node's front end, each on a
     connection of its own; the server holds every event until it is told
     to release them. The memory each node holds per event in flight
     (heap in use + goroutine stacks, and RSS, after a collection, less
     idle), and how long after the release each node's heap and RSS take
     to come back within 2x of idle. Both nodes run with -max-streams and
     -accept-backlog at the burst's size.
  7. slow readers: -slow-streams callers each GET a big reply (a bench
     handler on the server streaming 1 GiB) through a client node's front
     end and read it at 10 KB/s for -slow-for: the memory each stream costs
     each node (heap and goroutine stacks after a collection, and RSS,
     against the idle pair), held to one stream window plus 64 KiB.

Flags:
`

// options are the settings of a run.
type options struct {
	quick        bool
	clients      int
	eventClients int
	perProcess   int
	streamSize   int64
	duration     time.Duration
	reconnectMax time.Duration
	subscribers  int
	messages     int
	burst        int
	slowStreams  int
	slowFor      time.Duration
	sections     map[string]bool
	out          string
	json         bool
	verbose      bool
}

// warmup is how long each load cell warms up before it is measured.
func (o options) warmup() time.Duration {
	return min(max(o.duration/5, 50*time.Millisecond), time.Second)
}

// sectionNames are the measurements, in the order they run.
var sectionNames = []string{"roundtrip", "stream", "scale", "events", "channels", "burst", "slow"}

// errUsage marks a bad command line (exit status 2).
var errUsage = errors.New("usage")

// sizeFlag is a byte count flag that takes KiB/MiB/GiB suffixes.
type sizeFlag struct{ n *int64 }

func (s sizeFlag) String() string {
	if s.n == nil {
		return ""
	}
	return fmtBytes(*s.n)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.n = n
	return nil
}

// parseFlags reads the command line; -h gives flag.ErrHelp.
func parseFlags(args []string, stdout io.Writer) (options, error) {
	o := options{
		clients:      2000,
		eventClients: 1000,
		perProcess:   5000,
		streamSize:   1 << 30,
		duration:     5 * time.Second,
		reconnectMax: 2 * time.Second,
		subscribers:  1000,
		messages:     2000,
		burst:        10000,
		slowStreams:  200,
		slowFor:      60 * time.Second,
	}
	fs := flag.NewFlagSet("restpipe-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.quick, "quick", false, "every measurement at a small size (200 clients, 100 event clients, 64 MiB, 1 s cells, a burst of 1000): under a minute on 2 cores; flags given too win")
	fs.IntVar(&o.clients, "clients", o.clients, "idle clients for the scale measurement")
	fs.IntVar(&o.eventClients, "event-clients", o.eventClients, "clients the server calls in turn for the event rate")
	fs.IntVar(&o.perProcess, "clients-per-process", o.perProcess, "at most this many tunnel clients in one child process")
	fs.Var(sizeFlag{&o.streamSize}, "stream-size", "bytes to echo through the tunnel and over raw TLS (KiB, MiB, GiB suffixes)")
	fs.DurationVar(&o.duration, "duration", o.duration, "how long each round-trip and event-rate cell is measured (after a warm-up of a fifth of it, 50 ms to 1 s)")
	fs.DurationVar(&o.reconnectMax, "reconnect-max", o.reconnectMax, "the bench clients' tunnel.Config ReconnectMax (ReconnectMin stays 500 ms)")
	fs.IntVar(&o.subscribers, "subscribers", o.subscribers, "WebSocket subscribers of the channel fan-out")
	fs.IntVar(&o.messages, "messages", o.messages, "messages published in the channel fan-out")
	fs.IntVar(&o.burst, "burst", o.burst, "small events in flight at once in the burst measurement (each on its own connection: the bench and the client node need as many open files)")
	fs.IntVar(&o.slowStreams, "slow-streams", o.slowStreams, "callers reading a big reply slowly (10 KB/s each)")
	fs.DurationVar(&o.slowFor, "slow-for", o.slowFor, "how long the slow callers read before their memory is measured")
	only := fs.String("only", strings.Join(sectionNames, ","), "measurements to run, comma-separated: "+strings.Join(sectionNames, ","))
	fs.StringVar(&o.out, "out", "", "also write the table to this file")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON on stdout instead of the table (-out still gets the table)")
	fs.BoolVar(&o.verbose, "v", false, "copy the nodes' stderr to stderr")
	// A bad flag is one line (run prints it); the help is for -h only.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return o, err
		}
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		for name, apply := range map[string]func(){
			"clients":       func() { o.clients = 200 },
			"event-clients": func() { o.eventClients = 100 },
			"stream-size":   func() { o.streamSize = 64 << 20 },
			"duration":      func() { o.duration = time.Second },
			"messages":      func() { o.messages = 200 },
			"burst":         func() { o.burst = 1000 },
			"slow-streams":  func() { o.slowStreams = 50 },
			"slow-for":      func() { o.slowFor = 5 * time.Second },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	o.sections = map[string]bool{}
	for s := range strings.SplitSeq(*only, ",") {
		s = strings.TrimSpace(s)
		if !contains(sectionNames, s) {
			return o, fmt.Errorf("%w: -only %q: want some of %s", errUsage, s, strings.Join(sectionNames, ","))
		}
		o.sections[s] = true
	}
	switch {
	case o.clients < 1 || o.clients > 100000:
		return o, fmt.Errorf("%w: -clients %d: want 1 to 100000", errUsage, o.clients)
	case o.eventClients < 1 || o.eventClients > 100000:
		return o, fmt.Errorf("%w: -event-clients %d: want 1 to 100000", errUsage, o.eventClients)
	case o.perProcess < 1:
		return o, fmt.Errorf("%w: -clients-per-process %d: want at least 1", errUsage, o.perProcess)
	case o.duration < 10*time.Millisecond || o.duration > time.Hour:
		return o, fmt.Errorf("%w: -duration %v: want 10ms to 1h", errUsage, o.duration)
	case o.subscribers < 1 || o.subscribers > 100000:
		return o, fmt.Errorf("%w: -subscribers %d: want 1 to 100000", errUsage, o.subscribers)
	case o.slowStreams < 1 || o.slowStreams > 10000:
		return o, fmt.Errorf("%w: -slow-streams %d: want 1 to 10000", errUsage, o.slowStreams)
	case o.slowFor < time.Second || o.slowFor > time.Hour:
		return o, fmt.Errorf("%w: -slow-for %v: want 1s to 1h", errUsage, o.slowFor)
	case o.messages < 1:
		return o, fmt.Errorf("%w: -messages %d: want at least 1", errUsage, o.messages)
	case o.burst < 1 || o.burst > 65536:
		return o, fmt.Errorf("%w: -burst %d: want 1 to 65536 (the most MaxStreams a node announces)", errUsage, o.burst)
	case o.reconnectMax < 500*time.Millisecond:
		return o, fmt.Errorf("%w: -reconnect-max %v: want at least 500ms (ReconnectMin)", errUsage, o.reconnectMax)
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "node" {
		os.Exit(nodeMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status: 0 done, 1 a
// measurement failed, 2 a bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "restpipe-bench: %s (see -h)\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	}
	if err := runBench(ctx, o, commandLine(args), stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "restpipe-bench: %v\n", err)
		return 1
	}
	return 0
}

// report is everything a run found, for -json.
type report struct {
	Command  string    `json:"command"`
	Machine  machine   `json:"machine"`
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Rows     []row     `json:"rows"`
	Notes    []string  `json:"notes,omitempty"`
}

func runBench(ctx context.Context, o options, cmdline string, stdout, stderr io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "restpipe-bench-")
	if err != nil {
		return fmt.Errorf("temporary directory for identities: %w", err)
	}
	defer os.RemoveAll(dir)
	var verbose io.Writer
	if o.verbose {
		verbose = stderr
	}
	f, err := newFleet(verbose)
	if err != nil {
		return err
	}
	defer f.stopAll()
	b := &bench{opt: o, fleet: f, dir: dir, log: stderr}

	started := time.Now()
	ids := 1
	if o.sections["scale"] {
		ids = max(ids, o.clients)
	}
	if o.sections["events"] {
		ids = max(ids, o.eventClients)
	}
	if o.sections["channels"] {
		ids = max(ids, channelNodes)
	}
	if err := writePKI(dir, ids); err != nil {
		return err
	}
	b.progress("CA and %d client identities made in %s", ids, fmtDur(time.Since(started)))
	steps := []struct {
		name string
		run  func(context.Context) error
	}{{"roundtrip", b.roundTrip}, {"stream", b.stream}, {"scale", b.scale}, {"events", b.events}, {"channels", b.channelFanout}, {"burst", b.burst}, {"slow", b.slowReaders}}
	for _, s := range steps {
		if !o.sections[s.name] {
			continue
		}
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s", s.name)
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	rep := report{Command: cmdline, Machine: describeMachine(), Started: started.UTC(),
		Duration: time.Since(started).Round(time.Second).String(), Rows: b.rows, Notes: b.notes}
	table := renderTable(rep)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(table), 0o644); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
	}
	_, err = io.WriteString(stdout, table)
	return err
}

// commandLine is the command as typed, arguments quoted where needed.
func commandLine(args []string) string {
	parts := []string{"restpipe-bench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = fmt.Sprintf("%q", a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// renderTable prints the report as markdown: a header with the machine
// and the command, one table, and notes.
func renderTable(rep report) string {
	var sb strings.Builder
	m := rep.Machine
	fmt.Fprintf(&sb, "### restpipe-bench, %s\n\n", rep.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&sb, "- machine: %d cores, %s, %s/%s, %s\n", m.Cores, m.CPU, m.OS, m.Arch, m.Go)
	fmt.Fprintf(&sb, "- command: `%s` (took %s)\n", rep.Command, rep.Duration)
	fmt.Fprintf(&sb, "- nodes: one child process each, on 127.0.0.1; ratio = restpipe / baseline (for latency and memory lower is better, for rates higher)\n\n")
	sb.WriteString("| measurement | restpipe | baseline | ratio | target | met |\n")
	sb.WriteString("|---|--:|--:|--:|---|---|\n")
	section := ""
	for _, r := range rep.Rows {
		if r.Section != section {
			section = r.Section
			fmt.Fprintf(&sb, "| **%s** | | | | | |\n", section)
		}
		ratio := ""
		if r.Ratio != 0 && !math.IsInf(r.Ratio, 0) && !math.IsNaN(r.Ratio) {
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s |\n", r.Name, r.Shown, dash(r.Baseline), dash(ratio), dash(r.Target), dash(r.Met))
	}
	if len(rep.Notes) > 0 {
		sb.WriteString("\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&sb, "- %s\n", n)
		}
	}
	return sb.String()
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
