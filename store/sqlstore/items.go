package sqlstore

// The example resource's storage: each user's items. Its table is made by
// the first migration; removing the example means removing this file, the
// items field of Store and its preparation in New, the Items interface,
// and adding a migration that drops the table.

import (
	"context"
	"database/sql"
	"time"

	"github.com/passflow/passflow/store"
)

func scanItem(row scanner) (store.Item, error) {
	var it store.Item
	err := row.Scan(&it.Key, &it.Value, timeCol{&it.UpdatedAt})
	return it, err
}

// itemQueries are the statements prepared once: listing runs on every
// GET /my_data.
type itemQueries struct {
	list *sql.Stmt
}

func prepareItems(ctx context.Context, s *Store) (*itemQueries, error) {
	list, err := s.db.PrepareContext(ctx, s.q(`SELECT key, value, updated_at FROM items WHERE user_id = $1 ORDER BY key`))
	if err != nil {
		return nil, err
	}
	return &itemQueries{list: list}, nil
}

func (q *itemQueries) close() { q.list.Close() }

// ListItems returns a user's items ordered by key.
func (s *Store) ListItems(ctx context.Context, userID string) ([]store.Item, error) {
	rows, err := s.items.list.QueryContext(s.d.Read(ctx), userID)
	if err != nil {
		return nil, s.unavailable("list items", err)
	}
	return scanAll(s, "list items", rows, scanItem)
}

// PutItem creates or replaces an item: an insert that does nothing when
// the key is taken, then an update, so that two writers racing for a new
// key see one creation.
func (s *Store) PutItem(ctx context.Context, userID, key, value string) (bool, error) {
	created := false
	err := s.tx(ctx, "put item", func(tx *sql.Tx) error {
		now := s.d.Time(time.Now())
		res, err := s.execTx(ctx, tx, "put item", `INSERT INTO items (user_id, key, value, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id, key) DO NOTHING`, userID, key, value, now)
		if err != nil {
			return err
		}
		n, err := s.affected("put item", res)
		if err != nil || n == 1 {
			created = n == 1
			return err
		}
		_, err = s.execTx(ctx, tx, "put item", `UPDATE items SET value = $1, updated_at = $2 WHERE user_id = $3 AND key = $4`,
			value, now, userID, key)
		return err
	})
	return created, err
}

// DeleteItem deletes one of a user's items.
func (s *Store) DeleteItem(ctx context.Context, userID, key string) error {
	res, err := s.exec(ctx, "delete item", `DELETE FROM items WHERE user_id = $1 AND key = $2`, userID, key)
	if err != nil {
		return err
	}
	if n, err := s.affected("delete item", res); err != nil {
		return err
	} else if n == 0 {
		return s.notFound("delete item")
	}
	return nil
}
