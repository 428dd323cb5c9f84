package machine

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/api"
	"zsm.dev/zsm/sdk/authclient"
)

func request(t *testing.T) api.TokenCreateRequest {
	t.Helper()
	nt, err := authclient.MakeToken("deploy-prod", 90*24*time.Hour, uuid.New(), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return nt.Request
}

// TestParseCreate: the shape is checked first (ErrBadRequest), the key
// record after (ErrBadKeyRecord), and the expiry comes from the server's
// clock.
func TestParseCreate(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	owner := uuid.NewString()
	req := request(t)
	n, err := parseCreate(owner, req, now)
	if err != nil {
		t.Fatal(err)
	}
	if n.OwnerID != owner || n.ID != req.TokenID || !n.CreatedAt.Equal(now) || !n.ExpiresAt.Equal(now.Add(90*24*time.Hour)) {
		t.Fatalf("parsed %+v", n)
	}
	other := request(t)
	for name, c := range map[string]struct {
		change func(*api.TokenCreateRequest)
		want   error
	}{
		"upper-case id":          {func(r *api.TokenCreateRequest) { r.TokenID = strings.ToUpper(r.TokenID) }, ErrBadRequest},
		"version 7 id":           {func(r *api.TokenCreateRequest) { r.TokenID = uuid.Must(uuid.NewV7()).String() }, ErrBadRequest},
		"name too long":          {func(r *api.TokenCreateRequest) { r.Name = strings.Repeat("a", 65) }, ErrBadRequest},
		"name with a slash":      {func(r *api.TokenCreateRequest) { r.Name = "a/b" }, ErrBadRequest},
		"name starting with dot": {func(r *api.TokenCreateRequest) { r.Name = ".a" }, ErrBadRequest},
		"lifetime 0":             {func(r *api.TokenCreateRequest) { r.LifetimeSeconds = 0 }, ErrBadRequest},
		"lifetime over 366 days": {func(r *api.TokenCreateRequest) { r.LifetimeSeconds = 366*24*3600 + 1 }, ErrBadRequest},
		"anchor of 31 bytes":     {func(r *api.TokenCreateRequest) { r.Anchor = base64.StdEncoding.EncodeToString(make([]byte, 31)) }, ErrBadRequest},
		"unpadded X25519 key":    {func(r *api.TokenCreateRequest) { r.X25519Public = strings.TrimRight(r.X25519Public, "=") }, ErrBadRequest},
		"another token's X25519": {func(r *api.TokenCreateRequest) { r.X25519Public = other.X25519Public }, ErrBadKeyRecord},
		"another token's record": {func(r *api.TokenCreateRequest) { r.KeyRecordSignature = other.KeyRecordSignature }, ErrBadKeyRecord},
		"X-Wing key not ML-KEM": {func(r *api.TokenCreateRequest) {
			r.XWingPublic = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\xff", 1216)))
		}, ErrBadKeyRecord},
	} {
		r := request(t)
		r.X25519Public, r.Ed25519Public, r.XWingPublic, r.KeyRecordSignature, r.TokenID = req.X25519Public, req.Ed25519Public, req.XWingPublic, req.KeyRecordSignature, req.TokenID
		c.change(&r)
		if _, err := parseCreate(owner, r, now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
