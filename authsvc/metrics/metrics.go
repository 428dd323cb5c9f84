// Package metrics holds authsvc's Prometheus metrics. They are served only
// on the admin listener (loopback, admin credential), never on the public
// one. Labels carry route templates, status codes and outcome names: never an
// identity, a token or a client address.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"zsm.dev/zsm/authsvc/jwtcache"
	"zsm.dev/zsm/authsvc/store"
)

// Metrics is one registry of authsvc's metrics.
type Metrics struct {
	reg       *prometheus.Registry
	Requests  *prometheus.HistogramVec
	Logins    *prometheus.CounterVec
	Refreshes *prometheus.CounterVec
	Limited   *prometheus.CounterVec
	Reuse     prometheus.Counter
}

// New makes the metrics; keys reports the signing keys for their age gauge.
func New(keys func() []store.SigningKey) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "zsm_authsvc_request_duration_seconds",
			Help:    "Latency of authsvc's HTTP requests by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "status"}),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zsm_authsvc_logins_total",
			Help: "Login verifications by outcome (success, failed) and, for failures, reason.",
		}, []string{"outcome", "reason"}),
		Refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zsm_authsvc_refreshes_total",
			Help: "Refresh-token exchanges by outcome (success, refused).",
		}, []string{"outcome"}),
		Limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zsm_authsvc_rate_limited_total",
			Help: "Requests refused by a rate limit, by route.",
		}, []string{"route"}),
		Reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zsm_authsvc_refresh_token_reuse_total",
			Help: "Spent refresh tokens presented again (each revoked a session).",
		}),
	}
	m.reg.MustRegister(m.Requests, m.Logins, m.Refreshes, m.Limited, m.Reuse,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&keyAges{keys: keys, desc: prometheus.NewDesc("zsm_authsvc_signing_key_age_seconds",
			"Seconds since each published signing key was created, by state.", []string{"kid", "state"}, nil)})
	return m
}

// Evictor is what [Metrics.JWTCache] reads (*jwtcache.Evictor).
type Evictor interface {
	Stats() jwtcache.Stats
	Pending() int
}

// JWTCache exports the counts of authsvc's JWT cache evictor, read at each
// scrape.
func (m *Metrics) JWTCache(ev Evictor) {
	counter := func(name, help string, f func(jwtcache.Stats) int) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(ev.Stats())) })
	}
	m.reg.MustRegister(
		counter("zsm_authsvc_jwtcache_tokens_added_total", "Access tokens issued and queued for eviction from PostgREST's JWT cache.",
			func(c jwtcache.Stats) int { return c.Added }),
		counter("zsm_authsvc_jwtcache_evicted_total", "Expired access tokens replayed to PostgREST and refused by it (dropped from its cache).",
			func(c jwtcache.Stats) int { return c.Replayed }),
		counter("zsm_authsvc_jwtcache_failed_total", "Replays PostgREST did not refuse itself or that did not reach it (the token may stay cached).",
			func(c jwtcache.Stats) int { return c.Failed }),
		counter("zsm_authsvc_jwtcache_dropped_total", "Tokens dropped unevicted because the evictor's queue was full.",
			func(c jwtcache.Stats) int { return c.Dropped }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zsm_authsvc_jwtcache_tokens_pending", Help: "Access tokens waiting for their eviction replay."},
			func() float64 { return float64(ev.Pending()) }),
	)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Middleware times every request and counts outcomes of the login,
// refresh and rate-limit paths from the status they end with.
func (m *Metrics) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unknown"
		}
		status := c.Response().Status
		m.Requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
		switch {
		case status == http.StatusTooManyRequests:
			m.Limited.WithLabelValues(route).Inc()
		case route == "/auth/v1/login/verify" && status == http.StatusOK:
			m.Logins.WithLabelValues("success", "").Inc()
		case route == "/auth/v1/login/verify" && status == http.StatusUnauthorized:
			m.Logins.WithLabelValues("failed", "wrong_proof_or_expired").Inc()
		case route == "/auth/v1/login/verify" && status == http.StatusBadRequest:
			m.Logins.WithLabelValues("failed", "malformed").Inc()
		case route == "/auth/v1/token/refresh" && status == http.StatusOK:
			m.Refreshes.WithLabelValues("success").Inc()
		case route == "/auth/v1/token/refresh" && status == http.StatusUnauthorized:
			m.Refreshes.WithLabelValues("refused").Inc()
		}
		return nil
	}
}

type keyAges struct {
	keys func() []store.SigningKey
	desc *prometheus.Desc
}

func (k *keyAges) Describe(ch chan<- *prometheus.Desc) { ch <- k.desc }

func (k *keyAges) Collect(ch chan<- prometheus.Metric) {
	for _, key := range k.keys() {
		if key.State == store.KeyRemoved {
			continue
		}
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, time.Since(key.CreatedAt).Seconds(), key.KID, key.State)
	}
}
