package warehouse

// LockSpace is the first key of millrace's fixed advisory locks, (LockSpace,
// n), so that they never collide with an application's. The locks of runs
// use the 64-bit key of millrace.run_lock_key (migration 5), a key space
// that PostgreSQL keeps apart from the two-key one.
const LockSpace = 0x6d696c6c // "mill"

// The second keys of millrace's fixed advisory locks.
const (
	// LockMigrations serializes the migrations of millrace's schema.
	LockMigrations = 0
	// LockSetup serializes the set-up of roles and rights.
	LockSetup = 1
	// LockRiverMigrations serializes the migrations of River's tables.
	LockRiverMigrations = 2
	// LockSchedulerPass lets one scheduler pass run at a time.
	LockSchedulerPass = 3
)
