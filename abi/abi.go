// Package abi is the contract between the wasmcorn host and its guests.
//
// ABI.md in this directory is normative; this package is its Go encoding,
// used once by the host and once by the Go SDK. It depends on the standard
// library only and compiles for every GOOS/GOARCH, wasip1/wasm included.
//
// All integers are little-endian. A string or byte field is a u32 length
// followed by that many bytes. Decoders never panic on hostile input: every
// length is checked against what remains, and trailing bytes are an error.
package abi

import "fmt"

// Version is the ABI version this package implements. A guest declares the
// version it speaks by exporting ExportVersion; the host refuses any other.
const Version = 1

// Guest exports. Every guest (Go, C, Python shim) exports these names.
const (
	// ExportVersion is `() -> i32`: the ABI version the guest speaks.
	ExportVersion = "wasmcorn_abi_version"
	// ExportAlloc is `(size i32) -> i32`: a pointer to size writable bytes.
	// The buffer stays reserved for the host until the host calls alloc
	// again; the guest may then reuse or free the previous one.
	ExportAlloc = "wasmcorn_alloc"
	// ExportHandle is `(ptr i32, len i32) -> i64`: handle the encoded
	// Request at [ptr, ptr+len) and return PackPtrLen of an encoded Response.
	// The response bytes stay valid until the next call into the guest.
	ExportHandle = "wasmcorn_handle"
	// ExportJob is `(ptr i32, len i32) -> i64`: run the encoded Job and
	// return PackPtrLen of an encoded JobResult. Optional: a guest without it
	// cannot consume queues.
	ExportJob = "wasmcorn_job"
	// ExportInitialize is the WASI reactor initializer, run once per instance.
	ExportInitialize = "_initialize"
	// ExportInterruptStores is optional, `() -> i32`: the address of the
	// guest's interrupt table (u32 count, then count pairs of u32 address,
	// u32 value). At a call's deadline the host performs those stores so
	// the guest stops the call by itself (ABI.md, "Soft deadlines").
	ExportInterruptStores = "wasmcorn_interrupt_stores"
	// MaxInterruptStores bounds the interrupt table's count.
	MaxInterruptStores = 8
)

// Host imports, all in module ImportModule.
const (
	// ImportModule is the module name of every host import.
	ImportModule = "wasmcorn"
	// ImportCall is `(op i32, in_ptr i32, in_len i32, out_ptr i32, out_cap i32) -> i32`.
	// It runs host operation op with the argument message at [in_ptr, in_ptr+in_len)
	// and returns n, the length of the reply message. When n <= out_cap the
	// reply was written to [out_ptr, out_ptr+n); otherwise nothing was written
	// and the guest fetches the reply with ImportResult into a buffer of n bytes.
	// A region outside linear memory traps the guest.
	ImportCall = "call"
	// ImportResult is `(ptr i32, cap i32) -> i32`: copy the pending reply of
	// the last call into [ptr, ptr+cap) and return its length; -1 when there
	// is no pending reply or cap is too small (nothing is copied then).
	ImportResult = "result"
)

// PackPtrLen packs a guest pointer and length into the i64 returned by
// ExportHandle and ExportJob: ptr in the high 32 bits, len in the low 32.
// For example ptr=0x10000, len=42 packs to 0x0001_0000_0000_002a.
func PackPtrLen(ptr, n uint32) uint64 { return uint64(ptr)<<32 | uint64(n) }

// UnpackPtrLen is the inverse of PackPtrLen.
func UnpackPtrLen(v uint64) (ptr, n uint32) { return uint32(v >> 32), uint32(v) }

// Op is a host operation number passed to ImportCall.
type Op uint32

// Host operations. The argument and reply values of each are listed in ABI.md.
const (
	OpLog       Op = 0x01 // (int level, string msg, {string key, value}...) -> ()
	OpConfigGet Op = 0x02 // (string key) -> (string) | NotFound

	OpDBQuery     Op = 0x10 // (string db | int tx, string sql, params...) -> rows
	OpDBExec      Op = 0x11 // (string db | int tx, string sql, params...) -> (int affected, int last_id)
	OpDBBegin     Op = 0x12 // (string db) -> (int tx)
	OpDBCommit    Op = 0x13 // (int tx) -> ()
	OpDBRollback  Op = 0x14 // (int tx) -> ()
	OpDBPrepare   Op = 0x15 // (string db | int tx, string sql) -> (int stmt)
	OpDBStmtQuery Op = 0x16 // (int stmt, params...) -> rows
	OpDBStmtExec  Op = 0x17 // (int stmt, params...) -> (int affected, int last_id)
	OpDBStmtClose Op = 0x18 // (int stmt) -> ()

	OpCacheGet     Op = 0x20 // (string key) -> (bytes) | NotFound
	OpCacheSet     Op = 0x21 // (string key, bytes value, int ttl_ms) -> ()
	OpCacheDelete  Op = 0x22 // (string key) -> (bool existed)
	OpCacheGetMany Op = 0x23 // (string key...) -> (bytes | null)...
	OpCacheIncr    Op = 0x24 // (string key, int delta, int ttl_ms) -> (int value)
	OpCacheAdd     Op = 0x25 // (string key, bytes value, int ttl_ms) -> (bool added)

	OpLockAcquire Op = 0x30 // (string key, int ttl_ms, int wait_ms) -> (string token) | Conflict
	OpLockRelease Op = 0x31 // (string key, string token) -> (bool released)
	OpLockExtend  Op = 0x32 // (string key, string token, int ttl_ms) -> (bool extended)

	OpQueueSubmit Op = 0x40 // (string queue, bytes payload, int delay_ms) -> (string job_id)
)

// String returns the op's name as written in ABI.md, e.g. "cache.get".
func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("op(0x%x)", uint32(o))
}

var opNames = map[Op]string{
	OpLog: "log", OpConfigGet: "config.get",
	OpDBQuery: "db.query", OpDBExec: "db.exec", OpDBBegin: "db.begin", OpDBCommit: "db.commit",
	OpDBRollback: "db.rollback", OpDBPrepare: "db.prepare", OpDBStmtQuery: "db.stmt_query",
	OpDBStmtExec: "db.stmt_exec", OpDBStmtClose: "db.stmt_close",
	OpCacheGet: "cache.get", OpCacheSet: "cache.set", OpCacheDelete: "cache.delete",
	OpCacheGetMany: "cache.get_many", OpCacheIncr: "cache.incr", OpCacheAdd: "cache.add",
	OpLockAcquire: "lock.acquire", OpLockRelease: "lock.release", OpLockExtend: "lock.extend",
	OpQueueSubmit: "queue.submit",
}

// Code is the status byte that starts every host-call reply.
type Code uint8

// Reply codes. OK is followed by the reply values; every other code is
// followed by one string, a human-readable message.
const (
	OK             Code = 0
	ErrNotFound    Code = 1  // key or row absent (a cache miss is not a failure)
	ErrDenied      Code = 2  // the plugin's manifest does not grant this
	ErrUnavailable Code = 3  // backend down or overloaded; retrying later may work
	ErrInvalid     Code = 4  // malformed arguments
	ErrTimeout     Code = 5  // the operation or the request deadline ran out
	ErrInternal    Code = 6  // host bug or unexpected backend error
	ErrConflict    Code = 7  // lock held by someone else, token mismatch
	ErrTooLarge    Code = 8  // a reply or value over its limit
	ErrUnknownOp   Code = 9  // the host does not implement this op
	ErrSQL         Code = 10 // the database rejected the statement
)

// String returns the code's name, e.g. "not_found".
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

var codeNames = [...]string{"ok", "not_found", "denied", "unavailable", "invalid",
	"timeout", "internal", "conflict", "too_large", "unknown_op", "sql"}

// Log levels for OpLog; the numbers match log/slog's levels.
const (
	LevelDebug = -4
	LevelInfo  = 0
	LevelWarn  = 4
	LevelError = 8
)

// JobStatus is the outcome a guest reports for one job.
type JobStatus uint32

// Job outcomes.
const (
	JobOK    JobStatus = 0 // done: acknowledge
	JobRetry JobStatus = 1 // failed: retry with backoff (dead-letter after max attempts)
	JobFail  JobStatus = 2 // failed permanently: dead-letter now
)
