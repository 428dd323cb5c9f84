package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/authsvc/events"
	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
)

// payloadKeys are every key a delivery body may have.
var payloadKeys = []string{"id", "type", "created_at", "vault_id", "secret_id", "revision", "actor_user_id",
	"member_user_id", "role", "webhook_id", "due_at"}

// Every kind of change arrives, signed, with ids that verify against the
// stored events; a tampered body fails; ids are unique; no body holds any
// ciphertext of the vault; the audit trail shows the same events to
// members, with names decrypted client-side.
func TestSignedEventsForEveryChange(t *testing.T) {
	ctx := context.Background()
	owner, other := newAccount(t), newAccount(t)
	v, err := owner.c.CreateVault(ctx, "events-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	hook, secret, err := owner.c.AddWebhook(ctx, v, rc.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !hook.Enabled || hook.URL != rc.url() || hook.Events != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("webhook %+v, secret %q", hook, secret)
	}

	s1, err := owner.c.CreateSecret(ctx, v, "DB_PASSWORD", "first-"+randHex(8))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.c.SetSecret(ctx, v, "DB_PASSWORD", "second-"+randHex(8)); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.c.Rotate(ctx, v, "DB_PASSWORD", func(old string) (string, error) { return "third-" + randHex(8), nil }); err != nil {
		t.Fatal(err)
	}
	gone, err := owner.c.CreateSecret(ctx, v, "TO_DELETE", "doomed-"+randHex(8))
	if err != nil {
		t.Fatal(err)
	}
	addMember(t, owner, v, other.id, "viewer")
	// The viewer reads the audit trail through PostgREST.
	code, body := other.rest(t, "GET", "/vault_events?select=type&vault_id=eq."+v.ID.String(), nil)
	if code != 200 || !strings.Contains(string(body), "secret.rotated") {
		t.Fatalf("member reads the audit trail: %d %s", code, body)
	}
	removeMember(t, owner, v, other.id)
	code, body = other.rest(t, "GET", "/vault_events?select=type&vault_id=eq."+v.ID.String(), nil)
	if code != 200 || string(body) != "[]" {
		t.Fatalf("former member reads the audit trail: %d %s", code, body)
	}
	// Every ciphertext the vault ever had, before some of it is deleted.
	conn := db(t)
	ciphertexts := func() []string {
		rows, err := conn.Query(ctx, `
			SELECT ciphertext FROM api.secret_versions WHERE vault_id = $1
			UNION SELECT ciphertext FROM api.secrets WHERE vault_id = $1
			UNION SELECT meta FROM api.vaults WHERE id = $1
			UNION SELECT sealed_key FROM api.access_policies WHERE vault_id = $1
			UNION SELECT signature FROM api.access_policies WHERE vault_id = $1`, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			out = append(out, s)
		}
		return out
	}
	stored := ciphertexts()
	if err := owner.c.DeleteSecret(ctx, v, "TO_DELETE"); err != nil {
		t.Fatal(err)
	}
	testID, err := owner.c.TestWebhook(ctx, v, hook.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored = append(stored, ciphertexts()...)

	want := []string{"secret.created", "secret.updated", "secret.rotated", "secret.created", "member.added",
		"member.removed", "secret.deleted", "webhook.test"}
	got := rc.wait(t, 15*time.Second, "every event", func(ds []delivery) bool { return len(ds) >= len(want) })
	time.Sleep(300 * time.Millisecond) // nothing more may come
	got = rc.all()
	var types []string
	seen := map[string]bool{}
	for _, d := range got {
		types = append(types, d.typ())
		if seen[d.id()] {
			t.Errorf("event %s delivered twice without a failure", d.id())
		}
		seen[d.id()] = true
	}
	slices.Sort(types)
	sortedWant := slices.Clone(want)
	slices.Sort(sortedWant)
	if !slices.Equal(types, sortedWant) {
		t.Fatalf("received %v, want %v", types, sortedWant)
	}

	// The same events are the audit trail: ids, types, vault, secret,
	// revision and actor match what the database recorded; the session is
	// the owner's.
	type row struct {
		typ                 string
		secret, actor, sess *uuid.UUID
		rev                 *int64
	}
	stored2 := map[string]row{}
	rows, err := conn.Query(ctx, `SELECT id::text, type, secret_id, actor_id, session_id, revision FROM api.vault_events WHERE vault_id = $1`, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.typ, &r.secret, &r.actor, &r.sess, &r.rev); err != nil {
			t.Fatal(err)
		}
		stored2[id] = r
	}
	rows.Close()
	ownerSession := uuid.MustParse(owner.c.Session().SessionID)
	for _, d := range got {
		if err := events.VerifySignature(secret, d.header.Get("X-Zsm-Signature"), d.body, time.Now(), 0); err != nil {
			t.Fatalf("%s: %v", d.typ(), err)
		}
		ev, err := zsm.VerifyWebhook(secret, d.header.Get("X-Zsm-Signature"), d.body, time.Now())
		if err != nil {
			t.Fatalf("%s (SDK): %v", d.typ(), err)
		}
		tampered := []byte(strings.Replace(string(d.body), `"type":"`, `"type":"x`, 1))
		if err := events.VerifySignature(secret, d.header.Get("X-Zsm-Signature"), tampered, time.Now(), 0); !errors.Is(err, events.ErrSignatureMismatch) {
			t.Fatalf("tampered %s body: %v", d.typ(), err)
		}
		if _, err := zsm.VerifyWebhook("whsec_"+strings.Repeat("0", 64), d.header.Get("X-Zsm-Signature"), d.body, time.Now()); !errors.Is(err, zsm.ErrWebhookSignature) {
			t.Fatalf("wrong secret: %v", err)
		}
		if ev.ID.String() != d.id() || ev.Type != d.typ() || ev.VaultID != v.ID {
			t.Fatalf("body %s does not match headers %v", d.body, d.header)
		}
		r, ok := stored2[d.id()]
		if !ok || r.typ != ev.Type {
			t.Fatalf("delivered event %s (%s) is not the recorded one", d.id(), d.typ())
		}
		if (r.secret == nil) != (ev.SecretID == nil) || (r.secret != nil && *r.secret != *ev.SecretID) {
			t.Fatalf("%s: secret id %v, recorded %v", d.typ(), ev.SecretID, r.secret)
		}
		if ev.ActorID == nil || *ev.ActorID != owner.id || r.sess == nil || *r.sess != ownerSession {
			t.Fatalf("%s: actor %v session %v, want %s and %s", d.typ(), ev.ActorID, r.sess, owner.id, ownerSession)
		}
		for k := range d.event() {
			if !slices.Contains(payloadKeys, k) {
				t.Fatalf("payload key %q in %s", k, d.body)
			}
		}
		for _, ct := range stored {
			mid := ct[len(ct)/2 : min(len(ct), len(ct)/2+24)]
			if strings.Contains(string(d.body), ct) || (len(mid) >= 16 && strings.Contains(string(d.body), mid)) {
				t.Fatalf("payload of %s contains stored ciphertext: %s", d.typ(), d.body)
			}
		}
		if d.header.Get("X-Zsm-Webhook-Id") != hook.ID.String() || d.header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", d.header)
		}
		switch d.typ() {
		case "secret.rotated":
			if *ev.Revision != 3 || *ev.SecretID != s1.ID {
				t.Fatalf("rotated: %s", d.body)
			}
		case "member.added", "member.removed":
			if ev.MemberID == nil || *ev.MemberID != other.id || ev.Role != "viewer" {
				t.Fatalf("%s: %s", d.typ(), d.body)
			}
		case "secret.deleted":
			if *ev.SecretID != gone.ID {
				t.Fatalf("deleted: %s", d.body)
			}
		case "webhook.test":
			if ev.ID != testID || ev.WebhookID == nil || *ev.WebhookID != hook.ID {
				t.Fatalf("test: %s (want id %s)", d.body, testID)
			}
		}
	}

	// The SDK's audit trail: newest first, names decrypted where the
	// secret still exists.
	trail, err := owner.c.AuditTrail(ctx, v, zsm.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != len(want)+1 { // + the owner's own grant at creation
		t.Fatalf("audit trail has %d events, want %d", len(trail), len(want)+1)
	}
	for i := 1; i < len(trail); i++ {
		if trail[i].Seq >= trail[i-1].Seq {
			t.Fatal("audit trail is not newest first")
		}
	}
	for _, e := range trail {
		if e.SecretID == s1.ID && e.SecretName != "DB_PASSWORD" {
			t.Fatalf("event %s: name %q", e.Type, e.SecretName)
		}
		if e.SecretID == gone.ID && e.SecretName != "" {
			t.Fatalf("deleted secret named %q", e.SecretName)
		}
	}
	only, err := owner.c.AuditTrail(ctx, v, zsm.AuditOptions{Secret: "DB_PASSWORD"})
	if err != nil || len(only) != 3 || only[0].Type != "secret.rotated" || only[0].Revision != 3 {
		t.Fatalf("trail of one secret: %+v %v", only, err)
	}
	// Delivery log: every delivery delivered at the first attempt.
	log, err := owner.c.WebhookDeliveries(ctx, v, hook.ID, 0)
	if err != nil || len(log) != len(want) {
		t.Fatalf("delivery log: %d rows, %v", len(log), err)
	}
	for _, d := range log {
		if d.State != "delivered" || d.Attempts != 1 || d.LastStatus == nil || *d.LastStatus != 204 {
			t.Fatalf("delivery %+v", d)
		}
	}
}

// Only owners and admins of the vault manage its webhooks; the signing
// secret is never readable after creation; URLs are checked.
func TestWebhooksManagedOnlyByVaultAdmins(t *testing.T) {
	ctx := context.Background()
	owner, other := newAccount(t), newAccount(t)
	v, err := owner.c.CreateVault(ctx, "admins-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	hook, _, err := owner.c.AddWebhook(ctx, v, rc.url(), []string{"secret.created"})
	if err != nil {
		t.Fatal(err)
	}
	create := map[string]any{"vault_id": v.ID, "url": rc.url()}

	// A stranger: refused, and sees nothing.
	code, body := other.rest(t, "POST", "/rpc/create_webhook", create)
	refused(t, code, body, 403, "42501", "stranger creates a webhook")
	code, body = other.rest(t, "POST", "/rpc/test_webhook", map[string]any{"webhook_id": hook.ID})
	refused(t, code, body, 403, "42501", "stranger tests a webhook")
	if code, body = other.rest(t, "GET", "/webhooks?select=id,url", nil); code != 200 || string(body) != "[]" {
		t.Fatalf("stranger lists webhooks: %d %s", code, body)
	}
	if code, body = other.rest(t, "DELETE", "/webhooks?select=id&id=eq."+hook.ID.String(), nil, "Prefer", "return=representation"); code != 200 || string(body) != "[]" {
		t.Fatalf("stranger deletes a webhook: %d %s", code, body)
	}
	if code, body = other.rest(t, "PATCH", "/webhooks?select=id&id=eq."+hook.ID.String(), map[string]any{"enabled": false}, "Prefer", "return=representation"); code != 200 || string(body) != "[]" {
		t.Fatalf("stranger disables a webhook: %d %s", code, body)
	}
	if code, body = other.rest(t, "GET", "/webhook_deliveries?select=id&vault_id=eq."+v.ID.String(), nil); code != 200 || string(body) != "[]" {
		t.Fatalf("stranger reads the delivery log: %d %s", code, body)
	}
	// Nobody inserts rows directly (only through create_webhook).
	code, body = other.rest(t, "POST", "/webhooks", map[string]any{"vault_id": v.ID, "url": rc.url(), "signing_secret": "whsec_" + strings.Repeat("a", 64), "created_by": other.id})
	refused(t, code, body, 403, "42501", "direct insert into webhooks")

	// Viewers and editors of the vault: refused too.
	for _, role := range []string{"viewer", "editor"} {
		addMember(t, owner, v, other.id, role)
		code, body = other.rest(t, "POST", "/rpc/create_webhook", create)
		refused(t, code, body, 403, "42501", role+" creates a webhook")
		code, body = other.rest(t, "POST", "/rpc/test_webhook", map[string]any{"webhook_id": hook.ID})
		refused(t, code, body, 403, "42501", role+" tests a webhook")
		if code, body = other.rest(t, "GET", "/webhooks?select=id", nil); code != 200 || string(body) != "[]" {
			t.Fatalf("%s lists webhooks: %d %s", role, code, body)
		}
		removeMember(t, owner, v, other.id)
	}
	// An admin may; for this vault only.
	addMember(t, owner, v, other.id, "admin")
	code, body = other.rest(t, "POST", "/rpc/create_webhook", create)
	if code != 200 || !strings.Contains(string(body), "whsec_") {
		t.Fatalf("admin creates a webhook: %d %s", code, body)
	}
	otherVault, err := other.c.CreateVault(ctx, "mine-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	code, body = owner.rest(t, "POST", "/rpc/create_webhook", map[string]any{"vault_id": otherVault.ID, "url": rc.url()})
	refused(t, code, body, 403, "42501", "owner of one vault creates a webhook in another's")

	// The signing secret: never readable again, by anyone through the API.
	code, body = owner.rest(t, "GET", "/webhooks?select=signing_secret", nil)
	refused(t, code, body, 403, "42501", "reading the signing secret")
	code, body = owner.rest(t, "GET", "/webhooks?select=*", nil)
	refused(t, code, body, 403, "42501", "reading every column of webhooks")
	code, body = owner.rest(t, "PATCH", "/webhooks?id=eq."+hook.ID.String(), map[string]any{"signing_secret": "whsec_" + strings.Repeat("b", 64)})
	refused(t, code, body, 403, "42501", "changing the signing secret")
	code, body = owner.rest(t, "PATCH", "/webhooks?id=eq."+hook.ID.String(), map[string]any{"url": "https://example.com/"})
	refused(t, code, body, 403, "42501", "changing the URL")

	// URLs: http(s) only, no credentials, no private, link-local or
	// unallowed loopback literal (127/8 is allowed in this stack).
	for _, u := range []string{"ftp://example.com/", "https://user:pw@example.com/", "https://10.0.0.1/", "https://192.168.1.1/x",
		"https://172.16.0.1/", "https://169.254.169.254/latest/meta-data", "https://[fd00::1]/", "https://[fe80::1]/",
		"https://[::1]/", "https://[::ffff:10.0.0.1]/", "https://100.64.0.1/", "https://0.0.0.0/", "https://2130706433/",
		"https://example.com/ x", "javascript:alert(1)", "https://exa mple.com/"} {
		code, body := owner.rest(t, "POST", "/rpc/create_webhook", map[string]any{"vault_id": v.ID, "url": u})
		refused(t, code, body, 400, "22023", "webhook URL "+u)
	}
	code, body = owner.rest(t, "POST", "/rpc/create_webhook", map[string]any{"vault_id": v.ID, "url": rc.url(), "event_types": []string{"secret.exploded"}})
	refused(t, code, body, 400, "22023", "unknown event type")
	if _, _, err := owner.c.AddWebhook(ctx, v, "https://10.1.2.3/hook", nil); err == nil || !strings.Contains(err.Error(), "loopback, private") {
		t.Fatalf("SDK: private address: %v", err)
	}
	// A secret created in the vault goes to the owner's webhook (subscribed
	// to secret.created) and to the admin's (every type).
	if _, err := owner.c.CreateSecret(ctx, v, "X", "y"); err != nil {
		t.Fatal(err)
	}
	rc.wait(t, 10*time.Second, "two deliveries", func(ds []delivery) bool { return len(ofType(ds, "secret.created")) == 2 })
	// Removing: by owners and admins.
	if err := owner.c.RemoveWebhook(ctx, v, hook.ID); err != nil {
		t.Fatal(err)
	}
	if hooks, err := owner.c.ListWebhooks(ctx, v); err != nil || len(hooks) != 1 {
		t.Fatalf("after removal: %v %v", hooks, err)
	}
}

// A receiver that answers 500 gets MaxAttempts attempts per event, at
// intervals that follow the backoff schedule (200 ms, 400 ms, 800 ms, each
// ±20 % jitter); after DisableAfter such events the webhook is disabled, a
// webhook.disabled event is recorded and delivered to the vault's other
// webhooks, and later events are not sent to it.
func TestFailingReceiverBacksOffAndIsDisabled(t *testing.T) {
	ctx := context.Background()
	owner := newAccount(t)
	v, err := owner.c.CreateVault(ctx, "failing-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	bad := newReceiver(t, func(int, *http.Request) int { return 500 })
	good := newReceiver(t, nil)
	hook, _, err := owner.c.AddWebhook(ctx, v, bad.url(), []string{"secret.created"})
	if err != nil {
		t.Fatal(err)
	}
	watcher, _, err := owner.c.AddWebhook(ctx, v, good.url(), []string{"webhook.disabled"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := owner.c.CreateSecret(ctx, v, "ONE", "1")
	if err != nil {
		t.Fatal(err)
	}
	got := bad.wait(t, 15*time.Second, "four attempts of the first event", func(ds []delivery) bool { return len(ds) >= 4 })
	for i, d := range got {
		if d.id() != got[0].id() || d.header.Get("X-Zsm-Delivery-Attempt") != fmt.Sprint(i+1) {
			t.Fatalf("attempt %d: event %s, attempt header %q", i+1, d.id(), d.header.Get("X-Zsm-Delivery-Attempt"))
		}
	}
	schedule := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i, d := range schedule {
		gap := got[i+1].at.Sub(got[i].at)
		lo, hi := time.Duration(float64(d)*0.8)-20*time.Millisecond, time.Duration(float64(d)*1.2)+300*time.Millisecond
		if gap < lo || gap > hi {
			t.Errorf("gap before attempt %d: %v, want %v ±20%% (window %v–%v)", i+2, gap, d, lo, hi)
		}
		t.Logf("gap before attempt %d: %v (schedule %v)", i+2, gap.Round(time.Millisecond), d)
	}
	time.Sleep(time.Second)
	if n := len(bad.all()); n != 4 {
		t.Fatalf("%d attempts, want exactly 4 (AUTHSVC_WEBHOOK_MAX_ATTEMPTS)", n)
	}
	hooks, err := owner.c.ListWebhooks(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	h := hooks[slices.IndexFunc(hooks, func(w zsm.Webhook) bool { return w.ID == hook.ID })]
	if !h.Enabled || h.ConsecutiveFailures != 1 {
		t.Fatalf("after one failed event: %+v", h)
	}
	// The second failed event disables it.
	if _, err := owner.c.CreateSecret(ctx, v, "TWO", "2"); err != nil {
		t.Fatal(err)
	}
	bad.wait(t, 15*time.Second, "four attempts of the second event", func(ds []delivery) bool { return len(ds) >= 8 })
	dis := good.wait(t, 10*time.Second, "webhook.disabled at the other webhook", func(ds []delivery) bool { return len(ds) >= 1 })
	ev := dis[0].event()
	if dis[0].typ() != "webhook.disabled" || ev["webhook_id"] != hook.ID.String() {
		t.Fatalf("disabled event %s", dis[0].body)
	}
	waitUntil(t, 5*time.Second, "webhook disabled", func() bool {
		hooks, _ := owner.c.ListWebhooks(ctx, v)
		i := slices.IndexFunc(hooks, func(w zsm.Webhook) bool { return w.ID == hook.ID })
		return i >= 0 && !hooks[i].Enabled && hooks[i].DisabledReason == "failing" && hooks[i].ConsecutiveFailures == 2
	})
	trail, err := owner.c.AuditTrail(ctx, v, zsm.AuditOptions{Types: []string{"webhook.disabled"}})
	if err != nil || len(trail) != 1 || trail[0].WebhookID != hook.ID || trail[0].ActorID != uuid.Nil {
		t.Fatalf("audit trail of the disabling: %+v %v", trail, err)
	}
	// Disabled: nothing more is sent to it, and testing it is refused.
	if _, err := owner.c.CreateSecret(ctx, v, "THREE", "3"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := len(bad.all()); n != 8 {
		t.Fatalf("%d requests to a disabled webhook, want 8", n)
	}
	if _, err := owner.c.TestWebhook(ctx, v, hook.ID); err == nil {
		t.Fatal("testing a disabled webhook was accepted")
	}
	// The log says what happened.
	log, err := owner.c.WebhookDeliveries(ctx, v, hook.ID, 0)
	if err != nil || len(log) != 2 {
		t.Fatalf("delivery log: %+v %v", log, err)
	}
	for _, d := range log {
		if d.State != "failed" || d.Attempts != 4 || d.LastStatus == nil || *d.LastStatus != 500 {
			t.Fatalf("delivery %+v", d)
		}
	}
	attempts, err := owner.c.WebhookAttempts(ctx, v, log[1].ID)
	if err != nil || len(attempts) != 4 || attempts[0].EventID.String() != got[0].id() {
		t.Fatalf("attempts of the first event: %+v %v", attempts, err)
	}
	_ = first
	// Switched on again by hand: the failure count starts over.
	h, err = owner.c.SetWebhookEnabled(ctx, v, hook.ID, true)
	if err != nil || !h.Enabled || h.ConsecutiveFailures != 0 || h.DisabledReason != "" {
		t.Fatalf("re-enabled: %+v %v", h, err)
	}
	_ = watcher
}

// A worker killed in the middle of a delivery loses nothing: its lease
// expires and another replica delivers the event again, under the same id.
func TestKilledWorkerLosesNothing(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	owner := newAccount(t)
	v, err := owner.c.CreateVault(ctx, "killed-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan struct{}, 1)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 1 {
			arrived <- struct{}{}
			<-r.Context().Done() // stall until the worker's connection dies
			return 500
		}
		return 200
	})
	if _, _, err := owner.c.AddWebhook(ctx, v, rc.url(), []string{"secret.created"}); err != nil {
		t.Fatal(err)
	}
	// Only replica 1 works while the event is first delivered.
	if err := s.StopService(ctx, stack.ReplicaName(2)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.StartService(context.Background(), stack.ReplicaName(1))
		_ = s.StartService(context.Background(), stack.ReplicaName(2))
	})
	if _, err := owner.c.CreateSecret(ctx, v, "KILL", "me"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first delivery never arrived")
	}
	// SIGKILL: no shutdown path runs, the lease stays behind.
	pid := s.Pid(stack.ReplicaName(1))
	if pid <= 0 {
		t.Fatal("replica 1 is not running")
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if err := s.StopService(ctx, stack.ReplicaName(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.StartService(ctx, stack.ReplicaName(2)); err != nil {
		t.Fatal(err)
	}
	got := rc.wait(t, 20*time.Second, "redelivery by the other replica", func(ds []delivery) bool { return len(ds) >= 2 })
	if got[1].id() != got[0].id() || got[1].header.Get("X-Zsm-Delivery-Attempt") != "2" {
		t.Fatalf("redelivery: event %s attempt %s, first was %s", got[1].id(), got[1].header.Get("X-Zsm-Delivery-Attempt"), got[0].id())
	}
	t.Logf("redelivered %v after the kill (lease: twice the 2s delivery timeout)", got[1].at.Sub(killedAt).Round(time.Millisecond))
	// Delivered, once recorded; nothing else pending.
	conn := db(t)
	waitUntil(t, 5*time.Second, "delivery recorded", func() bool {
		var state string
		_ = conn.QueryRow(ctx, `SELECT state FROM api.webhook_deliveries WHERE event_id = $1`, got[0].id()).Scan(&state)
		return state == "delivered"
	})
	if err := s.StartService(ctx, stack.ReplicaName(1)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.all()); n != 2 {
		t.Fatalf("%d deliveries, want 2", n)
	}
}

// A due policy produces exactly one secret.rotation_due per due period,
// however many replicas look; the client rotates (here through a command
// that gets the old value on stdin, as `zsm rotate --exec` does), which
// bumps the revision, records secret.rotated and moves the schedule.
func TestRotationDueOncePerPeriodAndRotate(t *testing.T) {
	ctx := context.Background()
	owner := newAccount(t)
	v, err := owner.c.CreateVault(ctx, "rotate-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	if _, _, err := owner.c.AddWebhook(ctx, v, rc.url(), []string{"secret.rotation_due", "secret.rotated"}); err != nil {
		t.Fatal(err)
	}
	s1, err := owner.c.CreateSecret(ctx, v, "API_TOKEN", "old-token-value")
	if err != nil {
		t.Fatal(err)
	}
	every, err := zsm.ParseInterval("90d")
	if err != nil || every != 90*24*time.Hour {
		t.Fatalf("90d: %v %v", every, err)
	}
	pol, err := owner.c.SetRotationPolicy(ctx, v, "API_TOKEN", every)
	if err != nil {
		t.Fatal(err)
	}
	if pol.Name != "API_TOKEN" || pol.Every != every || pol.Revision != 1 || pol.NextDueAt.Sub(pol.LastRotatedAt) != every {
		t.Fatalf("policy %+v", pol)
	}
	if due, err := owner.c.RotationsDue(ctx); err != nil || len(due) != 0 {
		t.Fatalf("due before time: %+v %v", due, err)
	}
	// The controllable clock: move the due time into the past.
	conn := db(t)
	moveDue := func() {
		t.Helper()
		if _, err := conn.Exec(ctx, `UPDATE api.rotation_policies SET next_due_at = clock_timestamp() - interval '1 second' WHERE secret_id = $1`, s1.ID); err != nil {
			t.Fatal(err)
		}
	}
	countDue := func() int {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM api.vault_events WHERE secret_id = $1 AND type = 'secret.rotation_due'`, s1.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for period := 1; period <= 2; period++ {
		moveDue()
		rc.wait(t, 10*time.Second, fmt.Sprintf("rotation_due of period %d", period), func(ds []delivery) bool {
			return len(ofType(ds, "secret.rotation_due")) >= period
		})
		time.Sleep(time.Second) // ten polls of each replica
		if n := countDue(); n != period {
			t.Fatalf("period %d: %d rotation_due events, want %d", period, n, period)
		}
		if n := len(ofType(rc.all(), "secret.rotation_due")); n != period {
			t.Fatalf("period %d: %d deliveries, want %d", period, n, period)
		}
	}
	d := ofType(rc.all(), "secret.rotation_due")[1].event()
	if d["secret_id"] != s1.ID.String() || d["revision"] != float64(1) || d["due_at"] == nil || d["actor_user_id"] != nil {
		t.Fatalf("rotation_due payload %v", d)
	}
	due, err := owner.c.RotationsDue(ctx)
	if err != nil || len(due) != 1 || due[0].Name != "API_TOKEN" || due[0].VaultName != v.Name || !due[0].Due(time.Now()) {
		t.Fatalf("due: %+v %v", due, err)
	}

	// Rotate with a command on the user's side: old value on stdin, new
	// value on stdout.
	rotated, err := owner.c.Rotate(ctx, v, "API_TOKEN", func(old string) (string, error) {
		cmd := exec.Command("sh", "-c", `read v; printf '%s-rotated' "$v"`)
		cmd.Stdin = strings.NewReader(old + "\n")
		out, err := cmd.Output()
		return string(out), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Revision != 2 || rotated.Value != "old-token-value-rotated" {
		t.Fatalf("rotated %v %q", rotated, rotated.Value)
	}
	cur, err := owner.c.SecretByName(ctx, v, "API_TOKEN")
	if err != nil || cur.Revision != 2 || cur.Value != "old-token-value-rotated" {
		t.Fatalf("after rotation: %v %v", cur, err)
	}
	got := rc.wait(t, 10*time.Second, "secret.rotated", func(ds []delivery) bool { return len(ofType(ds, "secret.rotated")) == 1 })
	if e := ofType(got, "secret.rotated")[0].event(); e["revision"] != float64(2) || e["actor_user_id"] != owner.id.String() {
		t.Fatalf("rotated payload %v", e)
	}
	pols, err := owner.c.RotationPolicies(ctx, v)
	if err != nil || len(pols) != 1 || pols[0].LastRotatedRevision != 2 || pols[0].Revision != 2 ||
		time.Until(pols[0].NextDueAt) < every-time.Minute {
		t.Fatalf("policy after rotation: %+v %v", pols, err)
	}
	if due, err := owner.c.RotationsDue(ctx); err != nil || len(due) != 0 {
		t.Fatalf("due after rotation: %+v %v", due, err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := countDue(); n != 2 {
		t.Fatalf("rotation_due after rotation: %d", n)
	}
	// A rotation from a stale view fails with a conflict and writes nothing.
	if _, err := owner.c.UpdateSecret(ctx, v, cur, "manual"); err != nil {
		t.Fatal(err)
	}
	code, body := owner.rest(t, "POST", "/rpc/rotate_secret", map[string]any{"secret_id": s1.ID, "revision": 3, "ciphertext": "x"})
	if code != 409 {
		t.Fatalf("stale rotation: %d %s", code, body)
	}
	// Only editors and above rotate; a stranger's call changes nothing.
	stranger := newAccount(t)
	code, body = stranger.rest(t, "POST", "/rpc/rotate_secret", map[string]any{"secret_id": s1.ID, "revision": 4, "ciphertext": "x"})
	if code != 409 {
		t.Fatalf("stranger's rotation: %d %s", code, body)
	}
	code, body = stranger.rest(t, "POST", "/rotation_policies", map[string]any{"secret_id": s1.ID, "vault_id": v.ID, "interval_seconds": 3600})
	// (The policy's trigger looks the secret up as the caller first: a
	// secret the caller cannot see does not exist.)
	refused(t, code, body, 409, "23503", "stranger sets a rotation policy")
	// The policy's schedule is the server's: a client cannot move it.
	code, body = owner.rest(t, "PATCH", "/rotation_policies?secret_id=eq."+s1.ID.String(), map[string]any{"next_due_at": "2100-01-01T00:00:00Z"})
	refused(t, code, body, 403, "42501", "moving next_due_at")
	if err := owner.c.RemoveRotationPolicy(ctx, v, "API_TOKEN"); err != nil {
		t.Fatal(err)
	}
}

// The audit trail is append-only: not through the API, not as authsvc,
// not even as a superuser.
func TestAuditTrailIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	owner := newAccount(t)
	v, err := owner.c.CreateVault(ctx, "append-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.c.CreateSecret(ctx, v, "A", "b"); err != nil {
		t.Fatal(err)
	}
	code, body := owner.rest(t, "PATCH", "/vault_events?vault_id=eq."+v.ID.String(), map[string]any{"type": "secret.updated"})
	refused(t, code, body, 403, "42501", "PATCH vault_events")
	code, body = owner.rest(t, "DELETE", "/vault_events?vault_id=eq."+v.ID.String(), nil)
	refused(t, code, body, 403, "42501", "DELETE vault_events")
	code, body = owner.rest(t, "POST", "/vault_events", map[string]any{"vault_id": v.ID, "type": "secret.created"})
	refused(t, code, body, 403, "42501", "POST vault_events")

	super := db(t)
	for _, q := range []string{
		`UPDATE api.vault_events SET type = 'secret.updated' WHERE vault_id = '` + v.ID.String() + `'`,
		`DELETE FROM api.vault_events WHERE vault_id = '` + v.ID.String() + `'`,
		`TRUNCATE api.vault_events CASCADE`,
	} {
		if _, err := super.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("superuser %q: %v", q, err)
		}
	}
	var n int
	if err := super.QueryRow(ctx, `SELECT count(*) FROM api.vault_events WHERE vault_id = $1`, v.ID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("events after the attempts: %d %v", n, err)
	}
	// Deleting the vault keeps its record.
	if err := owner.c.DeleteVault(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := super.QueryRow(ctx, `SELECT count(*) FROM api.vault_events WHERE vault_id = $1`, v.ID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("events after deleting the vault: %d %v", n, err)
	}
	// What the table holds: no column that could carry a ciphertext.
	var cols string
	if err := super.QueryRow(ctx, `SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'api' AND table_name = 'vault_events'`).Scan(&cols); err != nil {
		t.Fatal(err)
	}
	for _, c := range strings.Split(cols, ",") {
		if strings.HasSuffix(c, ":text") && !strings.HasPrefix(c, "type:") && !strings.HasPrefix(c, "role:") {
			t.Fatalf("vault_events has a free text column %s", c)
		}
	}
}
