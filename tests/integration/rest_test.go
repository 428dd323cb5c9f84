package integration

import (
	"context"
	"net/http"
	"testing"
)

type vault struct {
	ID      string `json:"id"`
	OwnerID string `json:"owner_id"`
	Meta    string `json:"meta"`
}

// Sign-up, login, and PostgREST reads and writes of one's own rows; another
// user sees none of them and cannot change them.
func TestOwnRowsThroughPostgREST(t *testing.T) {
	alice, bob := newClient(t), newClient(t)
	ua, ub := alice.Signup("user"), bob.Signup("user")
	sa, sb := alice.Login(ua), bob.Login(ub)

	r := alice.Do("POST", "/rest/vaults", sa.AccessToken, map[string]string{"meta": "ciphertext-a"}, "Prefer", "return=representation")
	expectStatus(t, r, http.StatusCreated, "alice creates a vault")
	var created []vault
	r.JSON(t, &created)
	if len(created) != 1 || created[0].OwnerID != ua.ID || created[0].Meta != "ciphertext-a" {
		t.Fatalf("created %+v, want one vault owned by %s", created, ua.ID)
	}
	vid := created[0].ID

	var list []vault
	r = alice.Do("GET", "/rest/vaults", sa.AccessToken, nil)
	expectStatus(t, r, http.StatusOK, "alice lists")
	r.JSON(t, &list)
	if len(list) != 1 || list[0].ID != vid {
		t.Fatalf("alice sees %+v, want her one vault", list)
	}

	r = alice.Do("PATCH", "/rest/vaults?id=eq."+vid, sa.AccessToken, map[string]any{"meta": "ciphertext-a2", "revision": 2})
	expectStatus(t, r, http.StatusNoContent, "alice updates her vault")

	// Bob sees nothing of Alice's.
	r = bob.Do("GET", "/rest/vaults", sb.AccessToken, nil)
	expectStatus(t, r, http.StatusOK, "bob lists")
	if string(r.Body) != "[]" {
		t.Fatalf("bob sees %s, want []", r.Body)
	}
	r = bob.Do("GET", "/rest/vaults?id=eq."+vid, sb.AccessToken, nil)
	expectStatus(t, r, http.StatusOK, "bob reads alice's vault by id")
	if string(r.Body) != "[]" {
		t.Fatalf("bob reads %s, want []", r.Body)
	}
	// Bob's update and delete of Alice's row match no row: 204, nothing changes.
	r = bob.Do("PATCH", "/rest/vaults?id=eq."+vid, sb.AccessToken, map[string]any{"meta": "bob-was-here", "revision": 3})
	expectStatus(t, r, http.StatusNoContent, "bob updates alice's vault")
	r = bob.Do("DELETE", "/rest/vaults?id=eq."+vid, sb.AccessToken, nil)
	expectStatus(t, r, http.StatusNoContent, "bob deletes alice's vault")
	// Bob cannot plant a row on Alice, nor move his own row to her.
	r = bob.Do("POST", "/rest/vaults", sb.AccessToken, map[string]string{"meta": "x", "owner_id": ua.ID})
	expectRefusal(t, r, http.StatusForbidden, "42501", "bob inserts a vault owned by alice")
	r = bob.Do("POST", "/rest/vaults", sb.AccessToken, map[string]string{"meta": "bob's"}, "Prefer", "return=representation")
	expectStatus(t, r, http.StatusCreated, "bob creates his vault")
	var bobs []vault
	r.JSON(t, &bobs)
	r = bob.Do("PATCH", "/rest/vaults?id=eq."+bobs[0].ID, sb.AccessToken, map[string]string{"owner_id": ua.ID})
	expectRefusal(t, r, http.StatusForbidden, "42501", "bob hands his vault to alice")

	// Behind the API's back: Alice's row is exactly as she left it.
	var owner, meta string
	if err := db(t).QueryRow(context.Background(), `SELECT owner_id::text, meta FROM api.vaults WHERE id = $1`, vid).Scan(&owner, &meta); err != nil {
		t.Fatalf("alice's vault is gone: %v", err)
	}
	if owner != ua.ID || meta != "ciphertext-a2" {
		t.Fatalf("alice's vault is now owner=%s meta=%q", owner, meta)
	}

	// Without a token there is no access at all.
	r = alice.Do("GET", "/rest/vaults", "", nil)
	expectRefusal(t, r, http.StatusUnauthorized, "42501", "anonymous read")

	r = alice.Do("DELETE", "/rest/vaults?id=eq."+vid, sa.AccessToken, nil)
	expectStatus(t, r, http.StatusNoContent, "alice deletes her vault")
	var n int
	if err := db(t).QueryRow(context.Background(), `SELECT count(*) FROM api.vaults WHERE id = $1`, vid).Scan(&n); err != nil || n != 0 {
		t.Fatalf("alice's vault still there (%d, %v)", n, err)
	}
}
