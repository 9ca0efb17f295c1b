package farm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/shoal-scraper/shoal/bench/internal/proc"
)

// A farm can run in a child process, so that its file descriptors, CPU and
// memory are not the scraper's: a scraper holding one keep-alive connection
// per target plus an in-process farm needs about 3 descriptors per target,
// more than a 20000-descriptor limit allows at 10000 targets, and the
// scraper's CPU and RSS are measured more cleanly without the farm in them.
//
// Parent and child talk JSON over the child's stdin and stdout:
//
//	parent → child  Config                     child → parent  hello
//	parent → child  {"op":"stats"}             child → parent  processStats
//	parent closes stdin                        child closes its farm and returns
//
// The child learns it is a farm however its program decides (an
// environment variable, a hidden subcommand) and calls ServeProcess with its
// stdin and stdout. A test binary can serve as its own child: see the
// package bench tests.

type hello struct {
	Addrs            []string `json:"addrs"`
	SamplesPerScrape int      `json:"samples_per_scrape"`
	Error            string   `json:"error,omitempty"`
}

type request struct {
	Op string `json:"op"`
}

// ProcessStats is a snapshot of a farm running in a child process.
type ProcessStats struct {
	Targets []Stats       `json:"targets"` // indexed like Process.Addrs
	CPU     time.Duration `json:"cpu"`     // the child's CPU time (user + system) so far
	RSS     int64         `json:"rss"`     // the child's resident set size, bytes
	Error   string        `json:"error,omitempty"`
}

// ServeProcess runs the child side of StartProcess: it reads a Config from
// in, starts the farm, reports its addresses on out, answers stats requests
// until in reaches EOF or ctx is done, then closes the farm. It returns the
// error that stopped it early, or nil after a clean EOF.
func ServeProcess(ctx context.Context, in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("farm process: reading config: %w", err)
	}
	f, err := Start(ctx, cfg)
	if err != nil {
		enc.Encode(hello{Error: err.Error()})
		return err
	}
	defer f.Close()
	if err := enc.Encode(hello{Addrs: f.Addrs(), SamplesPerScrape: f.SamplesPerScrape()}); err != nil {
		return fmt.Errorf("farm process: %w", err)
	}
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("farm process: reading request: %w", err)
		}
		var resp ProcessStats
		switch req.Op {
		case "stats":
			resp.Targets = f.Stats()
			cpu, err1 := proc.CPU()
			rss, err2 := proc.RSS()
			resp.CPU, resp.RSS = cpu, rss
			if err := errors.Join(err1, err2); err != nil {
				resp.Error = err.Error()
			}
		default:
			resp.Error = fmt.Sprintf("unknown op %q", req.Op)
		}
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("farm process: %w", err)
		}
	}
}

// Process is a farm running in a child process started by StartProcess.
// Its methods are safe for concurrent use.
type Process struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	stderr  *tail
	addrs   []string
	spp     int
	stopCtx func() bool

	mu  sync.Mutex // one request/response exchange at a time
	enc *json.Encoder
	dec *json.Decoder

	closeOnce sync.Once
	closeErr  error
}

// StartProcess starts cmd, which must run a program that calls
// ServeProcess with its stdin and stdout, and has it serve cfg. cmd's
// Stdin and Stdout must be unset; its Stderr, when unset, is kept (the
// last few KiB) for error messages. The child stops when Close is called
// or ctx is done (Close must still be called to reap it).
func StartProcess(ctx context.Context, cfg Config, cmd *exec.Cmd) (*Process, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, stderr: &tail{max: 8 << 10}}
	if cmd.Stderr == nil {
		cmd.Stderr = p.stderr
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("farm process: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("farm process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("farm process: starting %q: %w", cmd.Path, err)
	}
	p.in, p.enc, p.dec = in, json.NewEncoder(in), json.NewDecoder(out)
	// Closing stdin is the child's signal to stop; it also unblocks the
	// hello below if ctx ends while the child is starting.
	p.stopCtx = context.AfterFunc(ctx, func() { p.in.Close() })

	var h hello
	err = p.enc.Encode(cfg)
	if err == nil {
		err = p.dec.Decode(&h)
	}
	if err == nil && h.Error != "" {
		err = errors.New(h.Error)
	}
	if err == nil && len(h.Addrs) != cfg.Targets {
		err = fmt.Errorf("child serves %d targets, want %d", len(h.Addrs), cfg.Targets)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("farm process: starting: %w%s", err, p.stderrNote())
	}
	p.addrs, p.spp = h.Addrs, h.SamplesPerScrape
	return p, nil
}

// Addrs returns the targets' host:port addresses. The slice is shared: do
// not modify it.
func (p *Process) Addrs() []string { return p.addrs }

// SamplesPerScrape is how many samples one scrape of a target returns.
func (p *Process) SamplesPerScrape() int { return p.spp }

// Stats asks the child for a snapshot of its counters and resource usage.
func (p *Process) Stats() (ProcessStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s ProcessStats
	if err := p.enc.Encode(request{Op: "stats"}); err != nil {
		return s, fmt.Errorf("farm process: stats: %w", err)
	}
	if err := p.dec.Decode(&s); err != nil {
		return s, fmt.Errorf("farm process: stats: %w", err)
	}
	if s.Error != "" {
		return s, fmt.Errorf("farm process: stats: %s", s.Error)
	}
	return s, nil
}

// Close stops the child and waits for it to exit: it closes the child's
// stdin and kills the child if it has not exited 10 s later. It returns
// the child's exit error, with the end of its stderr. Close is idempotent.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		p.stopCtx()
		p.in.Close()
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			err = <-done
		}
		if err != nil {
			p.closeErr = fmt.Errorf("farm process: %w%s", err, p.stderrTail())
		}
	})
	return p.closeErr
}

// stderrNote is the child's exit status and the end of its stderr, for
// error messages.
func (p *Process) stderrNote() string {
	if st := p.cmd.ProcessState; st != nil {
		return " (child " + st.String() + ")" + p.stderrTail()
	}
	return p.stderrTail()
}

// stderrTail is the end of the child's stderr, for error messages.
func (p *Process) stderrTail() string {
	if s := strings.TrimSpace(p.stderr.String()); s != "" {
		return "; stderr: " + s
	}
	return ""
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
