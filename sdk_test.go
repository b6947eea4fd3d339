package main

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/passflow/passflow/client"
	gen "github.com/passflow/passflow/generated/client"
)

// TestGoSDK drives every kind of call through the Go SDK: the generated
// client behind client.Login, which logs in and refreshes on its own.
func TestGoSDK(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "--access-token-ttl", "2s", "--clock-leeway", "0s")
	ctx := context.Background()
	cfg := client.Config{BaseURL: ts.URL}

	admin, err := client.Login(ctx, cfg, "admin", ts.Admin)
	if err != nil {
		t.Fatal(err)
	}
	scopes := []gen.Scope{"data:read", "data:write"}
	pw := "sdk-user-password"
	created, err := admin.CreateUserWithResponse(ctx, gen.NewUser{Username: "SdkUser", Password: &pw, Scopes: &scopes})
	if err != nil || created.JSON201 == nil || created.JSON201.Username != "sdkuser" {
		t.Fatalf("create user = %v %+v", err, created)
	}
	page, err := admin.ListUsersWithResponse(ctx, &gen.ListUsersParams{})
	if err != nil || page.JSON200 == nil || len(page.JSON200.Users) != 2 {
		t.Fatalf("list users = %v %s", err, page.Body)
	}

	if _, err := client.Login(ctx, cfg, "sdkuser", "wrong-password"); !isOAuth(err, "invalid_grant") {
		t.Errorf("wrong password: %v, want invalid_grant", err)
	}
	c, err := client.Login(ctx, client.Config{BaseURL: ts.URL, ClientID: "sdk-app", Scopes: []string{"data:read", "data:write"}}, "sdkuser", pw)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := c.Token()
	put, err := c.PutMyDataWithResponse(ctx, "greeting", gen.ItemWrite{Value: "hello"})
	if err != nil || put.JSON201 == nil {
		t.Fatalf("put = %v %s", err, put.Body)
	}
	list, err := c.ListMyDataWithResponse(ctx)
	if err != nil || list.JSON200 == nil || len(*list.JSON200) != 1 || (*list.JSON200)[0].Value != "hello" {
		t.Fatalf("list = %v %s", err, list.Body)
	}
	me, err := c.GetMeWithResponse(ctx)
	if err != nil || me.JSON200 == nil || me.JSON200.Username != "sdkuser" {
		t.Fatalf("me = %v %s", err, me.Body)
	}
	// oauth2 treats a token as expired 10s early: the 2s tokens are
	// refreshed (and rotated) on every call.
	second, _ := c.Token()
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Error("the SDK did not refresh")
	}
	del, err := c.DeleteMyDataWithResponse(ctx, "greeting")
	if err != nil || del.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete = %v %d", err, del.StatusCode())
	}
	forbidden, err := c.ListUsersWithResponse(ctx, nil)
	if err != nil || forbidden.JSON403 == nil || forbidden.JSON403.Error != "insufficient_scope" {
		t.Errorf("list users without users:admin = %v %s", err, forbidden.Body)
	}
	meta, err := c.GetServerMetadataWithResponse(ctx)
	if err != nil || meta.JSON200 == nil || meta.JSON200.TokenEndpoint != ts.URL+"/token" {
		t.Errorf("metadata = %v %s", err, meta.Body)
	}

	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Token(); !isOAuth(err, "invalid_grant") {
		t.Errorf("after logout, refreshing: %v, want invalid_grant", err)
	}
}

func isOAuth(err error, code string) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Code == code
}
