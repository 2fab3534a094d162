//go:build linux

package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsHandler serves the daemon's figures in the Prometheus text format. The figures are
// read from the server when scraped (the same ones `fsnotifyd stats` prints), so nothing on
// the event path does metrics bookkeeping.
func (s *Server) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{s: s})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

type collector struct{ s *Server }

var (
	descEvents          = prometheus.NewDesc("fsnotifyd_events_total", "Events read from the kernel.", nil, nil)
	descPermEvents      = prometheus.NewDesc("fsnotifyd_permission_events_total", "Permission events read from the kernel.", nil, nil)
	descDelivered       = prometheus.NewDesc("fsnotifyd_delivered_events_total", "Events queued to clients.", nil, nil)
	descDropped         = prometheus.NewDesc("fsnotifyd_dropped_events_total", "Events dropped because a client's queue was full.", nil, nil)
	descOverflows       = prometheus.NewDesc("fsnotifyd_overflows_total", "Overflow events reported to clients.", nil, nil)
	descKernelOverflows = prometheus.NewDesc("fsnotifyd_kernel_overflows_total", "Overflows of the kernel's own event queue.", nil, nil)
	descPending         = prometheus.NewDesc("fsnotifyd_pending_permission_events", "Permission events waiting for a client's answer.", nil, nil)
	descDeadline        = prometheus.NewDesc("fsnotifyd_deadline_expiries_total", "Permission events answered by a deadline verdict.", nil, nil)
	descClosed          = prometheus.NewDesc("fsnotifyd_close_answered_total", "Permission events answered by a close verdict (the client left).", nil, nil)
	descClients         = prometheus.NewDesc("fsnotifyd_clients", "Clients connected.", nil, nil)
	descMarks           = prometheus.NewDesc("fsnotifyd_marks", "Marks held by all clients.", nil, nil)
	descLatency         = prometheus.NewDesc("fsnotifyd_verdict_latency_seconds", "Time from queueing a permission event to the client's answer.", nil, nil)
	descConns           = prometheus.NewDesc("fsnotifyd_connections", "Connections held, handshakes included, by privilege.", []string{"peer"}, nil)
	descAcceptErrors    = prometheus.NewDesc("fsnotifyd_accept_errors_total", "accept(2) failures survived (out of descriptors or memory, ...).", nil, nil)
	descRefused         = prometheus.NewDesc("fsnotifyd_connections_refused_total", "Connections refused at once, by the limit they met.", []string{"limit"}, nil)
	descReaped          = prometheus.NewDesc("fsnotifyd_connections_reaped_total", "Connections closed by the daemon, by reason.", []string{"reason"}, nil)
)

// The fleet export's figures (serve --export): served only by a daemon that exports.
var (
	descExportEvents    = prometheus.NewDesc("fsnotifyd_export_events_total", "Events of the export lines handed to the fleet exporter.", nil, nil)
	descExportReports   = prometheus.NewDesc("fsnotifyd_export_decision_reports_total", "Guards' decision reports handed to the fleet exporter.", nil, nil)
	descExportRefused   = prometheus.NewDesc("fsnotifyd_export_decision_reports_refused_total", "Decision reports refused (from a notification client, not a JSON object, or setting a field the daemon sets).", nil, nil)
	descExportAppended  = prometheus.NewDesc("fsnotifyd_export_records_appended_total", "Records taken by the fleet exporter.", nil, nil)
	descExportAcked     = prometheus.NewDesc("fsnotifyd_export_records_acked_total", "Records acknowledged by JetStream.", nil, nil)
	descExportResends   = prometheus.NewDesc("fsnotifyd_export_records_resent_total", "Records sent again after an error.", nil, nil)
	descExportLost      = prometheus.NewDesc("fsnotifyd_export_records_lost_total", "Records lost before JetStream had them (each gap is in the stream as a gap record), by where.", []string{"where"}, nil)
	descExportOverflows = prometheus.NewDesc("fsnotifyd_export_overflows_total", "Overflows of the export group's queue (or the kernel's) passed on as gap records.", nil, nil)
	descExportUnacked   = prometheus.NewDesc("fsnotifyd_export_unacked_records", "Records numbered and not yet acknowledged by JetStream (the export's lag).", nil, nil)
	descExportSpool     = prometheus.NewDesc("fsnotifyd_export_spool_bytes", "Bytes in the on-disk spool.", nil, nil)
	descExportConnected = prometheus.NewDesc("fsnotifyd_export_connected", "1 while the exporter is connected to NATS.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descPermEvents, descDelivered, descDropped, descOverflows,
		descKernelOverflows, descPending, descDeadline, descClosed, descClients, descMarks, descLatency,
		descConns, descAcceptErrors, descRefused, descReaped, descExportEvents, descExportReports,
		descExportRefused, descExportAppended, descExportAcked, descExportResends, descExportLost,
		descExportOverflows, descExportUnacked, descExportSpool, descExportConnected} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats(false, 0)
	d := st.Daemon
	counter := func(desc *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v))
	}
	gauge := func(desc *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v))
	}
	counter(descEvents, d.Events)
	counter(descPermEvents, d.PermissionEvents)
	counter(descDelivered, d.Delivered)
	counter(descDropped, d.Dropped)
	counter(descOverflows, d.Overflows)
	counter(descKernelOverflows, d.KernelOverflows)
	gauge(descPending, d.Pending)
	counter(descDeadline, d.DeadlineExpired)
	counter(descClosed, d.CloseAnswered)
	gauge(descClients, uint64(d.Clients))
	gauge(descMarks, d.Marks)
	buckets := make(map[float64]uint64, len(d.Buckets))
	var cum uint64
	for _, b := range d.Buckets {
		cum += b.Count
		buckets[b.Le.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descLatency, d.Latency.Count, d.Latency.Sum.Seconds(), buckets)
	cs := c.s.ConnStats()
	labeled := func(desc *prometheus.Desc, t prometheus.ValueType, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(desc, t, float64(v), label)
	}
	labeled(descConns, prometheus.GaugeValue, uint64(cs.Conns-cs.Unprivileged), "privileged")
	labeled(descConns, prometheus.GaugeValue, uint64(cs.Unprivileged), "unprivileged")
	counter(descAcceptErrors, cs.AcceptErrors)
	labeled(descRefused, prometheus.CounterValue, cs.RefusedTotal, "max_clients")
	labeled(descRefused, prometheus.CounterValue, cs.RefusedShare, "reserved_clients")
	labeled(descRefused, prometheus.CounterValue, cs.RefusedUID, "max_clients_per_uid")
	labeled(descReaped, prometheus.CounterValue, cs.ReapedHandshake, "handshake_timeout")
	labeled(descReaped, prometheus.CounterValue, cs.ReapedIdle, "idle_timeout")
	if x := c.s.export; x != nil {
		xs := x.exp.Stats()
		counter(descExportEvents, x.events.Load())
		counter(descExportReports, x.decisions.Load())
		counter(descExportRefused, x.refused.Load())
		counter(descExportAppended, xs.Appended)
		counter(descExportAcked, xs.Acked)
		counter(descExportResends, xs.Resends)
		labeled(descExportLost, prometheus.CounterValue, xs.DroppedBuffer, "buffer")
		labeled(descExportLost, prometheus.CounterValue, xs.DroppedSpool, "spool")
		counter(descExportOverflows, xs.Overflows)
		gauge(descExportUnacked, xs.LastSeq-min(xs.AckedThrough, xs.LastSeq))
		gauge(descExportSpool, uint64(max(xs.SpoolBytes, 0)))
		connected := uint64(0)
		if xs.Connected {
			connected = 1
		}
		gauge(descExportConnected, connected)
	}
}
