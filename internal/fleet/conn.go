package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// ConnOptions say how to reach NATS; every fleet command and component takes them.
type ConnOptions struct {
	// URLs is a comma list of server URLs (nats://host:4222, tls://host:4222); a bare
	// host:port means nats://host:port.
	URLs string
	// Creds is a NATS credentials file (a user JWT and its nkey seed), as nsc makes them.
	Creds string
	// TLSCA is a PEM file of the CAs that sign the server's certificate; TLSCert and TLSKey
	// are a client certificate and key for servers that verify clients.
	TLSCA, TLSCert, TLSKey string
	// Name is the connection's name in the server's monitoring (connz).
	Name string
	// InboxPrefix replaces "_INBOX" for the replies this connection receives, so a server
	// can let each host subscribe only to its own replies (see docs/fleet.md).
	InboxPrefix string
	// Timeout bounds dialing each server and each JetStream request (default 5s).
	Timeout time.Duration
}

// HostInboxPrefix is the reply prefix of a host's connections (exporter and policy
// follower): _INBOX_<token>, so that a server can let each host subscribe to its own replies
// only (docs/fleet.md).
func HostInboxPrefix(token string) string { return "_INBOX_" + token }

// DefaultURL is where the commands look for NATS without --nats.
const DefaultURL = "nats://127.0.0.1:4222"

func (o *ConnOptions) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 5 * time.Second
}

// servers splits and checks URLs.
func (o *ConnOptions) servers() ([]string, error) {
	var out []string
	for _, u := range strings.Split(o.URLs, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" {
			return nil, fmt.Errorf("NATS URL %q is not a URL (want nats://HOST:PORT, a comma list for several)", redactURLs([]string{u}))
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("NATS URL %q: scheme %q is not nats, tls, ws or wss", redactURLs([]string{u}), p.Scheme)
		}
		if p.Path != "" && p.Path != "/" {
			return nil, fmt.Errorf("NATS URL %q has a path; give the server only (nats://HOST:PORT)", redactURLs([]string{u}))
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("no NATS URL given (want nats://HOST:PORT, a comma list for several)")
	}
	return out, nil
}

// Redacted is URLs for a log line or an error: a password in a URL is xxxxx, and so is a
// user without one (nats://TOKEN@host is token authentication). The daemon's log goes to
// the journal, which more users read than the daemon's command line's author.
func (o *ConnOptions) Redacted() string {
	return redactURLs(strings.Split(o.URLs, ","))
}

func redactURLs(list []string) string {
	out := make([]string, 0, len(list))
	for _, u := range list {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		scheme, rest, ok := strings.Cut(u, "://")
		if !ok {
			scheme, rest = "", u
		}
		// The userinfo ends at the last '@' before the path.
		hostEnd := len(rest)
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			hostEnd = i
		}
		if at := strings.LastIndexByte(rest[:hostEnd], '@'); at >= 0 {
			user, _, hasPass := strings.Cut(rest[:at], ":")
			if !hasPass {
				user = "xxxxx"
			} else {
				user += ":xxxxx"
			}
			rest = user + rest[at:]
		}
		if ok {
			u = scheme + "://" + rest
		} else {
			u = rest
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// Check reports bad options (unreadable files, malformed URLs) before any dialing.
//
// A file that is missing, unreadable or that others could change is a *FileError: the
// command line was right, the file is not (a CLI's runtime error, not a usage error).
func (o *ConnOptions) Check() error {
	if _, err := o.servers(); err != nil {
		return err
	}
	for _, f := range []struct {
		flag, path string
		secret     bool
	}{
		{"--nats-creds", o.Creds, true}, {"--nats-tls-ca", o.TLSCA, false}, {"--nats-tls-cert", o.TLSCert, false}, {"--nats-tls-key", o.TLSKey, true},
	} {
		if f.path == "" {
			continue
		}
		if f.secret {
			if err := checkSecret(f.path); err != nil {
				return &FileError{Flag: f.flag, Err: err}
			}
			continue
		}
		// Public, but what the host believes (a CA of another's would let their server feed
		// the guard its policy): held to the trust files' rule as the secrets are.
		fh, err := trust.OpenFile(f.path)
		if err != nil {
			return &FileError{Flag: f.flag, Err: err}
		}
		err = trust.CheckFile(fh, f.path, "NATS TLS file")
		fh.Close()
		if err != nil {
			return &FileError{Flag: f.flag, Err: err}
		}
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("--nats-tls-cert and --nats-tls-key go together: give both or neither")
	}
	return nil
}

// FileError is Check's refusal of a file a flag names (--nats-creds, --nats-tls-*).
type FileError struct {
	Flag string // "--nats-creds"
	Err  error
}

func (e *FileError) Error() string { return e.Flag + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// checkSecret refuses a file that says who this process is to NATS (a credentials file, a
// TLS private key) when another user could read it (they could connect as this host) or
// change it (trust.CheckFile: owned by root or this user, writable by nobody else, in
// directories nobody else may write — else they could swap in an identity of theirs).
func checkSecret(path string) error {
	f, err := trust.OpenFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := trust.CheckFile(f, path, "NATS credentials file"); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("NATS credentials file %s is readable by other users (mode %04o): whoever reads it can connect as this host (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// natsOptions are the options of both kinds of connection.
func (o *ConnOptions) natsOptions() ([]nats.Option, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	opts := []nats.Option{nats.Timeout(o.timeout())}
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	return opts, nil
}

// Connect dials once, for a command: it fails within about Timeout per server, with an error
// that names the servers and says what to check.
func (o *ConnOptions) Connect() (*nats.Conn, error) {
	srv, err := o.servers()
	if err != nil {
		return nil, err
	}
	opts, err := o.natsOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.MaxReconnects(0), nats.NoReconnect())
	nc, err := nats.Connect(strings.Join(srv, ","), opts...)
	if err != nil {
		return nil, explainConnect(srv, err)
	}
	return nc, nil
}

// explainConnect turns a dial error into one that says which servers and what to do.
func explainConnect(srv []string, err error) error {
	hint := "is nats-server running there with JetStream (nats-server -js)? check --nats"
	switch {
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(strings.ToLower(err.Error()), "authorization"):
		hint = "the server refused the credentials: check --nats-creds (or the user in the URL)"
	case errors.Is(err, nats.ErrSecureConnWanted):
		hint = "the server offers no TLS: give it tls { cert_file, key_file } (docs/fleet.md), or leave out tls:// and --nats-tls-*"
	case strings.Contains(strings.ToLower(err.Error()), "tls"), strings.Contains(err.Error(), "x509"), strings.Contains(err.Error(), "certificate"):
		hint = "TLS failed: check --nats-tls-ca (and --nats-tls-cert/--nats-tls-key), and use tls:// URLs"
	}
	return fmt.Errorf("cannot reach NATS at %s: %v (%s)", redactURLs(srv), err, hint)
}

// dialRetrying dials for a long-running component: it returns at once, connected or not, and
// the connection keeps reconnecting on its own (nats.go's loop, every ReconnectWait with
// jitter); Closed (after repeated authorization errors) is the owner's to notice and redial.
// Publishing while disconnected fails at once (no reconnect buffer), so the owner's own retry
// is the only one.
func (o *ConnOptions) dialRetrying(changed func(what string, err error)) (*nats.Conn, error) {
	srv, err := o.servers()
	if err != nil {
		return nil, err
	}
	opts, err := o.natsOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(*nats.Conn) { changed("connected", nil) }),
		nats.ReconnectHandler(func(*nats.Conn) { changed("reconnected", nil) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { changed("disconnected", err) }),
		nats.ClosedHandler(func(*nats.Conn) { changed("closed", nil) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { changed("error", err) }),
		// Each failed attempt, the first ones too (RetryOnFailedConnect): without it a host
		// whose TLS, credentials or URL are wrong retried forever and said nothing.
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { changed("dial failed", explainConnect(srv, err)) }),
	)
	return nats.Connect(strings.Join(srv, ","), opts...)
}

// dialSaid says each distinct dial failure once until a connection is made: nats.go retries
// every second or so, and with several servers the failures alternate.
type dialSaid struct {
	mu   sync.Mutex
	said map[string]bool
}

// first reports whether msg has not been said since the last reset (and marks it said).
func (d *dialSaid) first(msg string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.said == nil || len(d.said) >= 16 {
		d.said = map[string]bool{}
	}
	if d.said[msg] {
		return false
	}
	d.said[msg] = true
	return true
}

// reset is called when connected: a failure after that is said again.
func (d *dialSaid) reset() {
	d.mu.Lock()
	d.said = nil
	d.mu.Unlock()
}

// JetStream returns a JetStream context for a command connection, with requests bounded by
// the Timeout.
func (o *ConnOptions) JetStream(nc *nats.Conn, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	return jetstream.New(nc, append([]jetstream.JetStreamOpt{jetstream.WithDefaultTimeout(o.timeout())}, opts...)...)
}

// explainJS makes a JetStream API error say what to do.
func explainJS(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%s: the NATS server has no JetStream for this account: start it with -js (and a store directory, -sd DIR)", op)
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%s: no JetStream answered: start nats-server with -js, or check the account's permissions for $JS.API.> (docs/fleet.md)", op)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%s: JetStream did not answer in time (a server overloaded, or a permission denying $JS.API: see docs/fleet.md): %w", op, err)
	case errors.Is(err, nats.ErrPermissionViolation), strings.Contains(strings.ToLower(err.Error()), "permissions violation"):
		return fmt.Errorf("%s: the NATS user may not do this (see the permissions in docs/fleet.md): %w", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
