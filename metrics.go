package main

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/passflow/passflow/guard"
)

// metrics are the server's Prometheus metrics, on a registry of its own;
// every name starts with passflow_.
type metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	logins    *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	mail      *prometheus.CounterVec
	hashQueue prometheus.GaugeFunc
}

// newMetrics registers the metrics; queued reports how many logins wait
// for a hashing slot.
func newMetrics(queued func() int) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passflow_http_requests_total",
			Help: "HTTP requests, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "passflow_http_request_duration_seconds",
			Help:    "HTTP request latency, by route template, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "status"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passflow_logins_total",
			Help: "Password logins by outcome: success, bad_credentials, throttled, disabled, overloaded, rejected.",
		}, []string{"outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passflow_token_verification_failures_total",
			Help: "Bearer tokens refused, by reason.",
		}, []string{"reason"}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passflow_mail_total",
			Help: "Mails by event: queued, sent, dropped (no account or address to send to), retry (an attempt failed), failed (given up).",
		}, []string{"event"}),
		hashQueue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "passflow_hash_queue_depth",
			Help: "Logins waiting for a password hashing slot.",
		}, func() float64 { return float64(queued()) }),
	}
	m.registry.MustRegister(m.requests, m.latency, m.logins, m.rejected, m.mail, m.hashQueue)
	// The runtime's and the process's own metrics, under the same prefix.
	prometheus.WrapRegistererWithPrefix("passflow_", m.registry).MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves the metrics in Prometheus's text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// middleware counts and times every request by its route template, never
// by its raw path. Every label comes from a fixed set: the routes
// registered (or "unmatched"), the methods guard.Method names (or "other"),
// and the status codes the server answers with.
func (m *metrics) middleware() gin.HandlerFunc {
	// The series of each (route, method, status), looked up once: the
	// label lookup of a vector hashes every label on every call.
	type key struct {
		route, method string
		status        int
	}
	type series struct {
		count   prometheus.Counter
		latency prometheus.Observer
	}
	var cache sync.Map // key → series
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		k := key{c.FullPath(), guard.Method(c.Request.Method), c.Writer.Status()}
		s, ok := cache.Load(k)
		if !ok {
			route := k.route
			if route == "" {
				route = "unmatched"
			}
			status := strconv.Itoa(k.status)
			s, _ = cache.LoadOrStore(k, series{
				count:   m.requests.WithLabelValues(route, k.method, status),
				latency: m.latency.WithLabelValues(route, k.method, status),
			})
		}
		s.(series).count.Inc()
		s.(series).latency.Observe(time.Since(start).Seconds())
	}
}
