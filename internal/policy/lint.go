package policy

import "github.com/fsnotifyd/fsnotifyd/engine"

// Warning is something Lint finds: a rule that parses but probably does not do what its
// author meant.
type Warning struct {
	Rule *Rule
	Msg  string
}

func (w Warning) String() string { return w.Rule.String() + ": " + w.Msg }

// Lint reports the policy's rules that grant access on a condition any process can forge:
// an allow rule whose only test of the process is comm= (in either form). Any process can
// take any name, with prctl(PR_SET_NAME) or by running a copy of a program under another
// name, so such a rule grants its access to every process. It is reported only where it
// grants something: when the default is deny, when scanned is set (the accesses no rule
// decides go to a scanner, guard --exec, so an allow rule skips the scan), or when a later
// deny rule may cover the same events and paths. comm= next to uid=, gid=, exe= or pid= only
// narrows a grant those already make, and comm= in a deny rule only adds a deny, so those are
// quiet.
func (p *Policy) Lint(scanned bool) []Warning {
	var out []Warning
	for i, r := range p.Rules {
		if r.Verdict != engine.Allow || !commOnly(r) {
			continue
		}
		if p.Default != engine.Deny && !scanned && !laterDenyOverlaps(p.Rules[i+1:], r) {
			continue
		}
		out = append(out, Warning{Rule: r, Msg: "this allow rule tells who may access by comm= alone, and any process can set " +
			"its own name (prctl PR_SET_NAME, or a copy of a program under another name): it grants the access to " +
			"every process; add exe=, uid= or gid="})
	}
	return out
}

// commOnly reports whether r tests the process by comm= and by nothing an unprivileged
// process cannot change.
func commOnly(r *Rule) bool {
	comm := false
	for _, c := range r.Conditions {
		switch c.Attr {
		case AttrComm:
			comm = true
		default:
			return false
		}
	}
	return comm
}

// laterDenyOverlaps reports whether a deny rule in rules may decide some event and path that
// r allows (so r, coming first, lifts that deny).
func laterDenyOverlaps(rules []*Rule, r *Rule) bool {
	for _, d := range rules {
		if d.Verdict != engine.Deny {
			continue
		}
		if r.Events != 0 && d.Events != 0 && r.Events&d.Events == 0 {
			continue
		}
		if r.Glob.mayOverlap(d.Glob) {
			return true
		}
	}
	return false
}
