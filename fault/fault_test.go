package fault_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/passflow/passflow/fault"
)

func TestIs(t *testing.T) {
	t.Parallel()
	notFound := fault.Wrap(fault.NotFound, "no such user", errors.New("sql: no rows"))
	wrapped := fmt.Errorf("store: %w", notFound)
	for _, tt := range []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"a described error matches its code's sentinel", notFound, fault.ErrNotFound, true},
		{"through wrapping", wrapped, fault.ErrNotFound, true},
		{"not another code's", notFound, fault.ErrConflict, false},
		{"a described target is no sentinel", fault.New(fault.NotFound, "x"), fault.New(fault.NotFound, "y"), false},
		{"nor one naming a field", fault.New(fault.InvalidRequest, "x"), fault.Invalid("/f", ""), false},
		{"the cause is still found", wrapped, notFound.Err, true},
	} {
		if got := errors.Is(tt.err, tt.target); got != tt.want {
			t.Errorf("%s: errors.Is = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAs(t *testing.T) {
	t.Parallel()
	fe := fault.New(fault.Conflict, "username is taken")
	if got := fault.As(fmt.Errorf("create: %w", fe)); got != fe {
		t.Errorf("As found %v, want the fault in the chain", got)
	}
	// An error nobody classified is the server's own.
	plain := errors.New("disk on fire")
	got := fault.As(plain)
	if got.Code != fault.Internal || got.Err != plain || got.Description != "" {
		t.Errorf("As(plain) = %+v, want internal_error wrapping it, with no description", got)
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	for err, want := range map[*fault.Error]string{
		fault.New(fault.NotFound, "no such user"):                            "not_found: no such user",
		fault.Wrap(fault.Unavailable, "try later", errors.New("conn reset")): "unavailable: try later: conn reset",
		{Code: fault.Internal}:                                               "internal_error",
	} {
		if got := err.Error(); got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	}
}
