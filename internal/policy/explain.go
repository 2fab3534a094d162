package policy

import (
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
)

// Explanation is how Explain decided: the decision Decide gives, and a Step for each rule
// tried, in order, up to the deciding one (the rules after it are not tried).
type Explanation struct {
	Decision Decision
	Steps    []Step
}

// Step is one rule tried.
type Step struct {
	Rule *Rule
	// EventMatches says the rule's events include the request's; when false the rule was
	// not tried further.
	EventMatches bool
	// Path is whether the rule's glob matches the path: MayHold when the path is unknown.
	Path Outcome
	// Conds are the rule's conditions, when its events and glob matched, each with the
	// attribute's value: those Decide evaluated (Needed), then, after one that failed, the
	// others, evaluated for the explanation only.
	Conds  []CondStep
	Result StepResult
}

// StepResult is what a rule tried did.
type StepResult uint8

const (
	// NoMatch: the events, the glob or a condition did not match; the next rule is tried.
	NoMatch StepResult = iota
	// Decided: the rule decided.
	Decided
	// PassedOver: an allow rule that may match (the path is unknown, or an ancestor=
	// condition cannot be settled) gives no allow; the next rule is tried.
	PassedOver
	// Failed: an attribute a condition needs could not be read: Decision.Err.
	Failed
)

func (r StepResult) String() string {
	switch r {
	case Decided:
		return "decides"
	case PassedOver:
		return "passed over: it may match, and an allow must be sure"
	case Failed:
		return "cannot be evaluated"
	}
	return "no match"
}

// CondStep is one condition of a rule tried.
type CondStep struct {
	Cond *Condition
	// Value is the attribute as read, for people: "1000", "/usr/bin/cat", "script:sh", or
	// why there is none ("the process is gone", "not a regular file").
	Value   string
	Outcome Outcome
	// Err is the error reading the attribute (the decision's Err when Needed).
	Err error
	// Needed: the decision depended on it. A condition after one that failed is not needed.
	Needed bool
}

// Explain decides req as Decide does and says how: each rule tried and each condition's
// value and outcome. It reads what Decide reads, and more: the conditions after the first
// failing one of a rule are evaluated too, for the explanation (errors there do not change
// the decision). It is for `fsnotifyd policy explain`, not for a guard's hot path.
func (p *Policy) Explain(req *Request) Explanation {
	tr := &tracer{}
	d := p.decide(req, tr)
	return Explanation{Decision: d, Steps: tr.steps}
}

// tracer records Explain's steps. Its methods do nothing on a nil *tracer or *Step, which is
// what Decide passes.
type tracer struct{ steps []Step }

func (tr *tracer) step(r *Rule) *Step {
	if tr == nil {
		return nil
	}
	tr.steps = append(tr.steps, Step{Rule: r})
	return &tr.steps[len(tr.steps)-1]
}

func (st *Step) result(r StepResult) {
	if st != nil {
		st.Result = r
	}
}

func (st *Step) cond(c *Condition, a *attrs, o Outcome, err error) {
	if st != nil {
		st.Conds = append(st.Conds, CondStep{Cond: c, Value: a.describe(c.Attr, err), Outcome: o, Err: err, Needed: true})
	}
}

// extra evaluates c for the explanation only.
func (st *Step) extra(c *Condition, a *attrs) {
	if st != nil {
		o, err := c.eval(a)
		st.Conds = append(st.Conds, CondStep{Cond: c, Value: a.describe(c.Attr, err), Outcome: o, Err: err})
	}
}

// describe is attribute attr as read (after an eval, which read it), for Explain.
func (a *attrs) describe(attr Attr, err error) string {
	if err != nil {
		return "unreadable: " + err.Error()
	}
	switch rerr := a.read(attr); {
	case errors.Is(rerr, os.ErrProcessDone):
		if attr == AttrPID || a.req.Proc == nil {
			return "unknown (no process)"
		}
		return "unknown (the process is gone)"
	case errors.Is(rerr, ErrNoValue):
		return "none (not a regular file)"
	case errors.Is(rerr, ErrUnverifiable):
		return "unknown (" + rerr.Error() + ")"
	case rerr != nil:
		return "unreadable: " + rerr.Error()
	}
	switch attr {
	case AttrPID:
		return strconv.Itoa(int(a.req.Pid))
	case AttrUID:
		return strconv.FormatUint(uint64(a.uidVal), 10)
	case AttrGID:
		var g []string
		for _, id := range a.groupsVal {
			g = append(g, strconv.FormatUint(uint64(id), 10))
		}
		return strings.Join(g, ",")
	case AttrComm:
		return strconv.Quote(a.commVal)
	case AttrExe:
		return exeString(a.exeVal, a.exeVerified)
	case AttrPPID:
		return strconv.Itoa(int(a.ppidVal))
	case AttrAncestor:
		return ancestryString(a.ancVal)
	case AttrTrustedExe:
		return yesNo(a.trustedExeVal)
	case AttrFtype:
		return a.ftypeVal.String()
	case AttrSHA256:
		return hex.EncodeToString(a.sha256Val[:])
	case AttrTrusted:
		return yesNo(a.trustedVal)
	case AttrSize:
		return strconv.FormatUint(a.sizeVal, 10)
	case AttrMountWritable:
		return yesNo(a.mountWritableVal)
	}
	return "?"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
