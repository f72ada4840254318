package cli

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far long work (bench, sending many files) has got, as a bar
// on stderr when stderr is a terminal. Elsewhere (pipes, files, CI logs) it prints
// nothing, so scripted output stays clean. A nil *progress is valid and silent.
type progress struct {
	bar *progressbar.ProgressBar
}

// isTerminal reports whether w is a terminal (the default env.terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress starts a bar of total steps described by what, or returns nil
// when stderr is not a terminal or --json asks for machine-readable output.
func (e *env) newProgress(total int, what string) *progress {
	terminal := e.terminal
	if terminal == nil {
		terminal = isTerminal
	}
	if total <= 0 || e.flags.JSON || !terminal(e.stderr) {
		return nil
	}
	return &progress{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

// Add advances the bar by n steps.
func (p *progress) Add(n int) {
	if p != nil {
		_ = p.bar.Add(n)
	}
}

// Set moves the bar to n steps done.
func (p *progress) Set(n int) {
	if p != nil {
		_ = p.bar.Set(n)
	}
}

// Done removes the bar, leaving the terminal line free for the result.
func (p *progress) Done() {
	if p != nil {
		_ = p.bar.Finish()
	}
}
