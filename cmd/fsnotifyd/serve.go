//go:build linux

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/sdnotify"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

const serveHelp = `
Run the daemon: it holds the kernel side (fanotify) once and serves many
client processes on a unix socket, each with its own marks, queue and
permission answers, so that no client can stall another, the daemon or the
host. Clients: "fsnotifyd watch|trace|guard --daemon", or the Go package
github.com/fsnotifyd/fsnotifyd/client. Needs root.

It refuses to start over a live socket and removes a stale one. It logs to
stderr (log/slog), tells systemd when it is ready (sd_notify, with
NOTIFY_SOCKET set; see contrib/fsnotifyd.service), and with --metrics serves
Prometheus metrics at http://ADDR/metrics (ADDR is host:port: 127.0.0.1:9464
for this host only; a port alone is refused, as it would serve every network).
On SIGINT or SIGTERM it closes every client (their pending permission events
get their close verdicts) and exits 0. SIGHUP reloads nothing (it is logged):
restart the daemon to apply a changed --config.

--config FILE sets who may do what (docs/daemon.md): allow_uid/allow_gid for
mount and filesystem marks and permission events, fd_uid/fd_gid for receiving
permission events' files, max_deadline, max_marks, queue_limit; and the
connection limits that keep unprivileged users from crowding out root:
max_clients (4096), reserved_clients (128, for root and allowed uids only),
max_clients_per_uid (256), handshake_timeout (3s), idle_timeout (60s: an
unprivileged client with no marks); what unprivileged users' clients may hold,
per uid and all of them together: max_marks_per_uid, max_marks_unprivileged,
queue_limit_per_uid, queue_limit_unprivileged. FILE (and --export-config's) must be a
regular file only root can change, as a trust file: owned by root, not
writable by group or others, and likewise each directory above it; so must
the directories above --socket be (a sticky one, such as /tmp, excepted).
Accept errors (out of descriptors) are
survived, logged at most once a second and counted in the metrics.

Examples:
  fsnotifyd serve
  fsnotifyd serve --socket /tmp/fsn.sock --metrics 127.0.0.1:9464
  fsnotifyd serve --config /etc/fsnotifyd/config --log-level debug
  fsnotifyd serve --export nats://nats1:4222 --export-config /etc/fsnotifyd/export
` + serveExportHelp

func runServe(args []string) int {
	var (
		socket    = daemon.DefaultSocket
		config    string
		metrics   string
		logLevel  = "info"
		logJSON   bool
		perThread bool
	)
	fs := newFlagSet("serve", "[--socket PATH] [--config FILE] [--metrics ADDR]", serveHelp)
	fs.stringVar(&socket, "socket,s", "listen on this unix socket")
	fs.stringVar(&config, "config,c", "read the client policy from FILE")
	fs.stringVar(&metrics, "metrics", "serve Prometheus metrics on ADDR (host:port)")
	fs.stringVar(&logLevel, "log-level", "debug, info, warn or error")
	fs.boolVar(&logJSON, "log-json", "log JSON lines instead of text")
	var export serveExportFlags
	export.register(fs)
	fs.boolVar(&perThread, "thread-per-client", "read each permission client on a thread of its own, not on the kernel reader's (slower; for comparison)")
	if status, ok := fs.parseNoArgs(args); !ok {
		return status
	}
	surviveBrokenPipes() // serve 2>&1 | logger, and the logger exits: log writes fail, the daemon serves on
	// SIGHUP (systemctl reload, a logrotate script's kill -HUP, a closed terminal) would
	// otherwise end the daemon, and with it every guard's marks: caught from the start.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if metrics != "" {
		if err := checkMetricsAddr(metrics); err != nil {
			return fs.usageError(err)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fs.usageError(fmt.Errorf("--log-level: %q: want debug, info, warn or error", logLevel))
	}
	if os.Geteuid() != 0 {
		// Started by another user it would serve, and refuse every mark: it checks each
		// client's access as that client (setgroups, setfsuid) and holds fanotify.
		return fail("serve", errors.New("needs root (fanotify, and checking each client's access as that client): run it as root, as contrib/fsnotifyd.service does; watch, trace and guard run without it (embedded)"))
	}
	hopts := &slog.HandlerOptions{Level: level}
	// The log is written by a goroutine of its own: a reader of stderr that stops reading
	// (a stopped pager, a wedged shipper) must not block the daemon, whose every new client
	// is logged — any user could then keep every client out.
	logw := newLogWriter(os.Stderr)
	defer logw.close()
	var log *slog.Logger
	if logJSON {
		log = slog.New(slog.NewJSONHandler(logw, hopts))
	} else {
		log = slog.New(slog.NewTextHandler(logw, hopts))
	}
	logw.dropped = func(n uint64) {
		log.Warn("log lines were dropped: the log's reader did not keep up", "dropped", n)
	}
	cfg := daemon.DefaultConfig()
	if config != "" {
		var err error
		if cfg, err = daemon.LoadConfig(config); err != nil {
			return fail("serve", fmt.Errorf("--config: %w", err))
		}
	}
	exp, status, ok := export.start(fs, &cfg, log)
	if !ok {
		return status
	}
	if exp != nil {
		defer closeExporter(exp, log) // after srv.Close: the last reports reach it
	}
	ln, err := listen(socket)
	if err != nil {
		return fail("serve", err)
	}
	srv, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Version: version, ThreadPerClient: perThread, Export: exp})
	if err != nil {
		ln.Close()
		return fail("serve", err)
	}
	defer srv.Close()
	ctx, stop := untilStopped() // a second SIGTERM once stopped is ignored (exit 0, not 143)
	defer stop()
	if metrics != "" {
		closeMetrics, err := serveMetrics(metrics, srv.MetricsHandler(), log)
		if err != nil {
			ln.Close()
			return fail("serve", err)
		}
		defer closeMetrics()
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Warn("SIGHUP: serve reloads nothing (--config and the flags are read at start); restart it to apply a change (its clients reconnect; accesses they guard are allowed meanwhile)")
			}
		}
	}()
	log.Info("fsnotifyd serving", "socket", socket, "version", version, "instance", srv.Instance().String())
	if err := sdnotify.Send("READY=1\nSTATUS=serving on " + socket); err != nil {
		log.Warn("telling systemd the daemon is ready (sd_notify)", "err", err)
	}
	err = srv.Run(ctx, ln)
	sdnotify.Send("STOPPING=1")
	os.Remove(socket)
	if err != nil {
		return fail("serve", err)
	}
	log.Info("fsnotifyd stopped")
	return exitOK
}

// listen opens the daemon's socket: it refuses a live one (another daemon answers there) and
// removes a stale one (a socket file nobody listens on). It refuses a directory that another
// user owns or may write without the sticky bit (trust.CheckDirOf, as for the directories of
// a trust file): there they could rename the socket away and listen in its place, or put a
// link in its place before the chmod below, which follows it. In a sticky directory (/tmp)
// they cannot remove root's socket once bound, and bind does not follow a link (EADDRINUSE).
func listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := trust.CheckDirOf(path, "daemon socket"); err != nil {
		return nil, err
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose --socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another fsnotifyd is serving on %s (stop it first, or choose --socket)", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("checking %s: %v", path, err)
		}
		os.Remove(path) // stale
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false) // we remove it ourselves, only when we made it
	// Anyone may connect; what each client may do is decided per request (SO_PEERCRED).
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// The metrics endpoint's bounds: whoever reaches its address may connect, and each
// connection is a descriptor and a goroutine of the daemon's, whose descriptors are its
// clients' and its permission events' (one the kernel cannot create in the daemon is denied).
// So at most metricsMaxConns connections are served at once (the others wait in the kernel's
// backlog, holding nothing of the daemon's), a request must come within the header and read
// timeouts, a response be taken within the write timeout, and an idle keep-alive connection
// is closed after metricsIdleTimeout (a scraper reconnects).
const (
	metricsMaxConns          = 16
	metricsIdleTimeout       = 5 * time.Second
	metricsReadHeaderTimeout = 5 * time.Second
	metricsReadTimeout       = 10 * time.Second
	metricsWriteTimeout      = 30 * time.Second
)

// checkMetricsAddr refuses a --metrics address that does not name its host: ":9464" (or
// "9464" with no colon, or a host without a port) would listen on every interface, serving the
// daemon-wide figures (activity in directories no user may read) to every network.
func checkMetricsAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics %s: %v; want host:port, such as 127.0.0.1:9464", addr, err)
	}
	if host == "" {
		return fmt.Errorf("--metrics %s: no host: it would serve the daemon's figures on every interface; give 127.0.0.1:%s (this host only), or 0.0.0.0:%s or [::]:%s to serve every network", addr, port, port, port)
	}
	return nil
}

// serveMetrics serves h at http://addr/metrics, within the bounds above, until the returned
// function closes it.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (func(), error) {
	mln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: metricsReadHeaderTimeout, ReadTimeout: metricsReadTimeout,
		WriteTimeout: metricsWriteTimeout, IdleTimeout: metricsIdleTimeout, MaxHeaderBytes: 8 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	lim := &limitListener{Listener: mln, sem: make(chan struct{}, metricsMaxConns), done: make(chan struct{})}
	go hs.Serve(lim)
	log.Info("metrics", "url", "http://"+mln.Addr().String()+"/metrics")
	return func() { hs.Close() }, nil
}

// limitListener accepts a connection only while fewer than cap(sem) are open.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its place back at its first Close.
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
