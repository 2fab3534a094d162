//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fsnotifyd/fsnotifyd/daemon"
	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/fsnotifyd/fsnotifyd/internal/trust"
)

// DefaultSpool is the exporter's spool directory unless --spool says otherwise.
const DefaultSpool = "/var/lib/fsnotifyd/spool"

const serveExportHelp = `
--export nats://HOST:PORT[,...] sends this host's records to NATS JetStream
(docs/fleet.md): the events of the "export EVENTS GLOB..." lines (in
--export-config FILE or in --config; the daemon places their marks itself), and
the decisions of the guards that report them (guard --daemon
--export-decisions), each with host, boot_id and seq, acknowledged, deduplicated,
spooled on disk (--spool) while NATS is away, and gap records for anything lost.
`

// serveExportFlags are serve's fleet flags (serve_export.go keeps them out of serve.go).
type serveExportFlags struct {
	conn                  fleet.ConnOptions
	host, spool, config   string
	spoolMax, streamBytes int
	stream                string
	streamAge             time.Duration
}

func (f *serveExportFlags) register(fs *flagSet) {
	f.spool = DefaultSpool
	fs.stringVar(&f.conn.URLs, "export", "export events and decisions to NATS JetStream at URL(s): nats://HOST:PORT[,...] (docs/fleet.md)")
	registerConnFlags(fs, &f.conn, ", with --export")
	fs.stringVar(&f.host, "host", "this host's name in records and subjects (default: the machine's host name)")
	fs.stringVar(&f.spool, "spool", "keep records not yet acknowledged in DIR (survives restarts and kill -9)")
	fs.intVar(&f.spoolMax, "spool-max-bytes", "bound the spool (default 1 GiB); beyond it records are dropped and named by a gap record")
	fs.stringVar(&f.config, "export-config", "read \"export EVENTS GLOB...\" lines from FILE (they may also be in --config)")
	fs.stringVar(&f.stream, "stream", "the JetStream stream's name (default FSNOTIFYD; created if missing)")
	fs.durationVar(&f.streamAge, "stream-max-age", "when creating the stream: drop records older than DUR (default 168h)")
	fs.intVar(&f.streamBytes, "stream-max-bytes", "when creating the stream: bound its size (default 1 GiB)")
}

// start checks the flags, adds --export-config's lines to cfg and creates the exporter (nil
// without --export). A bad flag or line is a usage error naming it.
func (f *serveExportFlags) start(fs *flagSet, cfg *daemon.Config, log *slog.Logger) (*fleet.Exporter, int, bool) {
	if f.config != "" {
		if f.conn.URLs == "" {
			return nil, fs.usageError(errors.New("--export-config needs --export nats://HOST:PORT: without it nothing is exported")), false
		}
		// The file's errors are runtime errors (exit 1), as --config's.
		src, err := trust.ReadChecked(f.config, "export config file") // what root marks and sends out
		if err != nil {
			return nil, fail("serve", fmt.Errorf("--export-config: %w", err)), false
		}
		rules, err := daemon.ParseExportConfig(f.config, string(src))
		if err != nil {
			return nil, fail("serve", fmt.Errorf("--export-config: %w", err)), false
		}
		cfg.Exports = append(cfg.Exports, rules...)
	}
	if f.conn.URLs == "" {
		given := fs.givenFlags("spool", "spool-max-bytes", "stream-max-age", "stream-max-bytes", "nats-timeout")
		if err := connFlagsWithout(&f.conn, "--export nats://HOST:PORT", append([][2]string{{"--host", f.host}, {"--stream", f.stream}}, given...)...); err != nil {
			return nil, fs.usageError(err), false
		}
		return nil, 0, true
	}
	if err := f.conn.Check(); err != nil {
		return nil, refuseConn(fs, fmt.Errorf("--export: %w", err)), false
	}
	if f.host != "" {
		if _, err := fleet.HostToken(f.host); err != nil {
			return nil, fs.usageError(fmt.Errorf("--host: %w", err)), false
		}
	}
	if err := negativeFlag(intFlag{"--spool-max-bytes", f.spoolMax}, intFlag{"--stream-max-bytes", f.streamBytes}); err != nil { // --stream-max-age: durationValue refuses one
		return nil, fs.usageError(err), false
	}
	exp, err := fleet.NewExporter(fleet.ExporterConfig{
		Conn: f.conn, Host: f.host, SpoolDir: f.spool, SpoolMaxBytes: int64(f.spoolMax),
		Stream: fleet.StreamConfig{Name: f.stream, MaxAge: f.streamAge, MaxBytes: int64(f.streamBytes)},
		Log:    func(msg string) { log.Info("fleet export: " + msg) },
	})
	if err != nil {
		return nil, fail("serve", fmt.Errorf("--export: %w", err)), false
	}
	log.Info("fleet export", "nats", f.conn.Redacted(), "host", exp.Host(), "spool", f.spool, "export_lines", len(cfg.Exports))
	return exp, 0, true
}

// closeExporter stops the exporter after the server: it writes what it holds to the spool
// and sends what it can within 5 s; the rest waits in the spool for the next start.
func closeExporter(exp *fleet.Exporter, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if unsent := exp.Close(ctx); unsent > 0 {
		log.Info("fleet export: records left in the spool for the next start", "records", unsent)
	}
}
