// Command login shows locks and counters: a login endpoint that refuses to
// run two logins of one user at once, and counts logins in the cache.
//
//	POST /login/{user}   log in: a new session token (also a cookie) and the
//	                     user's login count -> 200; 409 while another login
//	                     of the same user is in progress
//	GET  /login/{user}   the user's login count -> 200
//
// # Concurrent logins of one user: 409, not waiting
//
// A login holds the lock "user:{user}" while it runs. A second login of the
// same user that arrives meanwhile is a double submit or a retry storm, not
// a second intention: it is answered at once with 409 Conflict and
// Retry-After: 1 instead of waiting, because waiting would only run the
// same login again right after the first, doubling the work and the
// sessions. Logins of different users never wait for each other. The lock
// is a lease (lockTTL), so a login that dies mid-way cannot block its user
// for longer than that.
//
// There are no passwords: this is an example of the lock and cache APIs,
// and ?delay_ms=N (0..2000) stands in for the time a real credential check
// takes, so the 409 can be observed. Sessions are stored in the cache as
// "session:{token}" -> user for sessionTTL; counts are cache counters
// "logins:{user}" without expiry.
//
// If the lock backend is down (Redis unreachable), logins answer 503: a
// lock cannot be pretended. Reading a count then reads 0.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	"github.com/wasmcorn/wasmcorn/sdk-go/cache"
	"github.com/wasmcorn/wasmcorn/sdk-go/lock"
)

const (
	lockTTL    = 10 * time.Second
	sessionTTL = time.Hour
	maxDelay   = 2 * time.Second
)

// validUser accepts 1 to 64 bytes of letters, digits and ._-@.
func validUser(u string) bool {
	if len(u) == 0 || len(u) > 64 {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	status := http.StatusInternalServerError
	var re *abi.ReplyError
	if errors.As(err, &re) {
		switch re.Code {
		case abi.ErrUnavailable:
			status = http.StatusServiceUnavailable
		case abi.ErrTimeout:
			status = http.StatusGatewayTimeout
		}
	}
	wasmcorn.Logger().Error(what, "path", r.URL.Path, "error", err)
	writeJSON(w, status, map[string]string{"error": what + " failed"})
}

func user(w http.ResponseWriter, r *http.Request) (string, bool) {
	u := r.PathValue("user")
	if !validUser(u) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "user names are 1 to 64 letters, digits or ._-@"})
		return "", false
	}
	return u, true
}

func login(w http.ResponseWriter, r *http.Request) {
	u, ok := user(w, r)
	if !ok {
		return
	}
	delay := time.Duration(0)
	if s := r.URL.Query().Get("delay_ms"); s != "" {
		ms, err := strconv.Atoi(s)
		if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxDelay {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "delay_ms must be 0..2000"})
			return
		}
		delay = time.Duration(ms) * time.Millisecond
	}

	l, err := lock.Acquire("user:"+u, lockTTL, 0)
	if errors.Is(err, lock.ErrHeld) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusConflict, map[string]string{"error": "a login of " + u + " is already in progress"})
		return
	}
	if err != nil {
		fail(w, r, "lock", err)
		return
	}
	defer func() {
		if released, err := l.Release(); err != nil || !released {
			// The login is done either way; a lost lease only means a
			// concurrent login may have overlapped this one's end.
			wasmcorn.Logger().Warn("login lock not released", "user", u, "released", released, "error", err)
		}
	}()

	time.Sleep(delay) // the credential check of a real login

	var raw [16]byte
	rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	if err := cache.Set("session:"+token, []byte(u), sessionTTL); err != nil {
		fail(w, r, "store session", err)
		return
	}
	n, err := cache.Incr("logins:"+u, 1, 0)
	if err != nil {
		fail(w, r, "count login", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "session", Value: token, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "logins": n, "session": token})
}

func count(w http.ResponseWriter, r *http.Request) {
	u, ok := user(w, r)
	if !ok {
		return
	}
	v, hit, err := cache.Get("logins:" + u)
	if err != nil {
		fail(w, r, "read count", err)
		return
	}
	n := int64(0)
	if hit {
		if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			fail(w, r, "read count", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "logins": n})
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login/{user}", login)
	mux.HandleFunc("GET /login/{user}", count)
	wasmcorn.Serve(mux)
}

func main() {}
