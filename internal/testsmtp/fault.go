package testsmtp

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Stage is the point of an SMTP session a Fault applies to.
type Stage string

// Stages a fault can target.
const (
	StageConnect Stage = "CONNECT" // before the greeting
	StageAuth    Stage = "AUTH"    // after the credentials arrive
	StageMail    Stage = "MAIL"
	StageRcpt    Stage = "RCPT"
	StageData    Stage = "DATA" // after the message body, before the final reply
)

// Action is what a fault does once it fires.
type Action int

// Actions.
const (
	// ActionReply answers with Code, Enhanced and Text instead of the normal
	// reply. A 421 reply also closes the connection, as real servers do.
	ActionReply Action = iota
	// ActionDrop closes the connection without answering. At StageData the
	// connection is closed after AfterBytes bytes of the body were read.
	ActionDrop
	// ActionStall never answers; the connection stays open until the client
	// gives up or the server goes down.
	ActionStall
	// ActionDelay only waits Delay, then the stage proceeds normally.
	ActionDelay
)

// Fault is one injected misbehaviour. Build it with Reply, Drop, Stall or
// Delay and refine it with the chained setters; pass it in Options.Faults or
// to Server.AddFault.
//
// Firing rule: the fault counts the occurrences of its stage (for RCPT, only
// of matching recipients) from the moment it is installed. It may fire from
// occurrence Nth on (default the first), at most Times times (0 = no limit),
// and each time only with Probability (0 = always).
type Fault struct {
	Stage    Stage
	Action   Action
	Code     int    // reply code for ActionReply
	Enhanced string // "4.3.0"; "" = derived from the code
	Text     string
	Rcpt     string        // RCPT only: match this address (case-insensitive); "" = any
	Delay    time.Duration // waited before acting (every action)
	// Release, when set, ends the wait early once closed: a test holds a
	// stage for as long as it needs instead of guessing a duration.
	Release     <-chan struct{}
	AfterBytes  int // DATA + ActionDrop: body bytes read before dropping
	Nth         int
	Times       int
	Probability float64
}

// Reply returns a fault answering stage with the given reply.
func Reply(stage Stage, code int, enhanced, text string) Fault {
	return Fault{Stage: stage, Action: ActionReply, Code: code, Enhanced: enhanced, Text: text}
}

// Drop returns a fault closing the connection at stage.
func Drop(stage Stage) Fault { return Fault{Stage: stage, Action: ActionDrop} }

// Stall returns a fault that never answers at stage.
func Stall(stage Stage) Fault { return Fault{Stage: stage, Action: ActionStall} }

// Delay returns a fault that slows stage down by d and then proceeds.
func Delay(stage Stage, d time.Duration) Fault {
	return Fault{Stage: stage, Action: ActionDelay, Delay: d}
}

// Hold returns a fault that keeps stage waiting until release is closed (or
// the connection closes), then proceeds.
func Hold(stage Stage, release <-chan struct{}) Fault {
	return Fault{Stage: stage, Action: ActionDelay, Delay: time.Hour, Release: release}
}

// ForRcpt restricts a RCPT fault to one recipient address.
func (f Fault) ForRcpt(addr string) Fault { f.Rcpt = addr; return f }

// OnNth makes the fault fire on the nth occurrence only.
func (f Fault) OnNth(n int) Fault { f.Nth = n; f.Times = 1; return f }

// Next makes the fault fire on the next k occurrences only.
func (f Fault) Next(k int) Fault { f.Times = k; return f }

// WithProbability makes the fault fire with probability p on each occurrence.
func (f Fault) WithProbability(p float64) Fault { f.Probability = p; return f }

// WithDelay adds a wait before the fault acts.
func (f Fault) WithDelay(d time.Duration) Fault { f.Delay = d; return f }

// AfterBody sets how many DATA bytes are read before a drop.
func (f Fault) AfterBody(n int) Fault { f.AfterBytes = n; return f }

func (f Fault) validate() error {
	switch f.Stage {
	case StageConnect, StageAuth, StageMail, StageRcpt, StageData:
	default:
		return fmt.Errorf("testsmtp: unknown fault stage %q", f.Stage)
	}
	if f.Action == ActionReply && (f.Code < 200 || f.Code > 599) {
		return fmt.Errorf("testsmtp: fault reply code %d outside 200-599", f.Code)
	}
	if f.Enhanced != "" {
		if _, err := parseEnhanced(f.Enhanced); err != nil {
			return err
		}
	}
	if f.Probability < 0 || f.Probability > 1 {
		return fmt.Errorf("testsmtp: fault probability %v outside [0,1]", f.Probability)
	}
	if f.Nth < 0 || f.Times < 0 || f.AfterBytes < 0 || f.Delay < 0 {
		return fmt.Errorf("testsmtp: negative fault count or delay")
	}
	return nil
}

// smtpError is the reply a firing ActionReply fault sends.
func (f Fault) smtpError() *smtp.SMTPError {
	code := smtp.EnhancedCodeNotSet
	if f.Enhanced != "" {
		code, _ = parseEnhanced(f.Enhanced) // validated on install
	}
	text := f.Text
	if text == "" {
		text = "injected failure"
	}
	return &smtp.SMTPError{Code: f.Code, EnhancedCode: code, Message: text}
}

func parseEnhanced(s string) (smtp.EnhancedCode, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCode{}, fmt.Errorf("testsmtp: enhanced code %q is not x.y.z", s)
	}
	var code smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return smtp.EnhancedCode{}, fmt.Errorf("testsmtp: enhanced code %q is not x.y.z", s)
		}
		code[i] = n
	}
	return code, nil
}

// installed is a fault with its counters.
type installed struct {
	id    int
	fault Fault
	seen  int
	fired int
}

// faultSet holds the live faults; safe for concurrent use.
type faultSet struct {
	mu     sync.Mutex
	nextID int
	list   []*installed
	rnd    *rand.Rand
}

func newFaultSet(seed uint64) *faultSet {
	return &faultSet{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (fs *faultSet) add(f Fault) (int, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextID++
	fs.list = append(fs.list, &installed{id: fs.nextID, fault: f})
	return fs.nextID, nil
}

func (fs *faultSet) remove(id int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, in := range fs.list {
		if in.id == id {
			fs.list = append(fs.list[:i], fs.list[i+1:]...)
			return
		}
	}
}

func (fs *faultSet) clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = nil
}

// match counts one occurrence of stage and returns the first fault that
// fires for it, if any.
func (fs *faultSet) match(stage Stage, rcpt string) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var (
		hit   Fault
		found bool
	)
	for _, in := range fs.list {
		f := in.fault
		if f.Stage != stage || (f.Rcpt != "" && !strings.EqualFold(f.Rcpt, rcpt)) {
			continue
		}
		in.seen++
		if found {
			continue
		}
		nth := max(f.Nth, 1)
		if in.seen < nth || (f.Times > 0 && in.fired >= f.Times) {
			continue
		}
		if f.Probability > 0 && fs.rnd.Float64() >= f.Probability {
			continue
		}
		in.fired++
		hit, found = f, true
	}
	return hit, found
}
