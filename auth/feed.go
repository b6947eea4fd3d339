package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/passflow/passflow/fault"
	"github.com/passflow/passflow/store"
)

// SyncInterval is how often a process reads the store's change feed: a
// change made by another process takes effect here within it.
const SyncInterval = 250 * time.Millisecond

// changeRetention is how long the feed keeps changes. A process that has
// not read the feed for half of it forgets all it knows and starts afresh.
const changeRetention = 24 * time.Hour

// Feed follows the store's change feed, and keeps in memory what it brings
// that this process needs to refuse a token without a store round-trip on
// every request: the token version and state of each account it has seen
// tokens of, the revoked access tokens and refresh families, the deleted
// clients. A change of the signing keys makes it read them again. Call
// Sync every SyncInterval, and Applied after a change of this process's
// own; Prune, off the request path, drops what the feed no longer needs.
type Feed struct {
	logger *slog.Logger
	st     feedStore
	keys   *KeySet
	now    func() time.Time

	// sync serialises reads of the feed.
	sync       sync.Mutex
	lastSeq    int64
	nextExpire time.Time    // when Sync next forgets expired revocations
	lastOK     atomic.Int64 // Unix nanoseconds of the last complete read
	// keysErr is set while a change to the signing keys could not be
	// applied; every later change still is, and the keys are read again
	// on each sync until they can be.
	keysErr atomic.Pointer[error]

	accounts *lru.Cache[string, accountState]
	// generation rises whenever account entries are dropped, so a load
	// that raced with the drop is not cached.
	generation atomic.Int64

	mu       sync.RWMutex
	revoked  map[string]time.Time // access token jti → its expiry
	families map[string]time.Time // revoked refresh family → end of its access tokens
	clients  map[string]bool      // deleted clients, whose tokens all die
}

type feedStore interface {
	store.Users
	store.Clients
	store.RefreshTokens
	store.Changes
}

type accountState struct {
	version  int64
	disabled bool
	gone     bool
}

// NewFeed reads where the change feed stands, the revoked tokens still
// alive and the deleted clients, and remembers the state of up to size
// accounts.
func NewFeed(
	ctx context.Context,
	logger *slog.Logger,
	st feedStore,
	keys *KeySet,
	size int,
	now func() time.Time,
) (*Feed, error) {
	accounts, err := lru.New[string, accountState](size)
	if err != nil {
		return nil, err
	}
	r := &Feed{logger: logger, st: st, keys: keys, now: now, accounts: accounts}
	if err := r.reset(ctx); err != nil {
		return nil, err
	}
	if err := r.keysBehind(); err != nil {
		return nil, err
	}
	return r, nil
}

// reset forgets everything and reads the current state.
func (r *Feed) reset(ctx context.Context) error {
	seq, err := r.st.LatestChange(ctx)
	if err != nil {
		return err
	}
	changes, err := r.st.Revoked(ctx, r.now())
	if err != nil {
		return err
	}
	clients, err := r.st.ListClients(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.revoked, r.families, r.clients = map[string]time.Time{}, map[string]time.Time{}, map[string]bool{}
	for _, c := range clients {
		if !c.DeletedAt.IsZero() {
			r.clients[c.ID] = true
		}
	}
	r.mu.Unlock()
	r.reloadKeys(ctx)
	r.apply(ctx, changes)
	r.generation.Add(1)
	r.accounts.Purge()
	r.lastSeq = seq
	r.lastOK.Store(r.now().UnixNano())
	return nil
}

// reloadKeys reads the signing keys again. When that fails, the keys stay
// as they were, the failure is logged once, and the process reports not
// ready until a later reload succeeds.
func (r *Feed) reloadKeys(ctx context.Context) {
	err := r.keys.Reload(ctx)
	was := r.keysErr.Load()
	switch {
	case err == nil && was != nil:
		r.keysErr.Store(nil)
		r.logger.Info("the signing keys are read again; the change that could not be applied is now")
	case err == nil:
	case was == nil:
		r.keysErr.Store(&err)
		r.logger.Error("a change to the signing keys cannot be applied; later changes still are, and this process reports not ready until it can",
			"error", err)
	default:
		r.keysErr.Store(&err)
	}
}

func (r *Feed) keysBehind() error {
	if p := r.keysErr.Load(); p != nil {
		return *p
	}
	return nil
}

// MaxFeedLag is how long the feed may go unread before Ready says so.
const MaxFeedLag = 5 * time.Second

// Ready reports whether this process is in step with the change feed: it
// has read it lately, and applied every change it read.
func (r *Feed) Ready() error {
	if err := r.keysBehind(); err != nil {
		return fmt.Errorf("a change to the signing keys cannot be applied: %w", err)
	}
	if lag := r.now().Sub(time.Unix(0, r.lastOK.Load())); lag > MaxFeedLag {
		return fmt.Errorf("the change feed has not been read for %s", lag.Round(time.Second))
	}
	return nil
}

// Sync applies every change in the feed not yet applied. On a nil *Feed it
// does nothing. It never prunes: a request may be waiting on it.
func (r *Feed) Sync(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.sync.Lock()
	defer r.sync.Unlock()
	now := r.now()
	if now.Sub(time.Unix(0, r.lastOK.Load())) > changeRetention/2 {
		// Changes may have been pruned unseen: start afresh.
		return r.reset(ctx)
	}
	if r.keysBehind() != nil {
		r.reloadKeys(ctx)
	}
	for {
		changes, err := r.st.ChangesSince(ctx, r.lastSeq, 1000)
		if err != nil {
			return err
		}
		r.apply(ctx, changes)
		if len(changes) < 1000 {
			break
		}
	}
	r.lastOK.Store(now.UnixNano())
	if now.After(r.nextExpire) {
		r.expire(now)
		r.nextExpire = now.Add(expireEvery)
	}
	return nil
}

// Prune drops from the store what no process needs any more: changes past
// their retention, refresh families long expired or revoked. It belongs in
// a housekeeping loop, never on a request's path.
func (r *Feed) Prune(ctx context.Context) error {
	cutoff := r.now().Add(-changeRetention)
	if err := r.st.PruneChanges(ctx, cutoff); err != nil {
		return fmt.Errorf("prune changes: %w", err)
	}
	if err := r.st.PruneRefreshFamilies(ctx, cutoff); err != nil {
		return fmt.Errorf("prune refresh families: %w", err)
	}
	return nil
}

// Applied puts changes this process has just committed in force here at
// once, then reads the feed. The changes are committed: a failure to read
// the feed is logged, never returned, and the feed brings them again.
// On a nil *Feed it does nothing.
func (r *Feed) Applied(ctx context.Context, changes ...store.Change) {
	if r == nil {
		return
	}
	for _, c := range changes {
		r.applyOne(ctx, c)
	}
	if err := r.Sync(ctx); err != nil {
		r.logger.Warn("reading the change feed after a change failed; the change is in force here, and other processes apply it from the feed",
			"error", err)
	}
}

// apply applies changes read from the feed, in order. A change that cannot
// be applied (only a change of keys can fail) leaves the keys as they were,
// and every later change is still applied.
func (r *Feed) apply(ctx context.Context, changes []store.Change) {
	for _, c := range changes {
		r.applyOne(ctx, c)
		r.lastSeq = max(r.lastSeq, c.Seq)
	}
}

func (r *Feed) applyOne(ctx context.Context, c store.Change) {
	switch c.Kind {
	case store.ChangeUser:
		r.generation.Add(1)
		r.accounts.Remove(c.Subject)
	case store.ChangeAccessToken:
		r.mu.Lock()
		r.revoked[c.Subject] = c.ExpiresAt
		r.mu.Unlock()
	case store.ChangeFamily:
		r.mu.Lock()
		r.families[c.Subject] = c.ExpiresAt
		r.mu.Unlock()
	case store.ChangeClient:
		r.mu.Lock()
		r.clients[c.Subject] = true
		r.mu.Unlock()
	case store.ChangeKeys:
		r.reloadKeys(ctx)
	}
}

// expireEvery is how often Sync forgets expired revocations: each is kept
// a minute past its token's expiry, so a minute more costs nothing, and
// the scan, which reads every revocation held, runs once a minute instead
// of at every sync.
const expireEvery = time.Minute

// expire forgets revocations whose tokens have expired anyway. It finds
// them under the read lock, which token checks share, and takes the write
// lock only to delete them.
func (r *Feed) expire(now time.Time) {
	type entry struct {
		m  map[string]time.Time
		id string
	}
	var gone []entry
	r.mu.RLock()
	for _, m := range []map[string]time.Time{r.revoked, r.families} {
		for id, exp := range m {
			if now.After(exp.Add(time.Minute)) {
				gone = append(gone, entry{m, id})
			}
		}
	}
	r.mu.RUnlock()
	if len(gone) == 0 {
		return
	}
	r.mu.Lock()
	for _, e := range gone {
		// Applied again since the scan with a later expiry: keep it.
		if exp, ok := e.m[e.id]; ok && now.After(exp.Add(time.Minute)) {
			delete(e.m, e.id)
		}
	}
	r.mu.Unlock()
}

// Check refuses a principal whose token was revoked, whose account has
// been disabled or deleted, or whose token predates the account's current
// token version.
func (r *Feed) Check(ctx context.Context, p *Principal) error {
	r.mu.RLock()
	_, revoked := r.revoked[p.TokenID]
	_, loggedOut := r.families[p.SessionID]
	clientGone := r.clients[p.ClientID]
	r.mu.RUnlock()
	if revoked || loggedOut {
		return invalid("revoked", "token has been revoked")
	}
	if clientGone {
		return invalid("client_deleted", "the token's client has been deleted")
	}
	st, err := r.account(ctx, p.UserID)
	if err != nil {
		return err
	}
	switch {
	case st.gone:
		return invalid("account_gone", "the token's account no longer exists")
	case st.disabled:
		return invalid("account_disabled", "the token's account is disabled")
	case p.Version < st.version:
		return invalid("revoked", "token has been revoked")
	}
	return nil
}

// account returns an account's state, reading it from the store the first
// time and after each change to it.
func (r *Feed) account(ctx context.Context, id string) (accountState, error) {
	if st, ok := r.accounts.Get(id); ok {
		return st, nil
	}
	gen := r.generation.Load()
	var st accountState
	u, err := r.st.UserByID(ctx, id)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		st.gone = true
	case err != nil:
		return st, fmt.Errorf("auth: account state: %w", err)
	default:
		st.version, st.disabled = u.TokenVersion, u.Disabled
	}
	if r.generation.Load() == gen {
		r.accounts.Add(id, st)
	}
	return st, nil
}
