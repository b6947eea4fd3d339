package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/passflow/passflow/store"
)

// The outbox and the tokens its mails carry.

func (s *Store) queueMail(ctx context.Context, tx *sql.Tx, m store.Mail) error {
	var user any
	if m.UserID != "" {
		user = m.UserID
	}
	now := m.CreatedAt
	if now.IsZero() {
		now = time.Now()
	}
	_, err := s.execTx(ctx, tx, "queue mail", `INSERT INTO mail_outbox (kind, user_id, recipient, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5)`, m.Kind, user, m.To, s.d.Time(now), s.d.Time(now))
	return err
}

// QueueMail adds m to the outbox.
func (s *Store) QueueMail(ctx context.Context, m store.Mail) error {
	return s.tx(ctx, "queue mail", func(tx *sql.Tx) error { return s.queueMail(ctx, tx, m) })
}

// ClaimMail takes the oldest mail due that no sender holds.
func (s *Store) ClaimMail(ctx context.Context, now, until time.Time) (store.Mail, bool, error) {
	var m store.Mail
	found := false
	err := s.tx(ctx, "claim mail", func(tx *sql.Tx) error {
		var user sql.NullString
		err := tx.QueryRowContext(ctx, s.q(`UPDATE mail_outbox SET claimed_until = $1, attempts = attempts + 1
			WHERE id = (SELECT id FROM mail_outbox
				WHERE done_at IS NULL AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2)
				ORDER BY id LIMIT 1`+s.d.SkipLocked()+`)
			RETURNING id, kind, user_id, recipient, attempts, created_at`), s.d.Time(until), s.d.Time(now)).
			Scan(&m.ID, &m.Kind, &user, &m.To, &m.Attempts, timeCol{&m.CreatedAt})
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return s.unavailable("claim mail", err)
		}
		m.UserID, found = user.String, true
		return nil
	})
	return m, found, err
}

// MailDone takes the mail out of the outbox with outcome.
func (s *Store) MailDone(ctx context.Context, id int64, outcome string, at time.Time) error {
	return s.tx(ctx, "mail done", func(tx *sql.Tx) error {
		_, err := s.execTx(ctx, tx, "mail done", `UPDATE mail_outbox SET done_at = $1, outcome = $2, claimed_until = NULL WHERE id = $3`,
			s.d.Time(at), outcome, id)
		return err
	})
}

// MailRetry puts the mail back until next.
func (s *Store) MailRetry(ctx context.Context, id int64, next time.Time, reason string) error {
	return s.tx(ctx, "mail retry", func(tx *sql.Tx) error {
		_, err := s.execTx(ctx, tx, "mail retry", `UPDATE mail_outbox SET next_attempt_at = $1, last_error = $2, claimed_until = NULL WHERE id = $3`,
			s.d.Time(next), reason, id)
		return err
	})
}

// PendingMail counts the mails not yet done.
func (s *Store) PendingMail(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM mail_outbox WHERE done_at IS NULL`).Scan(&n); err != nil {
		return 0, s.unavailable("pending mail", err)
	}
	return n, nil
}

// PruneMail deletes done mails and expired tokens.
func (s *Store) PruneMail(ctx context.Context, doneBefore, now time.Time) error {
	return s.tx(ctx, "prune mail", func(tx *sql.Tx) error {
		if _, err := s.execTx(ctx, tx, "prune mail", `DELETE FROM mail_outbox WHERE done_at < $1`, s.d.Time(doneBefore)); err != nil {
			return err
		}
		_, err := s.execTx(ctx, tx, "prune mail", `DELETE FROM email_tokens WHERE expires_at <= $1`, s.d.Time(now))
		return err
	})
}

// LastEmailToken returns when the account's newest token for purpose was
// made.
func (s *Store) LastEmailToken(ctx context.Context, userID, purpose string) (time.Time, error) {
	var at time.Time
	err := s.db.QueryRowContext(ctx, s.q(`SELECT created_at FROM email_tokens WHERE user_id = $1 AND purpose = $2 ORDER BY created_at DESC LIMIT 1`),
		userID, purpose).Scan(timeCol{&at})
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, s.unavailable("last email token", err)
	}
	return at, nil
}

// EmailToken reads a live token.
func (s *Store) EmailToken(ctx context.Context, hash, purpose string, now time.Time) (store.EmailToken, error) {
	return one(ctx, s, s.db, "email token", func(row scanner) (store.EmailToken, error) {
		t := store.EmailToken{Hash: hash}
		err := row.Scan(&t.UserID, &t.Purpose, &t.Email, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt})
		return t, err
	}, `SELECT user_id, purpose, email, created_at, expires_at FROM email_tokens WHERE hash = $1 AND purpose = $2 AND expires_at > $3`,
		hash, purpose, s.d.Time(now))
}

// CreateEmailToken stores t.
func (s *Store) CreateEmailToken(ctx context.Context, t store.EmailToken) error {
	return s.tx(ctx, "create email token", func(tx *sql.Tx) error {
		_, err := s.execTx(ctx, tx, "create email token", `INSERT INTO email_tokens (hash, user_id, purpose, email, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.UserID, t.Purpose, t.Email, s.d.Time(t.CreatedAt), s.d.Time(t.ExpiresAt))
		return err
	})
}

// UseEmailToken consumes a token and changes its account, in one
// transaction.
func (s *Store) UseEmailToken(ctx context.Context, hash, purpose string, now time.Time, change func(store.EmailToken, *store.User) error) (store.User, error) {
	var u store.User
	err := s.tx(ctx, "use email token", func(tx *sql.Tx) error {
		if err := s.d.Lock(ctx, tx, LockAdmins); err != nil {
			return s.unavailable("use email token", err)
		}
		t := store.EmailToken{Hash: hash}
		err := tx.QueryRowContext(ctx, s.q(`DELETE FROM email_tokens WHERE hash = $1 AND purpose = $2
			RETURNING user_id, purpose, email, created_at, expires_at`), hash, purpose).
			Scan(&t.UserID, &t.Purpose, &t.Email, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt})
		if errors.Is(err, sql.ErrNoRows) {
			return s.notFound("use email token")
		}
		if err != nil {
			return s.unavailable("use email token", err)
		}
		if !now.Before(t.ExpiresAt) {
			return s.notFound("use email token") // expired: as if it never was
		}
		u, err = one(ctx, s, tx, "use email token", scanUser,
			`SELECT `+userColumns+` FROM users WHERE id = $1`+s.d.ForUpdate(""), t.UserID)
		if err != nil {
			return err
		}
		if _, err := s.execTx(ctx, tx, "use email token", `DELETE FROM email_tokens WHERE user_id = $1 AND purpose = $2`, t.UserID, purpose); err != nil {
			return err
		}
		u, err = s.updateUser(ctx, tx, u, func(u *store.User) error { return change(t, u) })
		return err
	})
	return u, err
}
