package format

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

func TestAuditAttrsJSON(t *testing.T) {
	md5 := trust.Digest{Algo: trust.MD5}
	copy(md5.Sum[:], []byte("0123456789abcdef"))
	other := md5
	other.Sum[0] = 'X'
	sha := trust.Digest{Algo: trust.SHA256}
	for i := range sha.Sum {
		sha.Sum[i] = byte(i)
	}
	dpkg := trust.Source{Kind: trust.FromPackage, Package: "coreutils"}
	file := trust.Source{Kind: trust.FromFile, File: "/etc/fsnotifyd/trust.d/local.trust", Line: 3}
	deadline := fmt.Errorf("hashing: %w", context.DeadlineExceeded)
	tests := []struct {
		name string
		a    AuditAttrs
		want string
	}{
		{"nothing read", AuditAttrs{}, `{}`},
		{"type only", AuditAttrs{FileType: "script:sh"}, `{"ftype":"script:sh"}`},
		{"trusted by dpkg", AuditAttrs{FileType: "elf-executable", Trust: NewAuditTrust(trust.Result{Status: trust.Trusted,
			Entry: trust.Entry{Digest: md5, Source: dpkg}, Actual: md5}, nil)},
			`{"ftype":"elf-executable","trust":{"status":"trusted","source":"dpkg:coreutils","digest":"md5:30313233343536373839616263646566"}}`},
		{"modified", AuditAttrs{Trust: NewAuditTrust(trust.Result{Status: trust.Modified,
			Entry: trust.Entry{Digest: md5, Source: dpkg}, Actual: other}, nil)},
			`{"trust":{"status":"modified","source":"dpkg:coreutils","digest":"md5:58313233343536373839616263646566","want":"md5:30313233343536373839616263646566"}}`},
		{"modified, size differs: not hashed", AuditAttrs{Trust: NewAuditTrust(trust.Result{Status: trust.Modified,
			Entry: trust.Entry{Digest: sha, Size: 5, Source: file}}, nil)},
			`{"trust":{"status":"modified","source":"/etc/fsnotifyd/trust.d/local.trust:3","want":"sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}}`},
		{"not listed", AuditAttrs{Trust: NewAuditTrust(trust.Result{Status: trust.NotListed}, nil)}, `{"trust":{"status":"not-listed"}}`},
		{"unverifiable", AuditAttrs{Trust: NewAuditTrust(trust.Result{Status: trust.Unverifiable,
			Entry: trust.Entry{Digest: sha, Source: file}}, trust.ErrChanged)},
			`{"trust":{"status":"unverifiable","source":"/etc/fsnotifyd/trust.d/local.trust:3","error":"the file changed while it was being hashed"}}`},
		{"deadline", AuditAttrs{ExeTrust: NewAuditTrust(trust.Result{Status: trust.Unverifiable,
			Entry: trust.Entry{Digest: md5, Source: dpkg}}, deadline)},
			`{"exe_trust":{"status":"timeout","source":"dpkg:coreutils","error":"hashing: context deadline exceeded"}}`},
		{"sha256 and exe", AuditAttrs{SHA256: sha.Hex(), ExeTrust: NewAuditTrust(trust.Result{Status: trust.Trusted,
			Entry: trust.Entry{Digest: sha, Source: file}, Actual: sha}, nil)},
			`{"sha256":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f","exe_trust":{"status":"trusted","source":"/etc/fsnotifyd/trust.d/local.trust:3","digest":"sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.a)
		if err != nil || string(b) != tt.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", tt.name, b, err, tt.want)
		}
	}
	// Embedded in an audit record, the fields sit beside the record's own.
	rec := struct {
		Path string `json:"path"`
		AuditAttrs
		Rule string `json:"rule"`
	}{"/usr/bin/ls", AuditAttrs{FileType: "elf-executable"}, "policy.rules:3"}
	if b, _ := json.Marshal(rec); string(b) != `{"path":"/usr/bin/ls","ftype":"elf-executable","rule":"policy.rules:3"}` {
		t.Errorf("embedded: %s", b)
	}
	if a := NewAuditTrust(trust.Result{}, errors.New("x")); a.Status != "not-listed" || a.Error != "x" {
		t.Errorf("%+v", a)
	}
}
