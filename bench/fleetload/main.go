//go:build linux

// Command fleetload is bench/fleet.sh's helper for the daemon's export:
//
//	fleetload nats PORT DIR          an in-process nats-server with JetStream in DIR (until killed; PORT 0:
//	                                 any free one); prints "ready URL"
//	fleetload seq URL                the fleet stream's last sequence (0 if it does not exist yet)
//	fleetload count URL FROM         waits until the stream has been quiet for 1 s, then reads the
//	                                 records after stream sequence FROM and prints their count, the
//	                                 rate at which the server stored them (records/s, first to last),
//	                                 and the lag from each event's time to its storing (p50, p99)
//	fleetload pace PATH RATE N       opens PATH N times at RATE opens/s (RATE 0: as fast as it can); a
//	                                 directory: its files in turn, so that the events do not merge
//	fleetload files DIR N            creates N files in DIR
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: fleetload nats PORT DIR | seq URL | count URL FROM | pace FILE RATE N")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "nats":
		err = runNATS(os.Args[2], os.Args[3])
	case "seq":
		var js jetstream.JetStream
		if js, err = connect(os.Args[2]); err == nil {
			var seq uint64
			seq, err = lastSeq(js)
			fmt.Println(seq)
		}
	case "count":
		err = count(os.Args[2], os.Args[3])
	case "pace":
		err = pace(os.Args[2], os.Args[3], os.Args[4])
	case "files":
		err = files(os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetload:", err)
		os.Exit(1)
	}
}

func runNATS(port, dir string) error {
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: p, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("nats-server not ready")
	}
	fmt.Println("ready", srv.ClientURL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}

func connect(url string) (jetstream.JetStream, error) {
	o := fleet.ConnOptions{URLs: url}
	nc, err := o.Connect()
	if err != nil {
		return nil, err
	}
	return o.JetStream(nc)
}

func lastSeq(js jetstream.JetStream) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, fleet.DefaultStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

func count(url, fromArg string) error {
	from, err := strconv.ParseUint(fromArg, 10, 64)
	if err != nil {
		return err
	}
	js, err := connect(url)
	if err != nil {
		return err
	}
	// Quiet: the last sequence unchanged for 1 s.
	last, err := lastSeq(js)
	for err == nil {
		time.Sleep(time.Second)
		var now uint64
		if now, err = lastSeq(js); now == last {
			break
		}
		last = now
	}
	if err != nil {
		return err
	}
	if last <= from {
		fmt.Println("records 0")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, fleet.DefaultStream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from + 1})
	if err != nil {
		return err
	}
	var first, lastTS time.Time
	var lags []time.Duration
	n, empty := 0, 0
	for seq := from + 1; seq <= last; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			seq = meta.Sequence.Stream + 1
			if n == 0 {
				first = meta.Timestamp
			}
			lastTS = meta.Timestamp
			n++
			var r struct {
				Kind string    `json:"kind"`
				Time time.Time `json:"time"`
			}
			if json.Unmarshal(m.Data(), &r) == nil && r.Kind == "event" && !r.Time.IsZero() {
				lags = append(lags, meta.Timestamp.Sub(r.Time))
			}
		}
		if got == 0 {
			if empty++; empty == 15 { // 30 s without a record: a loaded machine is slow, not that slow
				return fmt.Errorf("stream stopped at %d of %d", seq-1, last)
			}
			continue
		}
		empty = 0
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	pct := func(p float64) float64 {
		if len(lags) == 0 {
			return 0
		}
		return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))].Microseconds()) / 1000
	}
	span := lastTS.Sub(first).Seconds()
	rate := 0.0
	if span > 0 {
		rate = float64(n-1) / span
	}
	fmt.Printf("records %d records_per_s %.0f lag_p50_ms %.2f lag_p99_ms %.2f\n", n, rate, pct(0.50), pct(0.99))
	return nil
}

func files(dir, nArg string) error {
	n, err := strconv.Atoi(nArg)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(fmt.Sprintf("%s/f%d", dir, i), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func pace(path, rateArg, nArg string) error {
	rate, err := strconv.Atoi(rateArg)
	if err != nil || rate < 0 {
		return fmt.Errorf("rate %q", rateArg)
	}
	n, err := strconv.Atoi(nArg)
	if err != nil {
		return err
	}
	paths := []string{path}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		names, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		paths = paths[:0]
		for _, e := range names {
			paths = append(paths, path+"/"+e.Name())
		}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		f, err := os.Open(paths[i%len(paths)])
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}
