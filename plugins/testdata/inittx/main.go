// Command inittx is a test plugin that opens a transaction on database
// "main" in its init function, inserts a row (x = 1) into table t and
// leaves the transaction open. With INITTX_PANIC set it then panics, so
// _initialize traps. Either way the host must roll the transaction back
// when the instantiation ends, as it does after a request.
package main

import (
	"database/sql"
	"net/http"
	"os"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	_ "github.com/wasmcorn/wasmcorn/sdk-go/db"
)

var tx *sql.Tx // kept open on purpose

func init() {
	wasmcorn.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	db, err := sql.Open("wasmcorn", "main")
	if err != nil {
		panic(err)
	}
	if tx, err = db.Begin(); err != nil {
		panic(err)
	}
	if _, err := tx.Exec("INSERT INTO t (x) VALUES (1)"); err != nil {
		panic(err)
	}
	if os.Getenv("INITTX_PANIC") != "" {
		panic("inittx: deliberate panic with a transaction open")
	}
}

func main() {}
