package format

import (
	"context"
	"errors"

	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// AuditAttrs are the fields a guard's audit line (docs/trace-format.md, "guard --audit
// lines") gives for what a decision read of the file and of the process's executable: its
// type by content, its digest, and for each trust decision the verdict, who says so and the
// digests compared. A field is left out when the decision did not read it: nothing is read
// for the audit alone. Embed it in the audit record: its fields sit beside the others.
type AuditAttrs struct {
	// FileType is the file's type (ftype=): "elf-executable", "script:sh".
	FileType string `json:"ftype,omitempty"`
	// SHA256 is the file's sha256 in hex, when the decision computed it (sha256=, or a trust
	// file's entry compared).
	SHA256 string `json:"sha256,omitempty"`
	// SHA256Unverifiable says why the file's sha256 could not be known, when a sha256=
	// condition needed it and its content could not be read as one version (open for
	// writing, or changed while it was read) or was not hashed (Late): the condition may
	// have held, so a deny rule denied and an allow rule was passed over.
	SHA256Unverifiable string `json:"sha256_unverifiable,omitempty"`
	// Trust is the file's trust decision (trusted=).
	Trust *AuditTrust `json:"trust,omitempty"`
	// ExeTrust is the trust decision on the process's executable (trusted_exe=).
	ExeTrust *AuditTrust `json:"exe_trust,omitempty"`
	// Late says the rules decided at the guard's late point (a tenth of the deadline before
	// it, at most 500 ms; twice that through the daemon): no handler had decided in time, so
	// nothing was hashed, and a condition on content whose digest was not in the hash cache
	// may have held (a deny rule denied, an allow rule was passed over).
	Late bool `json:"late,omitempty"`
}

// AuditTrust is one trust decision in an audit line.
type AuditTrust struct {
	// Status is "trusted", "not-listed", "modified", "unverifiable" (trust.Status), or
	// "timeout" when the guard's deadline stopped the hashing (the on-timeout verdict
	// applied).
	Status string `json:"status"`
	// Source is who lists the file: "dpkg:coreutils", "dpkg:cron (conffile)",
	// "/etc/fsnotifyd/trust.d/local.trust:3"; the first listed when none matched. Left out
	// for not-listed.
	Source string `json:"source,omitempty"`
	// Digest is the file's digest in the algorithm of Source's entry: "md5:HEX" (dpkg),
	// "sha256:HEX" (trust files). Left out when the file was not hashed (not listed, a size
	// that already differs, unverifiable).
	Digest string `json:"digest,omitempty"`
	// Want, for modified, is the digest the entry lists.
	Want string `json:"want,omitempty"`
	// Error, for unverifiable and timeout, says why.
	Error string `json:"error,omitempty"`
}

// NewAuditTrust describes the outcome of a trust verification (trust.Verifier.Verify's
// result and error).
func NewAuditTrust(res trust.Result, err error) *AuditTrust {
	a := &AuditTrust{Status: res.Status.String()}
	if res.Status != trust.NotListed {
		a.Source = res.Entry.Source.String()
	}
	a.Digest = res.Actual.String()
	if res.Status == trust.Modified {
		a.Want = res.Entry.Digest.String()
	}
	if err != nil {
		a.Error = err.Error()
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			a.Status = "timeout"
		}
	}
	return a
}
