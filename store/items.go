package store

// The example resource: each user's key/value items (/my_data). README's
// "Make it yours" says how to remove it.

import (
	"context"
	"errors"
	"time"
)

// Item is one of a user's key/value items.
type Item struct {
	Key       string
	Value     string
	UpdatedAt time.Time
}

// Items keeps each user's items. No method ever reaches another user's.
type Items interface {
	// ListItems returns the user's items ordered by key.
	ListItems(ctx context.Context, userID string) ([]Item, error)
	// PutItem creates or replaces an item and reports whether it was created.
	PutItem(ctx context.Context, userID, key, value string) (created bool, err error)
	// DeleteItem returns fault.ErrNotFound when the user has no such item.
	DeleteItem(ctx context.Context, userID, key string) error
}

// SettingKeyCheck is the setting holding a check value of the key
// encryption key signing keys are sealed with ("none" when they are not).
const SettingKeyCheck = "key_encryption_check"

// ErrKeyCheck refuses a signing key sealed otherwise than the store's
// keys are (see SettingKeyCheck).
var ErrKeyCheck = errors.New("store: the key is not sealed with the store's key encryption key")
