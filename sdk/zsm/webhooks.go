package zsm

// Webhooks: the server tells an HTTPS endpoint of the vault's admins about
// data events (ids, types, revisions, actors, times; never ciphertext or
// plaintext), signed with HMAC-SHA256 under a secret shown once, at
// creation. See docs/webhooks.md.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Event types.
const (
	EventSecretCreated     = "secret.created"
	EventSecretUpdated     = "secret.updated"
	EventSecretDeleted     = "secret.deleted"
	EventSecretRotationDue = "secret.rotation_due"
	EventSecretRotated     = "secret.rotated"
	EventMemberAdded       = "member.added"
	EventMemberRemoved     = "member.removed"
	EventWebhookDisabled   = "webhook.disabled"
	// A machine token got a grant in the vault, and was revoked by its
	// owner while it held one.
	EventTokenCreated = "token.created"
	EventTokenRevoked = "token.revoked"
	// EventWebhookTest goes only to the webhook TestWebhook names; it cannot
	// be subscribed to.
	EventWebhookTest = "webhook.test"
)

// WebhookEventTypes are the types a webhook may subscribe to.
var WebhookEventTypes = []string{
	EventSecretCreated, EventSecretUpdated, EventSecretDeleted, EventSecretRotationDue, EventSecretRotated,
	EventMemberAdded, EventMemberRemoved, EventWebhookDisabled, EventTokenCreated, EventTokenRevoked,
}

// Webhook is one endpoint of a vault.
type Webhook struct {
	ID      uuid.UUID
	VaultID uuid.UUID
	URL     string
	Events  []string // nil: every type
	Enabled bool
	// DisabledReason is "failing" (the server gave up on it) or "by_user".
	DisabledReason      string
	DisabledAt          *time.Time
	ConsecutiveFailures int
	LastSuccessAt       *time.Time
	LastFailureAt       *time.Time
	CreatedBy           uuid.UUID
	CreatedAt           time.Time
}

type webhookRow struct {
	ID                  uuid.UUID  `json:"id"`
	VaultID             uuid.UUID  `json:"vault_id"`
	URL                 string     `json:"url"`
	EventTypes          []string   `json:"event_types"`
	Enabled             bool       `json:"enabled"`
	DisabledAt          *time.Time `json:"disabled_at"`
	DisabledReason      *string    `json:"disabled_reason"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	LastFailureAt       *time.Time `json:"last_failure_at"`
	CreatedBy           uuid.UUID  `json:"created_by"`
	CreatedAt           time.Time  `json:"created_at"`
}

const webhookSelect = "id,vault_id,url,event_types,enabled,disabled_at,disabled_reason,consecutive_failures,last_success_at,last_failure_at,created_by,created_at"

func (r webhookRow) webhook() Webhook {
	w := Webhook{
		ID: r.ID, VaultID: r.VaultID, URL: r.URL, Events: r.EventTypes, Enabled: r.Enabled, DisabledAt: r.DisabledAt,
		ConsecutiveFailures: r.ConsecutiveFailures, LastSuccessAt: r.LastSuccessAt, LastFailureAt: r.LastFailureAt,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt,
	}
	if r.DisabledReason != nil {
		w.DisabledReason = *r.DisabledReason
	}
	return w
}

// ValidWebhookURL checks what the client can: an http(s) URL with a host
// and no credentials. The server checks again, with its operator's rules
// (https only unless allowed; no loopback, private or link-local address).
func ValidWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(raw) > 2048 {
		return fmt.Errorf("webhook URL %q: use https://host[:port]/path, without credentials", raw)
	}
	return nil
}

// AddWebhook creates a webhook for the vault (owners and admins only) and
// returns it with its signing secret. The secret is shown this once: the
// server never returns it again. events nil or empty means every type.
func (c *Client) AddWebhook(ctx context.Context, v Vault, rawURL string, events []string) (Webhook, string, error) {
	if err := ValidWebhookURL(rawURL); err != nil {
		return Webhook{}, "", err
	}
	for _, e := range events {
		if !contains(WebhookEventTypes, e) {
			return Webhook{}, "", fmt.Errorf("unknown event type %q (known: %s)", e, strings.Join(WebhookEventTypes, ", "))
		}
	}
	body := map[string]any{"vault_id": v.ID, "url": rawURL, "event_types": events}
	if len(events) == 0 {
		body["event_types"] = nil
	}
	var created struct {
		ID            uuid.UUID `json:"id"`
		SigningSecret string    `json:"signing_secret"`
	}
	if err := c.rest(ctx, "POST", "/rpc/create_webhook", body, &created); err != nil {
		return Webhook{}, "", webhookError(err)
	}
	if created.ID == uuid.Nil || !strings.HasPrefix(created.SigningSecret, "whsec_") {
		return Webhook{}, "", tamper("malformed answer to create_webhook", nil)
	}
	w, err := c.webhook(ctx, v, created.ID)
	if err != nil {
		return Webhook{}, "", err
	}
	return w, created.SigningSecret, nil
}

// webhookError turns the server's refusals into readable errors.
func webhookError(err error) error {
	var re *restError
	if errors.As(err, &re) {
		switch {
		case re.Status == 403:
			return fmt.Errorf("only owners and admins of the vault may manage its webhooks: %w", err)
		case re.Status == 400 && re.Code == "22023":
			return fmt.Errorf("%s: %w", re.Message, err)
		}
	}
	return err
}

func (c *Client) webhook(ctx context.Context, v Vault, id uuid.UUID) (Webhook, error) {
	var rows []webhookRow
	if err := c.rest(ctx, "GET", "/webhooks?select="+webhookSelect+"&id=eq."+id.String(), nil, &rows); err != nil {
		return Webhook{}, err
	}
	if len(rows) != 1 {
		return Webhook{}, fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	}
	if rows[0].VaultID != v.ID {
		return Webhook{}, tamper("the webhook belongs to another vault", nil)
	}
	return rows[0].webhook(), nil
}

// ListWebhooks lists the vault's webhooks (owners and admins see them; for
// others the list is empty).
func (c *Client) ListWebhooks(ctx context.Context, v Vault) ([]Webhook, error) {
	var rows []webhookRow
	if err := c.rest(ctx, "GET", "/webhooks?select="+webhookSelect+"&vault_id=eq."+v.ID.String()+"&order=created_at,id", nil, &rows); err != nil {
		return nil, err
	}
	out := make([]Webhook, 0, len(rows))
	for _, r := range rows {
		if r.VaultID != v.ID {
			return nil, tamper("the server listed another vault's webhook", nil)
		}
		out = append(out, r.webhook())
	}
	return out, nil
}

// RemoveWebhook deletes a webhook and its delivery log (the events stay in
// the audit trail).
func (c *Client) RemoveWebhook(ctx context.Context, v Vault, id uuid.UUID) error {
	var rows []webhookRow
	if err := c.rest(ctx, "DELETE", "/webhooks?select=id&id=eq."+id.String()+"&vault_id=eq."+v.ID.String(), nil, &rows,
		"Prefer", "return=representation"); err != nil {
		return webhookError(err)
	}
	if len(rows) != 1 {
		return fmt.Errorf("webhook %s in vault %q: %w (or this account may not manage it)", id, v.Name, ErrNotFound)
	}
	return nil
}

// SetWebhookEnabled switches a webhook on or off. Switching on a webhook
// the server disabled after failures clears its failure count.
func (c *Client) SetWebhookEnabled(ctx context.Context, v Vault, id uuid.UUID, enabled bool) (Webhook, error) {
	var rows []webhookRow
	if err := c.rest(ctx, "PATCH", "/webhooks?select="+webhookSelect+"&id=eq."+id.String()+"&vault_id=eq."+v.ID.String(),
		map[string]any{"enabled": enabled}, &rows, "Prefer", "return=representation"); err != nil {
		return Webhook{}, webhookError(err)
	}
	if len(rows) != 1 {
		return Webhook{}, fmt.Errorf("webhook %s in vault %q: %w (or this account may not manage it)", id, v.Name, ErrNotFound)
	}
	return rows[0].webhook(), nil
}

// TestWebhook sends a webhook.test event to the webhook and returns the
// event's id (the X-Zsm-Event-Id the endpoint will see).
func (c *Client) TestWebhook(ctx context.Context, v Vault, id uuid.UUID) (uuid.UUID, error) {
	if _, err := c.webhook(ctx, v, id); err != nil {
		return uuid.Nil, err
	}
	var eid uuid.UUID
	if err := c.rest(ctx, "POST", "/rpc/test_webhook", map[string]any{"webhook_id": id}, &eid); err != nil {
		return uuid.Nil, webhookError(err)
	}
	return eid, nil
}

// WebhookDelivery is one event's delivery to one webhook.
type WebhookDelivery struct {
	ID            int64      `json:"id"`
	WebhookID     uuid.UUID  `json:"webhook_id"`
	EventID       uuid.UUID  `json:"event_id"`
	EventType     string     `json:"event_type"`
	State         string     `json:"state"` // pending, delivered, failed, cancelled
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastStatus    *int       `json:"last_status"`
	LastError     *string    `json:"last_error"`
	CreatedAt     time.Time  `json:"created_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
}

// WebhookAttempt is one HTTP attempt of a delivery.
type WebhookAttempt struct {
	DeliveryID int64     `json:"delivery_id"`
	EventID    uuid.UUID `json:"event_id"`
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int       `json:"duration_ms"`
	Status     *int      `json:"status"`
	Error      *string   `json:"error"`
}

// WebhookDeliveries returns the newest deliveries of a webhook (at most
// limit; 0 means 50).
func (c *Client) WebhookDeliveries(ctx context.Context, v Vault, id uuid.UUID, limit int) ([]WebhookDelivery, error) {
	if limit <= 0 || limit > pageSize {
		limit = 50
	}
	var out []WebhookDelivery
	err := c.rest(ctx, "GET", "/webhook_deliveries?select=id,webhook_id,event_id,event_type,state,attempts,next_attempt_at,last_status,last_error,created_at,delivered_at"+
		"&webhook_id=eq."+id.String()+"&vault_id=eq."+v.ID.String()+"&order=id.desc&limit="+strconv.Itoa(limit), nil, &out)
	return out, err
}

// WebhookAttempts returns every attempt of one delivery, oldest first.
func (c *Client) WebhookAttempts(ctx context.Context, v Vault, deliveryID int64) ([]WebhookAttempt, error) {
	var out []WebhookAttempt
	err := c.rest(ctx, "GET", "/webhook_attempts?select=delivery_id,event_id,attempt,started_at,duration_ms,status,error"+
		"&delivery_id=eq."+strconv.FormatInt(deliveryID, 10)+"&vault_id=eq."+v.ID.String()+"&order=attempt", nil, &out)
	return out, err
}

// WebhookEvent is the JSON body of a delivery.
type WebhookEvent struct {
	ID        uuid.UUID  `json:"id"`
	Type      string     `json:"type"`
	CreatedAt time.Time  `json:"created_at"`
	VaultID   uuid.UUID  `json:"vault_id"`
	SecretID  *uuid.UUID `json:"secret_id,omitempty"`
	Revision  *uint64    `json:"revision,omitempty"`
	ActorID   *uuid.UUID `json:"actor_user_id,omitempty"`
	MemberID  *uuid.UUID `json:"member_user_id,omitempty"`
	Role      string     `json:"role,omitempty"`
	WebhookID *uuid.UUID `json:"webhook_id,omitempty"`
	DueAt     *time.Time `json:"due_at,omitempty"`
}

// Errors of VerifyWebhook.
var (
	ErrWebhookSignature = errors.New("webhook signature does not verify")
	ErrWebhookStale     = errors.New("webhook signature timestamp is more than 5 minutes from now")
)

// WebhookTolerance is how far a delivery's timestamp may be from now.
const WebhookTolerance = 5 * time.Minute

// VerifyWebhook checks a delivery as a receiver must before believing it:
// header is X-Zsm-Signature ("t=<unix>,v1=<hex>"), body the raw request
// body, secret the webhook's signing secret. The timestamp must be within
// 5 minutes of now and an HMAC-SHA256 of "<t>.<body>" under the secret must
// equal a v1 value (compared in constant time). On success it returns the
// decoded event; use its ID to drop repeats.
func VerifyWebhook(secret, header string, body []byte, now time.Time) (WebhookEvent, error) {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return WebhookEvent{}, ErrWebhookSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return WebhookEvent{}, ErrWebhookStale
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	ok := false
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return WebhookEvent{}, ErrWebhookSignature
	}
	var e WebhookEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return WebhookEvent{}, fmt.Errorf("webhook body: %w", err)
	}
	return e, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
