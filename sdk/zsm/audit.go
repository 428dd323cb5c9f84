package zsm

// The audit trail of a vault's data: who created, changed, rotated or
// deleted which secret, who joined or left, when. (Not from which session:
// the server shows session ids to nobody but their own user, in the
// account's audit log.)
// The server records ids only; names are decrypted here where this device
// can (a deleted secret's name is gone with its ciphertext).

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// VaultEvent is one entry of a vault's audit trail.
type VaultEvent struct {
	ID         uuid.UUID // the event id (X-Zsm-Event-Id of its webhook deliveries)
	Seq        int64     // order of recording
	Type       string    // Event… constants
	At         time.Time
	VaultID    uuid.UUID
	SecretID   uuid.UUID // uuid.Nil when the event is not about a secret
	SecretName string    // decrypted here; "" when unknown (e.g. deleted since)
	Revision   uint64    // 0 when not about a revision
	ActorID    uuid.UUID // uuid.Nil for the server's own events (rotation_due, webhook.disabled)
	MemberID   uuid.UUID // member.*
	Role       string    // member.*
	WebhookID  uuid.UUID // webhook.*
	DueAt      *time.Time
}

type vaultEventRow struct {
	ID        uuid.UUID  `json:"id"`
	Seq       int64      `json:"seq"`
	Type      string     `json:"type"`
	CreatedAt time.Time  `json:"created_at"`
	VaultID   uuid.UUID  `json:"vault_id"`
	SecretID  *uuid.UUID `json:"secret_id"`
	Revision  *uint64    `json:"revision"`
	ActorID   *uuid.UUID `json:"actor_id"`
	MemberID  *uuid.UUID `json:"member_id"`
	Role      *string    `json:"role"`
	WebhookID *uuid.UUID `json:"webhook_id"`
	DueAt     *time.Time `json:"due_at"`
}

// AuditOptions narrow AuditTrail.
type AuditOptions struct {
	Limit  int       // newest first, at most this many (0: 100; at most 1000)
	Since  time.Time // only events at or after
	Before int64     // only events with Seq < Before (paging); 0: no bound
	Types  []string  // only these types
	Secret string    // only events about the secret of this name
}

// AuditTrail returns a vault's events, newest first. Every member of the
// vault may read it; nobody can change it.
func (c *Client) AuditTrail(ctx context.Context, v Vault, opt AuditOptions) ([]VaultEvent, error) {
	limit := opt.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, pageSize)
	names := map[uuid.UUID]string{}
	all, err := c.Secrets(ctx, v)
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		names[s.ID] = s.Name
	}
	q := "/vault_events?select=id,seq,type,created_at,vault_id,secret_id,revision,actor_id,member_id,role,webhook_id,due_at" +
		"&vault_id=eq." + v.ID.String() + "&order=seq.desc&limit=" + strconv.Itoa(limit)
	if !opt.Since.IsZero() {
		q += "&created_at=gte." + url.QueryEscape(opt.Since.UTC().Format(time.RFC3339Nano))
	}
	if opt.Before > 0 {
		q += "&seq=lt." + strconv.FormatInt(opt.Before, 10)
	}
	if len(opt.Types) > 0 {
		for _, t := range opt.Types {
			if !contains(WebhookEventTypes, t) && t != EventWebhookTest {
				return nil, fmt.Errorf("unknown event type %q", t)
			}
		}
		q += "&type=in.(" + strings.Join(opt.Types, ",") + ")"
	}
	if opt.Secret != "" {
		id := uuid.Nil
		for sid, n := range names {
			if n == opt.Secret {
				id = sid
			}
		}
		if id == uuid.Nil {
			return nil, fmt.Errorf("secret %q in vault %q: %w", opt.Secret, v.Name, ErrNotFound)
		}
		q += "&secret_id=eq." + id.String()
	}
	var rows []vaultEventRow
	if err := c.rest(ctx, "GET", q, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]VaultEvent, 0, len(rows))
	for _, r := range rows {
		if r.VaultID != v.ID {
			return nil, tamper("the server listed another vault's event", nil)
		}
		e := VaultEvent{ID: r.ID, Seq: r.Seq, Type: r.Type, At: r.CreatedAt, VaultID: r.VaultID, DueAt: r.DueAt}
		if r.SecretID != nil {
			e.SecretID = *r.SecretID
			e.SecretName = names[e.SecretID]
		}
		if r.Revision != nil {
			e.Revision = *r.Revision
		}
		if r.ActorID != nil {
			e.ActorID = *r.ActorID
		}
		if r.MemberID != nil {
			e.MemberID = *r.MemberID
		}
		if r.Role != nil {
			e.Role = *r.Role
		}
		if r.WebhookID != nil {
			e.WebhookID = *r.WebhookID
		}
		out = append(out, e)
	}
	return out, nil
}
