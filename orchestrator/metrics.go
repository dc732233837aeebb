package orchestrator

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace"
)

// metrics are the orchestrator's Prometheus series observed as runs end.
// The series read from the database at scrape time are the collector's.
type metrics struct {
	duration *prometheus.HistogramVec
	rows     *prometheus.CounterVec
	attempts *prometheus.CounterVec
}

// newMetrics creates the series and registers them with reg, if not nil.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "millrace_run_duration_seconds",
			Help:    "Duration of run attempts executed by this process.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}, []string{"pipeline", "state"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_rows_loaded_total",
			Help: "Rows written by successful runs executed by this process.",
		}, []string{"pipeline"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_run_attempts_total",
			Help: "Run attempts executed by this process, by outcome.",
		}, []string{"pipeline", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.rows, m.attempts)
	}
	return m
}

// observe records one finished attempt.
func (m *metrics) observe(pipeline string, state millrace.State, d time.Duration, rows int64) {
	m.duration.WithLabelValues(pipeline, string(state)).Observe(d.Seconds())
	m.attempts.WithLabelValues(pipeline, string(state)).Inc()
	if state == millrace.StateSucceeded {
		m.rows.WithLabelValues(pipeline).Add(float64(rows))
	}
}

// collector reads the ledger and the queue at each scrape.
type collector struct {
	o           *Orchestrator
	partitions  *prometheus.Desc
	queueDepth  *prometheus.Desc
	late        *prometheus.Desc
	scrapeError *prometheus.Desc
}

// newCollector describes the series read from the database.
func newCollector(o *Orchestrator) *collector {
	return &collector{
		o: o,
		partitions: prometheus.NewDesc("millrace_partitions",
			"Pipeline partitions in the run ledger, by the state of their newest attempt.", []string{"pipeline", "state"}, nil),
		queueDepth: prometheus.NewDesc("millrace_queue_jobs",
			"Run jobs in the job queue, by River job state.", []string{"state"}, nil),
		late: prometheus.NewDesc("millrace_partitions_late",
			"Months of a pipeline that closed more than MILLRACE_LATE_AFTER ago and have not succeeded.", []string{"pipeline"}, nil),
		scrapeError: prometheus.NewDesc("millrace_scrape_error",
			"1 when the last scrape could not read the database.", nil, nil),
	}
}

// Describe sends the series descriptions.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.partitions
	ch <- c.queueDepth
	ch <- c.late
	ch <- c.scrapeError
}

// Collect reads the ledger and the queue.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0.0
	if err := c.collect(ctx, ch); err != nil {
		c.o.cfg.Logger.Warn("metrics scrape", "err", err)
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeError, prometheus.GaugeValue, failed)
}

// collect sends the series read from the database.
func (c *collector) collect(ctx context.Context, ch chan<- prometheus.Metric) error {
	counts, err := c.o.ledger.PartitionCounts(ctx)
	if err != nil {
		return err
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	for _, p := range c.o.set.List() {
		if !p.Monthly {
			continue
		}
		parts, err := c.o.Partitions(ctx, p.Name)
		if err != nil {
			return err
		}
		late := 0
		for _, part := range parts {
			if part.Late {
				late++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.late, prometheus.GaugeValue, float64(late), p.Name)
	}
	jobs, err := queuedRunJobs(ctx, c.o.w.Pool())
	if err != nil {
		return err
	}
	for state, n := range jobs {
		ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, n, state)
	}
	return nil
}
