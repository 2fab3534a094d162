package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// Defaults of the fleet policy bucket.
const (
	DefaultBucket = "fsnotifyd-policy"
	DefaultKey    = "default"
	// StatusPrefix is the key prefix of the hosts' status entries: status.<host token>.
	StatusPrefix = "status."
)

// PolicyStatus is what a host writes to status.<host> in the bucket: the revision it enforces.
type PolicyStatus struct {
	Host string `json:"host"`
	// Key is the policy key the host follows.
	Key string `json:"key"`
	// Revision is the revision the host enforces (0: none), since AppliedAt.
	Revision  uint64    `json:"revision"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// Error says why the latest revision was refused (Refused), or what else is wrong; the
	// host keeps enforcing Revision.
	Error   string `json:"error,omitempty"`
	Refused uint64 `json:"refused_revision,omitempty"`
	// Source is "disk" while the host enforces the last good copy it kept and has not heard
	// from the bucket since it started, "nats" after that.
	Source    string    `json:"source"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ParsePolicyURL splits guard --policy-from's nats://HOST:PORT[,HOST:PORT]/BUCKET/KEY into
// the server URLs, the bucket and the key (BUCKET and KEY default to fsnotifyd-policy and
// default).
func ParsePolicyURL(s string) (urls, bucket, key string, err error) {
	bucket, key = DefaultBucket, DefaultKey
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", "", "", fmt.Errorf("%q is not nats://HOST:PORT/BUCKET/KEY", s)
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return "", "", "", fmt.Errorf("%q names no server (want nats://HOST:PORT/BUCKET/KEY)", s)
	}
	var list []string
	for _, h := range strings.Split(hosts, ",") {
		list = append(list, scheme+"://"+h)
	}
	if path = strings.TrimSuffix(path, "/"); path != "" {
		// A part that cannot be read is an error, never the default in its place: the guard
		// would follow another bucket's policy.
		parts := strings.Split(path, "/")
		if len(parts) > 2 {
			return "", "", "", fmt.Errorf("%q: the path is /BUCKET/KEY, got %d parts", s, len(parts))
		}
		b, err := url.PathUnescape(parts[0])
		if err != nil {
			return "", "", "", fmt.Errorf("%q: BUCKET %q: %v", s, parts[0], err)
		}
		if b == "" || len(parts) == 2 && parts[1] == "" {
			return "", "", "", fmt.Errorf("%q: an empty BUCKET or KEY (want nats://HOST:PORT/BUCKET/KEY; leave out both, or the KEY, for the defaults)", s)
		}
		if err := checkBucketName(b); err != nil {
			return "", "", "", fmt.Errorf("%q: %w", s, err)
		}
		bucket = b
		if len(parts) == 2 {
			key = parts[1]
		}
	}
	return strings.Join(list, ","), bucket, key, nil
}

// OpenBucket looks up the policy bucket; with create (policy push, the admin's), a missing
// bucket is created (keeping 16 revisions of each key), and a bucket that allows rollups is
// changed not to (see BucketAllowsRollups).
func OpenBucket(ctx context.Context, js jetstream.JetStream, bucket string, create bool) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, History: 16,
			Description: "fsnotifyd fleet policy: one key per policy, status.<host> per host (docs/fleet.md)",
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, errNoBucket(bucket)
	}
	if err != nil {
		return nil, explainJS("policy bucket "+bucket, err)
	}
	if create {
		if err := denyBucketRollups(ctx, js, bucket); err != nil {
			return nil, err
		}
	}
	return kv, nil
}

// errBucketMissing is OpenBucket's error for a bucket that does not exist.
var errBucketMissing = errors.New("policy bucket missing")

func errNoBucket(bucket string) error {
	return fmt.Errorf("policy bucket %q does not exist (yet, or deleted): push a policy first (fsnotifyd policy push FILE --nats URL)%w", bucket, silentErr{errBucketMissing})
}

// silentErr wraps an error for errors.Is without adding to the text.
type silentErr struct{ err error }

func (e silentErr) Error() string { return "" }
func (e silentErr) Unwrap() error { return e.err }

// bucketStream is the name of the stream that holds a key-value bucket.
func bucketStream(bucket string) string { return "KV_" + bucket }

// BucketAllowsRollups reports whether the bucket's stream takes a Nats-Rollup header. nats.go
// creates buckets that do (its Purge is a rollup of one key); fsnotifyd never uses one. Each
// host may write its own status entry and chooses that message's headers: with "Nats-Rollup:
// all" it would purge every other message of the stream — the fleet's policy and every other
// host's status — and no follower would hear of it (a purge is not an entry).
func BucketAllowsRollups(ctx context.Context, js jetstream.JetStream, bucket string) (bool, error) {
	info, err := bucketInfo(ctx, js, bucket)
	if err != nil {
		return false, err
	}
	return info.Config.AllowRollup, nil
}

// bucketInfo is the bucket's stream's info: its config, and Created, which tells a bucket
// made anew (revisions from 1 again) from the one a revision came from.
func bucketInfo(ctx context.Context, js jetstream.JetStream, bucket string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, bucketStream(bucket))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, errNoBucket(bucket)
	}
	if err != nil {
		return nil, explainJS("policy bucket "+bucket, err)
	}
	return s.CachedInfo(), nil
}

// denyBucketRollups turns a bucket's rollups off (BucketAllowsRollups).
func denyBucketRollups(ctx context.Context, js jetstream.JetStream, bucket string) error {
	s, err := js.Stream(ctx, bucketStream(bucket))
	if err != nil {
		return explainJS("policy bucket "+bucket, err)
	}
	cfg := s.CachedInfo().Config
	if err := checkBucketStream(bucket, cfg); err != nil {
		return err
	}
	if !cfg.AllowRollup {
		return nil
	}
	cfg.AllowRollup = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return explainJS(fmt.Sprintf("policy bucket %s allows rollups, with which any host could erase the policy; turning them off (nats stream edit %s --no-allow-rollup)", bucket, bucketStream(bucket)), err)
	}
	return nil
}

// checkBucketStream refuses a bucket whose stream the server would make write one key's
// message as another's: with message schedules a host's status write naming
// Nats-Schedule-Target: $KV.<bucket>.default is written by the server as the policy; a
// republish, a subject transform, sources or a mirror relabel what hosts write. Only the
// admin makes the bucket: this is a mistake of theirs, said, never fixed here.
func checkBucketStream(bucket string, c jetstream.StreamConfig) error {
	if c.AllowMsgSchedules || c.RePublish != nil || c.SubjectTransform != nil || len(c.Sources) > 0 || c.Mirror != nil {
		return fmt.Errorf("policy bucket %s: its stream %s has message schedules, a republish, a subject transform, sources or a mirror, with which a host's status write could be stored as the policy: make the bucket anew without them (nats kv del %s; fsnotifyd fleet init)", bucket, bucketStream(bucket), bucket)
	}
	return nil
}

// checkBucketName refuses a bucket name NATS would refuse (letters, digits, - and _): the
// follower names its saved copy after it, before it reaches NATS, and a name with '/' or
// ".." would put that file outside --policy-state.
func checkBucketName(b string) error {
	if b == "" {
		return errors.New("empty bucket name")
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; !(tokenKeeps(c) || c == '_') {
			return fmt.Errorf("bucket %q: %q is not allowed in a bucket name (letters, digits, - and _)", b, c)
		}
	}
	return nil
}

// CheckPolicyKey refuses a policy key that is not one plain key of the bucket: a wildcard
// ("*", ">") or a key under status. — those would take the hosts' status entries, which each
// host writes as it likes, for the policy (a compromised host's entry holding "allow * /**"
// would be applied), and a follower of its own status would refuse each of its own status
// writes as a revision and write the refusal, in a loop.
func CheckPolicyKey(key string) error {
	if key == "" {
		return errors.New("empty policy key")
	}
	if strings.HasPrefix(key, StatusPrefix) || key+"." == StatusPrefix {
		return fmt.Errorf("policy key %q: keys under %s are the hosts' status entries, not policies", key, StatusPrefix)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '/' || c == '.') {
			return fmt.Errorf("policy key %q: %q is not allowed in a key (letters, digits, - _ = / and . between them)", key, c)
		}
	}
	if key[0] == '.' || key[len(key)-1] == '.' || strings.Contains(key, "..") {
		return fmt.Errorf("policy key %q: a '.' only between words", key)
	}
	return nil
}

// ErrConflict is a push that lost a race: the key changed after it was read.
var ErrConflict = errors.New("the policy changed while it was being pushed")

// revisionError is a push refused because the key is not at the revision --if-revision
// names: no race, so not ErrConflict's words, but errors.Is it (the same outcome: nothing
// written, look and push again).
type revisionError struct{ holds, want uint64 }

func (e revisionError) Error() string {
	return fmt.Sprintf("--if-revision %d: the bucket holds revision %d; nothing was written: look at it (fsnotifyd policy status) and push again", e.want, e.holds)
}

func (e revisionError) Is(target error) bool { return target == ErrConflict }

// PushResult is what Push did.
type PushResult struct {
	Revision  uint64 // the revision now in the bucket
	Previous  uint64 // the revision it replaced (0: none)
	Unchanged bool   // the bucket already held these bytes: nothing written
}

// Push writes data as the new value of key with compare-and-set on the revision read first
// (or on ifRevision when nonzero, which the caller saw before editing): if anyone pushed in
// between, it fails with ErrConflict and writes nothing. validate (the local parser) checks
// data before anything is sent.
func Push(ctx context.Context, kv jetstream.KeyValue, key string, data []byte, ifRevision uint64, validate func([]byte) error) (PushResult, error) {
	var res PushResult
	if err := CheckPolicyKey(key); err != nil {
		return res, err
	}
	if validate != nil {
		if err := validate(data); err != nil {
			return res, err
		}
	}
	cur, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		cur = nil
	case err != nil:
		return res, explainJS("reading policy "+key, err)
	}
	if cur != nil {
		res.Previous = cur.Revision()
	}
	if ifRevision != 0 && ifRevision != res.Previous {
		return res, revisionError{holds: res.Previous, want: ifRevision}
	}
	if cur != nil && string(cur.Value()) == string(data) {
		res.Revision, res.Unchanged = cur.Revision(), true
		return res, nil
	}
	if cur == nil {
		res.Revision, err = kv.Create(ctx, key, data)
	} else {
		res.Revision, err = kv.Update(ctx, key, data, cur.Revision())
	}
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			now := uint64(0)
			if e, gerr := kv.Get(ctx, key); gerr == nil {
				now = e.Revision()
			}
			return res, fmt.Errorf("%w: someone pushed revision %d after this push read revision %d; nothing was written: check it (fsnotifyd policy status) and push again", ErrConflict, now, res.Previous)
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return res, fmt.Errorf("pushing policy %s: it is %d bytes, more than the NATS server takes in one message (its max_payload, 1 MiB unless set): make it smaller or raise max_payload; nothing was written", key, len(data))
		}
		return res, explainJS("pushing policy "+key, err)
	}
	return res, nil
}

// HostStatus is one host's entry in the bucket.
type HostStatus struct {
	Token  string
	Status PolicyStatus
	Err    error // the entry could not be read or parsed
}

// ReadStatuses returns every host's status entry, sorted by host. An entry whose host is not
// the one of its key (status.<token>) comes with Err: a host writes its own entry only, and
// what it says there is worth nothing about another host.
func ReadStatuses(ctx context.Context, kv jetstream.KeyValue) ([]HostStatus, error) {
	lister, err := kv.ListKeysFiltered(ctx, StatusPrefix+"*")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, explainJS("listing host status", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	lister.Stop()
	var out []HostStatus
	for _, k := range keys {
		hs := HostStatus{Token: strings.TrimPrefix(k, StatusPrefix)}
		e, err := kv.Get(ctx, k)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue
			}
			hs.Err = err
		} else if err := json.Unmarshal(e.Value(), &hs.Status); err != nil {
			hs.Err = fmt.Errorf("unreadable status: %w", err)
		} else if tok, _ := HostToken(hs.Status.Host); tok != hs.Token {
			// Each host may write its own entry only, but what it writes there is its own
			// word: an entry that names another host is not that host's line.
			hs.Err = fmt.Errorf("the entry %s says it is host %q's: not shown as theirs", k, hs.Status.Host)
			hs.Status = PolicyStatus{}
		}
		out = append(out, hs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Token < out[j].Token })
	return out, nil
}

// PolicyRevision is one revision of the policy, handed to the follower's Apply.
type PolicyRevision struct {
	Revision uint64
	Data     []byte
	// Source is "nats" or "disk" (the last good copy, at start).
	Source string
}

// FollowerConfig configures a PolicyFollower.
type FollowerConfig struct {
	Conn        ConnOptions
	Bucket, Key string // defaults fsnotifyd-policy, default
	Host        string // default: the host name
	// StateDir keeps the last good policy (required), so that a host that cannot reach NATS
	// enforces it from the start.
	StateDir string
	// Apply validates and installs a revision; an error refuses it (the old policy stays).
	// It is called from one goroutine at a time, never with a lock held.
	Apply func(PolicyRevision) error
	// Log receives one line per change (applied, refused, offline, back online).
	Log func(msg string)
}

// PolicyFollower follows one key of the policy bucket; see StartPolicyFollower.
type PolicyFollower struct {
	cfg    FollowerConfig
	token  string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}
	// rollupSaid: the bucket's rollups (or checkBucketStream's refusal) were said (run's
	// goroutine only).
	rollupSaid bool
	// created is when the bucket of the enforced revision was created (zero: unknown); set
	// before run starts, then run's goroutine only.
	created time.Time
	// dialSaid: the dial failures said since the last connection (nats.go's goroutines).
	dialSaid dialSaid

	mu     sync.Mutex
	status PolicyStatus
}

// savedPolicy is the state file's content.
type savedPolicy struct {
	Bucket   string    `json:"bucket"`
	Key      string    `json:"key"`
	Revision uint64    `json:"revision"`
	Applied  time.Time `json:"applied_at"`
	Data     []byte    `json:"data"`
	// BucketCreated is when the bucket the revision came from was created (zero: unknown,
	// a copy saved before it was kept): a bucket deleted and made anew numbers from 1 again.
	BucketCreated time.Time `json:"bucket_created,omitzero"`
}

// StartPolicyFollower applies the last good policy kept in StateDir (if any) before it
// returns, then follows the key from its own goroutine: each new revision goes to Apply;
// the host's status.<host> entry says what it enforces; the last good revision is saved to
// StateDir. It reconnects forever; while NATS is unreachable the current policy stays.
func StartPolicyFollower(cfg FollowerConfig) (*PolicyFollower, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Key == "" {
		cfg.Key = DefaultKey
	}
	if err := CheckPolicyKey(cfg.Key); err != nil {
		return nil, err
	}
	if err := checkBucketName(cfg.Bucket); err != nil {
		return nil, err
	}
	host, token, err := hostAndToken(cfg.Host)
	if err != nil {
		return nil, err
	}
	cfg.Host = host
	if cfg.StateDir == "" {
		return nil, errors.New("policy follower: no state directory given")
	}
	if cfg.Apply == nil {
		return nil, errors.New("policy follower: no Apply function")
	}
	if cfg.Log == nil {
		cfg.Log = func(string) {}
	}
	if err := cfg.Conn.Check(); err != nil {
		return nil, err
	}
	if cfg.Conn.Name == "" {
		cfg.Conn.Name = "fsnotifyd-policy " + cfg.Host
	}
	if cfg.Conn.InboxPrefix == "" {
		cfg.Conn.InboxPrefix = HostInboxPrefix(token)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("policy state directory: %w", err)
	}
	f := &PolicyFollower{cfg: cfg, token: token, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	// Checked now, not only when a saved copy is there to load: in a directory another user
	// may write they could remove the copy, or put theirs in its place (refused by load),
	// and the guard would start with no policy until NATS answers.
	if err := trust.CheckDirOf(f.statePath(), "saved fleet policy"); err != nil {
		return nil, fmt.Errorf("policy state directory: %w", err)
	}
	f.status = PolicyStatus{Host: cfg.Host, Key: cfg.Key}
	if sp, err := f.load(); err != nil {
		f.logf("policy: the last good policy in %s cannot be read (%v); none until NATS answers", f.statePath(), err)
	} else if sp != nil {
		if err := cfg.Apply(PolicyRevision{Revision: sp.Revision, Data: sp.Data, Source: "disk"}); err != nil {
			f.logf("policy: the saved revision %d is refused now (%v); none until NATS answers", sp.Revision, err)
		} else {
			f.status.Revision, f.status.AppliedAt, f.status.Source = sp.Revision, sp.Applied, "disk"
			f.created = sp.BucketCreated
			f.logf("policy: enforcing revision %d from %s until NATS answers", sp.Revision, f.statePath())
		}
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	go f.run()
	return f, nil
}

func (f *PolicyFollower) logf(format string, args ...any) { f.cfg.Log(fmt.Sprintf(format, args...)) }

func (f *PolicyFollower) statePath() string {
	return filepath.Join(f.cfg.StateDir, "policy."+f.cfg.Bucket+"."+f.cfg.Key+".json")
}

// load reads the last good revision, if any. The file says what the guard enforces without
// NATS, so it is held to the trust files' rule (trust.CheckFile): a regular file that only
// root (or this process's user) can change, in directories only they can change — a
// --policy-state DIR that others may write would let them plant a policy.
func (f *PolicyFollower) load() (*savedPolicy, error) {
	b, err := trust.ReadChecked(f.statePath(), "saved fleet policy")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sp savedPolicy
	if err := json.Unmarshal(b, &sp); err != nil {
		return nil, err
	}
	return &sp, nil
}

// save writes the last good revision durably (a temporary file, fsync, rename, fsync of the
// directory), so a crash leaves the old copy or the new one.
func (f *PolicyFollower) save(sp savedPolicy) error {
	b, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	p := f.statePath()
	tmp := p + ".tmp"
	// A new file, never one found there (a link another planted would be followed).
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.Write(b)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		if d, derr := os.Open(f.cfg.StateDir); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Status is what the host enforces now.
func (f *PolicyFollower) Status() PolicyStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// Close stops following; the policy applied last stays applied.
func (f *PolicyFollower) Close() {
	f.cancel()
	<-f.done
}

func (f *PolicyFollower) connChanged(what string, err error) {
	switch what {
	case "disconnected":
		st := f.Status()
		msg := fmt.Sprintf("policy: NATS unreachable; still enforcing revision %d", st.Revision)
		if st.Revision == 0 {
			msg = "policy: NATS unreachable; no policy received yet"
		}
		if err != nil {
			msg += " (" + err.Error() + ")"
		}
		f.cfg.Log(msg)
	case "connected", "reconnected":
		f.dialSaid.reset()
	case "dial failed":
		if err != nil && f.dialSaid.first(err.Error()) {
			st := f.Status()
			f.logf("policy: %v; still enforcing revision %d, trying again", err, st.Revision)
		}
	case "error":
		if err != nil {
			f.logf("policy: NATS: %v", err)
		}
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run is the follower's goroutine: connect, then follow sessions (bucket lookup, status,
// watch) until the connection drops or the watch ends, and start over.
func (f *PolicyFollower) run() {
	defer close(f.done)
	backoff := 250 * time.Millisecond
	sleep := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, 5*time.Second)
		select {
		case <-f.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	var nc *nats.Conn
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	lastErr := ""
	report := func(err error) {
		if err.Error() != lastErr { // say each distinct problem once
			lastErr = err.Error()
			f.logf("policy: %v", err)
		}
	}
	for f.ctx.Err() == nil {
		if nc == nil || nc.IsClosed() {
			if nc != nil {
				nc.Close()
			}
			var err error
			if nc, err = f.cfg.Conn.dialRetrying(f.connChanged); err != nil {
				report(err)
				nc = nil
				if !sleep() {
					return
				}
				continue
			}
		}
		if !nc.IsConnected() {
			select {
			case <-f.ctx.Done():
				return
			case <-f.wake:
			case <-time.After(time.Second):
			}
			continue
		}
		err := f.session(nc)
		if f.ctx.Err() != nil {
			return
		}
		if err != nil {
			report(err)
			if !sleep() {
				return
			}
		} else {
			backoff = 250 * time.Millisecond
		}
	}
}

// session follows the key over one connection until it drops (nil) or something fails.
func (f *PolicyFollower) session(nc *nats.Conn) error {
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(f.cfg.Conn.timeout()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.Conn.timeout())
	kv, err := OpenBucket(ctx, js, f.cfg.Bucket, false)
	if err == nil && !f.rollupSaid {
		if info, rerr := bucketInfo(ctx, js, f.cfg.Bucket); rerr == nil {
			if berr := checkBucketStream(f.cfg.Bucket, info.Config); berr != nil {
				f.rollupSaid = true
				f.logf("policy: %v", berr)
			} else if info.Config.AllowRollup {
				f.rollupSaid = true
				f.logf("policy: bucket %s allows rollups: any host that writes its status entry could erase the policy and every host's status with one message (this host keeps the revision it enforces); fsnotifyd policy push turns them off (or nats stream edit %s --no-allow-rollup)", f.cfg.Bucket, bucketStream(f.cfg.Bucket))
			}
		}
	}
	cancel()
	if err != nil {
		return f.bucketErr(err)
	}
	// No consumer: a host allowed to make consumers on the bucket's stream may make a push
	// consumer that delivers to any subject it names, the server publishing there for it —
	// onto another host's record subjects, which the stream stores as that host's
	// (TestHostCannotDeliverIntoTheStreamAsAnotherHost). So the key is read (a direct get)
	// when a core subscription to its subject says it was written, and every pollEvery.
	kick := make(chan struct{}, 1)
	sub, err := nc.Subscribe(kvSubject(f.cfg.Bucket, f.cfg.Key), func(*nats.Msg) {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return explainJS("following policy "+f.cfg.Key, err)
	}
	defer sub.Unsubscribe()
	f.putStatus(kv)
	type entryID struct {
		rev uint64
		at  time.Time
	}
	var seen entryID // the entry handled last: a bucket made anew numbers from 1 again
	read := func() error {
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.Conn.timeout())
		defer cancel()
		e, err := kv.Get(ctx, f.cfg.Key)
		switch {
		case errors.Is(err, jetstream.ErrKeyDeleted) && e != nil: // a delete marker: update says it
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return nil // never pushed (or purged)
		case err != nil:
			if _, ierr := bucketInfo(ctx, js, f.cfg.Bucket); errors.Is(ierr, errBucketMissing) {
				return f.bucketErr(ierr)
			}
			if f.ctx.Err() != nil {
				return nil
			}
			return explainJS("reading policy "+f.cfg.Key, err)
		}
		if id := (entryID{e.Revision(), e.Created()}); id != seen {
			seen = id
			f.update(js, kv, e)
		}
		return nil
	}
	if err := read(); err != nil {
		return err
	}
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	var again <-chan time.Time // a read soon after a write was heard, before it was stored
	for {
		select {
		case <-f.ctx.Done():
			return nil
		case <-f.wake:
			if !nc.IsConnected() {
				return nil // the session restarts when the connection is back
			}
			continue
		case <-kick:
			before := seen
			if err := read(); err != nil {
				return err
			}
			if seen == before {
				again = time.After(100 * time.Millisecond)
			}
			continue
		case <-again:
			again = nil
		case <-poll.C:
			if !nc.IsConnected() {
				return nil
			}
		}
		if err := read(); err != nil {
			return err
		}
	}
}

// kvSubject is the subject a key of a bucket is written on.
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// bucketErr is a session's error for a missing bucket, which says what the host enforces.
func (f *PolicyFollower) bucketErr(err error) error {
	if !errors.Is(err, errBucketMissing) {
		return err
	}
	if r := f.Status().Revision; r != 0 {
		return fmt.Errorf("%w; still enforcing revision %d", err, r)
	}
	return fmt.Errorf("%w; no policy received yet", err)
}

// pollEvery is how often a follower reads its key besides when it hears it written.
const pollEvery = 2 * time.Second

// update applies one entry of the followed key.
func (f *PolicyFollower) update(js jetstream.JetStream, kv jetstream.KeyValue, e jetstream.KeyValueEntry) {
	cur := f.Status()
	// Which bucket the entry is from: one made anew after the enforced revision's numbers
	// from 1 again, and its revisions are the newer ones; one made before it (a server
	// restored from an older copy) is older whatever its revision. Unknown (an error, or a
	// copy saved without it): the revisions alone decide.
	var created time.Time
	if e.Operation() == jetstream.KeyValuePut {
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.Conn.timeout())
		if info, err := bucketInfo(ctx, js, f.cfg.Bucket); err == nil {
			created = info.Created
		}
		cancel()
	}
	newer, older := e.Revision() > cur.Revision, e.Revision() < cur.Revision
	if !created.IsZero() && !f.created.IsZero() && !created.Equal(f.created) {
		newer, older = created.After(f.created), created.Before(f.created)
	}
	f.setStatus(func(s *PolicyStatus) { s.Source = "nats" }) // in touch with the bucket now
	switch {
	case e.Operation() != jetstream.KeyValuePut:
		f.setStatus(func(s *PolicyStatus) {
			s.Error, s.Refused = fmt.Sprintf("the policy key was deleted at revision %d; still enforcing revision %d", e.Revision(), s.Revision), 0
		})
		f.logf("policy: key %s deleted in bucket %s; still enforcing revision %d", f.cfg.Key, f.cfg.Bucket, cur.Revision)
	case older:
		// The bucket is behind what this host enforces (a restored server?): keep ours, say so.
		msg := fmt.Sprintf("the bucket's revision %d is older than the enforced %d", e.Revision(), cur.Revision)
		if !created.Equal(f.created) && !created.IsZero() && !f.created.IsZero() {
			msg = fmt.Sprintf("the bucket's revision %d is older than the enforced %d: its bucket was created at %s, before the enforced one's (%s)", e.Revision(), cur.Revision, created.UTC().Format(time.RFC3339), f.created.UTC().Format(time.RFC3339))
		}
		f.setStatus(func(s *PolicyStatus) { s.Error = msg })
		if cur.Error != msg {
			f.logf("policy: %s (a server restored from an older copy?); still enforcing revision %d", msg, cur.Revision)
		}
	case !newer: // the disk copy is current
	default:
		err := f.cfg.Apply(PolicyRevision{Revision: e.Revision(), Data: e.Value(), Source: "nats"})
		if err != nil {
			f.setStatus(func(s *PolicyStatus) {
				s.Error, s.Refused = fmt.Sprintf("revision %d refused: %v", e.Revision(), err), e.Revision()
			})
			f.logf("policy: revision %d refused (%v); still enforcing revision %d", e.Revision(), err, cur.Revision)
			break
		}
		now := time.Now()
		f.setStatus(func(s *PolicyStatus) {
			s.Revision, s.AppliedAt, s.Source, s.Error, s.Refused = e.Revision(), now, "nats", "", 0
		})
		if e.Revision() <= cur.Revision {
			f.logf("policy: revision %d applied (a bucket made anew, at %s: its revisions start again)", e.Revision(), created.UTC().Format(time.RFC3339))
		} else {
			f.logf("policy: revision %d applied", e.Revision())
		}
		if !created.IsZero() {
			f.created = created
		}
		if err := f.save(savedPolicy{Bucket: f.cfg.Bucket, Key: f.cfg.Key, Revision: e.Revision(), Applied: now, Data: e.Value(), BucketCreated: f.created}); err != nil {
			f.logf("policy: saving revision %d to %s: %v (a restart without NATS would not have it)", e.Revision(), f.statePath(), err)
		}
	}
	f.putStatus(kv)
}

func (f *PolicyFollower) setStatus(fn func(*PolicyStatus)) {
	f.mu.Lock()
	fn(&f.status)
	f.mu.Unlock()
}

// putStatus writes status.<host>; a failure is logged (the next change or session retries).
func (f *PolicyFollower) putStatus(kv jetstream.KeyValue) {
	f.setStatus(func(s *PolicyStatus) { s.UpdatedAt = time.Now() })
	b, _ := json.Marshal(f.Status())
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.Conn.timeout())
	defer cancel()
	if _, err := kv.Put(ctx, StatusPrefix+f.token, b); err != nil && f.ctx.Err() == nil {
		f.logf("policy: writing %s%s: %v", StatusPrefix, f.token, explainJS("status", err))
	}
}
