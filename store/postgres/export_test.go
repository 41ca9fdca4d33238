package postgres

import "github.com/keyhold/keyhold/store"

// LockSessionPID is the server process of the session that holds l, a lock
// taken with Store.Lock.
func LockSessionPID(l store.HeldLock) uint32 {
	return l.(*ownLock).conn.Conn().PgConn().PID()
}
