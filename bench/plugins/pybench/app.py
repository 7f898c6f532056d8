"""pybench: the Python side of the benchmark's py-json and py-db scenarios
(bench/workload), the same work as the Go plugins hello and benchapp:

    GET /json        {"message":"hello, world"}
    GET /db?id=N     row N of table world (database "bench") by primary key
                     plus one cache read of "world:N"

bench/suite builds it with sdk-python's tool and writes its manifest
(routes, grants of database "bench", cache namespace "bench").
"""

import wasmcorn
from wasmcorn import cache, db

app = wasmcorn.App()
conn = db.connect("bench")

ROWS = 1000
MESSAGE = {"message": "hello, world"}


@app.get("/json")
def hello(request):
    return MESSAGE


@app.get("/db")
def db_row(request):
    try:
        i = int(request.query.get("id", ""))
    except ValueError:
        i = 0
    if not 1 <= i <= ROWS:
        wasmcorn.abort(400, "id must be 1..%d" % ROWS)
    r = conn.execute("SELECT id, randomnumber FROM world WHERE id = ?", (i,)).fetchone()
    if r is None:
        wasmcorn.abort(404, "no row %d" % i)
    cached = cache.get_str("world:%d" % i)
    return {"id": r[0], "randomNumber": r[1], "cached": cached}
