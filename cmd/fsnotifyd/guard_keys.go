//go:build linux

package main

import (
	"errors"
	"fmt"

	"github.com/fsnotifyd/fsnotifyd/internal/policy"
)

// The policy keys of issue 13 that the guard does not evaluate yet. The guard is being
// rebuilt on one event source (issue 10); it gets these keys there, with its trust database
// (--trust, --no-package-trust), an Object per event from its descriptor and decisions that
// read content off the kernel-reading goroutine (internal/sysattr; docs/policy.md). Until
// then it refuses a policy that uses them rather than evaluate them halfway: `fsnotifyd
// policy check` and `policy explain` know them all.
var unwiredKeys = []policy.Attr{policy.AttrPPID, policy.AttrAncestor, policy.AttrTrustedExe,
	policy.AttrFtype, policy.AttrSHA256, policy.AttrTrusted, policy.AttrSize, policy.AttrMountWritable}

var errUnwired = errors.New("not evaluated by fsnotifyd guard yet")

// refuseUnwiredKeys says which rule uses a key the guard cannot evaluate yet.
func refuseUnwiredKeys(pol *policy.Policy) error {
	if r, a := pol.RuleUsing(unwiredKeys...); r != nil {
		return fmt.Errorf("%s: %s conditions are not evaluated by fsnotifyd guard yet (they come with its trust database); "+
			"fsnotifyd policy check and fsnotifyd policy explain evaluate them", r, a)
	}
	return nil
}

// The Process methods of those keys: never called, since such a policy is refused.
func (p procInfo) PPid() (int32, error)                { return 0, errUnwired }
func (p procInfo) Ancestors() (policy.Ancestry, error) { return policy.Ancestry{}, errUnwired }
func (p procInfo) TrustedExe() (bool, error)           { return false, errUnwired }
