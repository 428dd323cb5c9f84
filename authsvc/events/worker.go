// Package events is authsvc's background worker for data events: it
// delivers webhooks from the outbox the database's triggers fill
// (api.webhook_deliveries, written in the same transaction as each change),
// raises secret.rotation_due when a rotation policy falls due, and keeps the
// delivery log short.
//
// Every replica runs a Worker. They share the outbox without delivering a
// row twice at the same time: a row is claimed with FOR UPDATE SKIP LOCKED
// and leased (locked_until) for twice the delivery timeout, then delivered
// outside any transaction. A worker that dies mid-delivery leaves a lease
// that expires, and another replica delivers again, with the same event id:
// delivery is at least once, and receivers recognise repeats by
// X-Zsm-Event-Id. Failed deliveries are retried with exponential backoff and
// jitter up to MaxAttempts; a webhook whose deliveries keep failing
// (DisableAfter events in a row) is disabled and a webhook.disabled event
// recorded. Destinations pass netguard at every delivery. See
// docs/webhooks.md.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"zsm.dev/zsm/authsvc/config"
	"zsm.dev/zsm/authsvc/netguard"
	"zsm.dev/zsm/authsvc/store"
)

// Channel is the NOTIFY channel the fan-out trigger wakes workers with.
const Channel = "zsm_events"

// ResponseCap is how much of a receiver's answer is read; the rest is
// never read (the connection is closed).
const ResponseCap = 64 << 10

// Config of a Worker: the operator's settings, as authsvc/config read,
// defaulted and checked them (the one place the defaults live), and what
// only the process supplies.
type Config struct {
	config.Webhooks
	Resolver netguard.Resolver // nil: the system's
	Log      *slog.Logger
}

// connectTimeout bounds the TCP connect of a delivery: 5 s, or the whole
// delivery's timeout if that is shorter.
func (c Config) connectTimeout() time.Duration { return min(5*time.Second, c.Timeout) }

// check refuses settings that did not come through config.FromEnv: a
// worker with no slots or no timeout would hang.
func (c Config) check() error {
	if c.Timeout <= 0 || c.RetryBase <= 0 || c.RetryMax <= 0 || c.Poll <= 0 || c.Retention <= 0 ||
		c.MaxAttempts <= 0 || c.DisableAfter <= 0 || c.Concurrency <= 0 || c.Log == nil {
		return errors.New("events: the webhook settings are incomplete (read them with config.FromEnv)")
	}
	return nil
}

// Worker delivers events. Run it in every replica.
type Worker struct {
	pool   *pgxpool.Pool
	own    bool
	cfg    Config
	guard  *netguard.Guard
	client *http.Client
	wake   chan struct{}
	done   chan struct{} // closed when Run returns
	ran    atomic.Bool
}

// Open connects a pool of the worker's own (so deliveries never queue
// behind logins for connections) and returns the Worker.
func Open(ctx context.Context, dsn string, cfg Config) (*Worker, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("events: database URL cannot be parsed")
	}
	pc.MaxConns = int32(cfg.Concurrency + 3)
	pc.MaxConnIdleTime = time.Minute
	pc.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	w, err := New(pool, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	w.own = true
	return w, nil
}

// New returns a Worker on an existing pool.
func New(pool *pgxpool.Pool, cfg Config) (*Worker, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	g := &netguard.Guard{Allow: cfg.AllowNets, Resolver: cfg.Resolver, ConnectTimeout: cfg.connectTimeout()}
	tr := g.Transport()
	tr.ResponseHeaderTimeout = cfg.Timeout
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	return &Worker{
		pool: pool, cfg: cfg, guard: g, wake: make(chan struct{}, 1), done: make(chan struct{}),
		client: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect is an answer, not an instruction: it is not followed
			// (and so cannot lead past the URL checks).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func (w *Worker) lease() time.Duration { return 2 * w.cfg.Timeout }

// Run works until ctx ends. Deliveries run in Concurrency slots: a slow
// receiver holds one slot, not the others. When ctx ends, deliveries in
// flight are cut short and their rows given back; Run returns after that.
func (w *Worker) Run(ctx context.Context) {
	w.ran.Store(true)
	defer close(w.done)
	log := w.cfg.Log
	for delay := 250 * time.Millisecond; ctx.Err() == nil; delay = min(2*delay, 5*time.Second) {
		err := w.PublishPolicy(ctx)
		if err == nil {
			break
		}
		log.Warn("events: publishing the webhook URL policy failed; retrying", "err", err, "retry_in", delay.String())
		sleep(ctx, delay)
	}
	// NOTIFYs on Channel wake the loop (store.Listen reconnects after
	// errors and wakes it after each reconnect too).
	go store.Listen(ctx, w.pool, Channel, w.poke)
	slots := make(chan struct{}, w.cfg.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	var lastRotation, lastPrune time.Time
	for ctx.Err() == nil {
		if time.Since(lastRotation) >= w.cfg.Poll {
			if n, err := w.ScheduleRotations(ctx); err != nil {
				if ctx.Err() == nil {
					log.Warn("events: scheduling rotation reminders failed", "err", err)
				}
			} else {
				lastRotation = time.Now()
				if n > 0 {
					log.Info("events: rotation reminders raised", "count", n)
				}
			}
		}
		if time.Since(lastPrune) >= time.Hour {
			if _, err := w.Prune(ctx); err != nil && ctx.Err() == nil {
				log.Warn("events: pruning the delivery log failed", "err", err)
			} else {
				lastPrune = time.Now()
			}
		}
		free := cap(slots) - len(slots)
		claimed := 0
		if free > 0 {
			items, err := w.claim(ctx, free)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("events: claiming deliveries failed", "err", err)
				}
				sleep(ctx, w.cfg.Poll)
				continue
			}
			claimed = len(items)
			for _, it := range items {
				slots <- struct{}{}
				inflight.Go(func() {
					w.deliver(ctx, it)
					<-slots
					w.poke() // a slot is free: look again
				})
			}
			if claimed == free {
				continue // more may be due right away
			}
		}
		wait := w.cfg.Poll
		if free > 0 {
			if d, ok := w.nextDue(ctx); ok && d < wait {
				wait = max(d, 5*time.Millisecond)
			}
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-time.After(wait):
		}
	}
}

// Close releases the pool if the worker opened it, after Run (if it was
// started) has given back the rows it held.
func (w *Worker) Close() {
	if w.ran.Load() {
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
		}
	}
	if w.own {
		w.pool.Close()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (w *Worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// PublishPolicy writes the operator's URL rules where api.create_webhook()
// reads them.
func (w *Worker) PublishPolicy(ctx context.Context) error {
	nets := make([]string, len(w.cfg.AllowNets))
	for i, p := range w.cfg.AllowNets {
		nets[i] = p.String()
	}
	_, err := w.pool.Exec(ctx, `
		INSERT INTO auth.webhook_policy (singleton, allow_http, allow_nets) VALUES (true, $1, $2::text[]::cidr[])
		ON CONFLICT (singleton) DO UPDATE SET allow_http = EXCLUDED.allow_http, allow_nets = EXCLUDED.allow_nets`,
		w.cfg.AllowHTTP, nets)
	return err
}

// nextDue is how long until the earliest pending delivery may be tried.
func (w *Worker) nextDue(ctx context.Context) (time.Duration, bool) {
	var secs *float64
	err := w.pool.QueryRow(ctx, `
		SELECT extract(epoch FROM min(greatest(next_attempt_at, coalesce(locked_until, next_attempt_at))) - clock_timestamp())::float8
		  FROM api.webhook_deliveries WHERE state = 'pending'`).Scan(&secs)
	if err != nil || secs == nil {
		return 0, false
	}
	return time.Duration(*secs * float64(time.Second)), true
}

// ScheduleRotations raises secret.rotation_due once for each policy whose
// due time has come and was not announced yet. Replicas may run it at the
// same time: each row is taken by one of them (SKIP LOCKED), and a row
// another replica just announced no longer qualifies.
func (w *Worker) ScheduleRotations(ctx context.Context) (int, error) {
	tag, err := w.pool.Exec(ctx, `
		WITH due AS (
			SELECT p.secret_id FROM api.rotation_policies p
			 WHERE p.next_due_at <= clock_timestamp()
			   AND (p.last_notified_due_at IS NULL OR p.last_notified_due_at < p.next_due_at)
			 ORDER BY p.next_due_at
			 LIMIT 500
			 FOR UPDATE SKIP LOCKED
		), marked AS (
			UPDATE api.rotation_policies p SET last_notified_due_at = p.next_due_at
			  FROM due WHERE p.secret_id = due.secret_id
			RETURNING p.secret_id, p.vault_id, p.revision, p.next_due_at
		)
		INSERT INTO api.vault_events (vault_id, type, secret_id, revision, due_at)
		SELECT vault_id, 'secret.rotation_due', secret_id, revision, next_due_at FROM marked`)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// Prune deletes finished deliveries (and their attempts) older than the
// retention. The events themselves stay: they are the audit trail.
func (w *Worker) Prune(ctx context.Context) (int, error) {
	tag, err := w.pool.Exec(ctx, `
		DELETE FROM api.webhook_deliveries WHERE id IN (
			SELECT id FROM api.webhook_deliveries
			 WHERE state <> 'pending' AND created_at < clock_timestamp() - make_interval(secs => $1)
			 LIMIT 10000)`, w.cfg.Retention.Seconds())
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// Payload is the JSON body of a delivery: ids, type, revision, actor and
// time. Nothing a client encrypted is ever in it.
type Payload struct {
	ID          string     `json:"id"`
	Type        string     `json:"type"`
	CreatedAt   time.Time  `json:"created_at"`
	VaultID     string     `json:"vault_id"`
	SecretID    string     `json:"secret_id,omitempty"`
	Revision    *int64     `json:"revision,omitempty"`
	ActorID     string     `json:"actor_user_id,omitempty"`
	MemberID    string     `json:"member_user_id,omitempty"`
	Role        string     `json:"role,omitempty"`
	WebhookID   string     `json:"webhook_id,omitempty"`
	DueAt       *time.Time `json:"due_at,omitempty"`
	Attempt     int        `json:"-"`
	deliveryID  int64
	hookID      string
	url, secret string
	hookEnabled bool
}

// DeliverBatch claims up to Concurrency due deliveries, delivers them in
// parallel and records the outcomes. It returns how many it claimed. (Run
// does the same continuously; this is one round of it.)
func (w *Worker) DeliverBatch(ctx context.Context) (int, error) {
	items, err := w.claim(ctx, w.cfg.Concurrency)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() { w.deliver(ctx, it) })
	}
	wg.Wait()
	return len(items), nil
}

// claim leases up to n due deliveries (FOR UPDATE SKIP LOCKED: replicas
// never claim the same row) and returns them with their webhook and event.
func (w *Worker) claim(ctx context.Context, n int) ([]Payload, error) {
	rows, err := w.pool.Query(ctx, `
		WITH c AS (
			SELECT d.id FROM api.webhook_deliveries d
			 WHERE d.state = 'pending' AND d.next_attempt_at <= clock_timestamp()
			   AND (d.locked_until IS NULL OR d.locked_until <= clock_timestamp())
			 ORDER BY d.next_attempt_at
			 LIMIT $1
			 FOR UPDATE SKIP LOCKED
		), u AS (
			UPDATE api.webhook_deliveries d
			   SET locked_until = clock_timestamp() + make_interval(secs => $2), attempts = d.attempts + 1
			  FROM c WHERE d.id = c.id
			RETURNING d.id, d.webhook_id, d.event_id, d.attempts
		)
		SELECT u.id, u.attempts, w.id::text, w.url, w.signing_secret, w.enabled,
		       e.id::text, e.type, e.created_at, e.vault_id::text, coalesce(e.secret_id::text, ''), e.revision,
		       coalesce(e.actor_id::text, ''), coalesce(e.member_id::text, ''), coalesce(e.role, ''),
		       coalesce(e.webhook_id::text, ''), e.due_at
		  FROM u JOIN api.webhooks w ON w.id = u.webhook_id JOIN api.vault_events e ON e.id = u.event_id`,
		n, w.lease().Seconds())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Payload, error) {
		var p Payload
		err := r.Scan(&p.deliveryID, &p.Attempt, &p.hookID, &p.url, &p.secret, &p.hookEnabled,
			&p.ID, &p.Type, &p.CreatedAt, &p.VaultID, &p.SecretID, &p.Revision, &p.ActorID, &p.MemberID, &p.Role,
			&p.WebhookID, &p.DueAt)
		return p, err
	})
}

// outcome of one attempt.
type outcome struct {
	status   int
	err      string
	started  time.Time
	duration time.Duration
}

func (o outcome) ok() bool { return o.err == "" && o.status >= 200 && o.status < 300 }

func (w *Worker) deliver(ctx context.Context, p Payload) {
	if !p.hookEnabled {
		w.finish(ctx, p, `UPDATE api.webhook_deliveries SET state = 'cancelled', locked_until = NULL, last_error = 'the webhook is disabled'
			WHERE id = $1 AND state = 'pending'`)
		return
	}
	p.CreatedAt = p.CreatedAt.UTC()
	if p.DueAt != nil {
		t := p.DueAt.UTC()
		p.DueAt = &t
	}
	body, err := json.Marshal(p)
	if err != nil {
		w.cfg.Log.Error("events: encoding a payload failed", "err", err)
		return
	}
	o := w.post(ctx, p, body)
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short by us, not by the
		// receiver. Give the row back at once rather than wait for the lease.
		w.finish(context.Background(), p, `UPDATE api.webhook_deliveries SET locked_until = NULL, attempts = greatest(attempts - 1, 0)
			WHERE id = $1 AND state = 'pending'`)
		return
	}
	if err := w.record(ctx, p, o); err != nil {
		w.cfg.Log.Warn("events: recording a delivery failed; its lease will expire and it will be retried",
			"err", err, "event_id", p.ID, "webhook_id", p.hookID)
	}
}

func (w *Worker) finish(ctx context.Context, p Payload, q string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := w.pool.Exec(ctx, q, p.deliveryID); err != nil {
		w.cfg.Log.Warn("events: updating a delivery failed", "err", err, "event_id", p.ID)
	}
}

// post sends one attempt: the URL is checked again, the connection goes
// only to addresses the guard allows, the whole exchange is bounded by the
// timeout, and at most ResponseCap bytes of the answer are read.
func (w *Worker) post(ctx context.Context, p Payload, body []byte) outcome {
	o := outcome{started: time.Now()}
	defer func() { o.duration = time.Since(o.started) }()
	u, err := w.guard.CheckURL(p.url, w.cfg.AllowHTTP)
	if err != nil {
		o.err = err.Error()
		o.duration = time.Since(o.started)
		return o
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		o.err = err.Error()
		o.duration = time.Since(o.started)
		return o
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "zsm-webhooks/1")
	req.Header.Set(HeaderEventID, p.ID)
	req.Header.Set(HeaderEventType, p.Type)
	req.Header.Set(HeaderWebhookID, p.hookID)
	req.Header.Set(HeaderAttempt, strconv.Itoa(p.Attempt))
	req.Header.Set(HeaderSignature, Sign(p.secret, now, body))
	resp, err := w.client.Do(req)
	if err != nil {
		o.err = trim(err.Error())
		o.duration = time.Since(o.started)
		return o
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, ResponseCap))
	resp.Body.Close()
	o.status = resp.StatusCode
	o.duration = time.Since(o.started)
	return o
}

func trim(s string) string {
	if len(s) > 500 {
		return s[:500]
	}
	return s
}

// Backoff is the delay before attempt n+1 after n failed attempts:
// base·2^(n−1), capped, times a jitter factor in [0.8, 1.2).
func Backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// record writes the attempt to the log and moves the delivery on:
// delivered; or due again after the backoff; or, out of attempts, failed —
// and the webhook disabled when that makes DisableAfter failures in a row.
func (w *Worker) record(ctx context.Context, p Payload, o outcome) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var status *int
	if o.status != 0 {
		status = &o.status
	}
	errText := o.err
	if errText == "" && !o.ok() {
		errText = fmt.Sprintf("HTTP %d", o.status)
	}
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		// Lock order: the webhook row before its delivery rows, the order in
		// which deleting a webhook takes them (the row, then the cascade).
		// The other order deadlocks against a concurrent DELETE. KEY SHARE
		// does not block other deliveries to the same webhook, nor the
		// counter updates below; it only makes a DELETE wait for this commit.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM api.webhooks WHERE id = $1 FOR KEY SHARE`, p.hookID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // deleted meanwhile, with its deliveries
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO api.webhook_attempts (delivery_id, webhook_id, vault_id, event_id, attempt, started_at, duration_ms, status, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, nullif($9, ''))`,
			p.deliveryID, p.hookID, p.VaultID, p.ID, p.Attempt, o.started, int(o.duration/time.Millisecond), status, errText); err != nil {
			return err
		}
		if o.ok() {
			if _, err := tx.Exec(ctx, `
				UPDATE api.webhook_deliveries SET state = 'delivered', delivered_at = clock_timestamp(), locked_until = NULL,
				       last_status = $2, last_error = NULL
				 WHERE id = $1 AND state = 'pending'`, p.deliveryID, o.status); err != nil {
				return err
			}
			// Only when there is something to change, so that concurrent
			// deliveries to one webhook do not queue on its row.
			_, err := tx.Exec(ctx, `
				UPDATE api.webhooks SET consecutive_failures = 0, last_success_at = clock_timestamp()
				 WHERE id = $1 AND (consecutive_failures <> 0 OR last_success_at IS NULL OR last_success_at < clock_timestamp() - interval '1 second')`,
				p.hookID)
			return err
		}
		if p.Attempt < w.cfg.MaxAttempts {
			delay := Backoff(w.cfg.RetryBase, w.cfg.RetryMax, p.Attempt)
			_, err := tx.Exec(ctx, `
				UPDATE api.webhook_deliveries SET next_attempt_at = clock_timestamp() + make_interval(secs => $2),
				       locked_until = NULL, last_status = $3, last_error = $4
				 WHERE id = $1 AND state = 'pending'`, p.deliveryID, delay.Seconds(), status, errText)
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE api.webhook_deliveries SET state = 'failed', locked_until = NULL, last_status = $2, last_error = $3
			 WHERE id = $1 AND state = 'pending'`, p.deliveryID, status, errText)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		var failures int
		var enabled bool
		err = tx.QueryRow(ctx, `
			UPDATE api.webhooks SET consecutive_failures = consecutive_failures + 1, last_failure_at = clock_timestamp()
			 WHERE id = $1 RETURNING consecutive_failures, enabled`, p.hookID).Scan(&failures, &enabled)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // deleted meanwhile
		}
		if err != nil || !enabled || failures < w.cfg.DisableAfter {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE api.webhooks SET enabled = false, disabled_at = clock_timestamp(), disabled_reason = 'failing'
			 WHERE id = $1 AND enabled`, p.hookID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE api.webhook_deliveries SET state = 'cancelled', locked_until = NULL, last_error = 'the webhook was disabled'
			 WHERE webhook_id = $1 AND state = 'pending'`, p.hookID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO api.vault_events (vault_id, type, webhook_id) VALUES ($1, 'webhook.disabled', $2)`,
			p.VaultID, p.hookID)
		if err == nil {
			w.cfg.Log.Warn("events: webhook disabled after repeated failures", "webhook_id", p.hookID, "failed_events", failures)
		}
		return err
	})
}
