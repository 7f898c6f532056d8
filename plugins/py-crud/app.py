"""py-crud: CRUD on the host's SQL database through wasmcorn.db (PEP 249).

    GET    /py-crud/items             list (?limit=)
    POST   /py-crud/items             create {"name": ..., "price": ...}
    GET    /py-crud/items/<id>        read
    PUT    /py-crud/items/<id>        update
    DELETE /py-crud/items/<id>        delete
    GET    /py-crud/db/<id>           one row by primary key plus one cache
                                      read (the benchmark's /db workload)

The manifest (plugins/py-crud.toml) grants the database "default". The
schema is created on the first request of each instance (host calls are
not available while the plugin is pre-initialized).
"""

import wasmcorn
from wasmcorn import cache, db

app = wasmcorn.App(prefix="/py-crud")
conn = db.connect("default")

SCHEMA = """CREATE TABLE IF NOT EXISTS py_items (
    id INTEGER PRIMARY KEY AUTO_INCREMENT_PLACEHOLDER,
    name VARCHAR(200) NOT NULL UNIQUE,
    price DOUBLE NOT NULL DEFAULT 0,
    created_at VARCHAR(32) NOT NULL
)"""
_ready = False


@app.before_request
def ensure_schema(request):
    global _ready
    if not _ready:
        try:
            # MariaDB/MySQL spelling; SQLite rejects it as a syntax error...
            conn.execute(SCHEMA.replace("AUTO_INCREMENT_PLACEHOLDER", "AUTO_INCREMENT"))
        except db.ProgrammingError:
            # ...and auto-increments an INTEGER PRIMARY KEY by itself.
            conn.execute(SCHEMA.replace(" AUTO_INCREMENT_PLACEHOLDER", ""))
        _ready = True


def row(r):
    return {"id": r[0], "name": r[1], "price": r[2], "created_at": r[3]}


def fetch(item_id):
    cur = conn.execute("SELECT id, name, price, created_at FROM py_items WHERE id = ?", (item_id,))
    r = cur.fetchone()
    if r is None:
        wasmcorn.abort(404, "no item %d" % item_id)
    return r


def validate(data, partial=False):
    if not isinstance(data, dict):
        wasmcorn.abort(400, "send a JSON object")
    out = {}
    if "name" in data or not partial:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            wasmcorn.abort(422, "name must be a non-empty string of at most 200 characters")
        out["name"] = name.strip()
    if "price" in data:
        price = data["price"]
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            wasmcorn.abort(422, "price must be a number >= 0")
        out["price"] = float(price)
    return out


@app.get("/items")
def list_items(request):
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
    except ValueError:
        wasmcorn.abort(400, "limit must be an integer")
    cur = conn.execute("SELECT id, name, price, created_at FROM py_items ORDER BY id LIMIT ?", (limit,))
    return {"items": [row(r) for r in cur.fetchall()]}


@app.post("/items")
def create_item(request):
    import datetime

    data = validate(request.json)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        with conn:
            cur = conn.execute("INSERT INTO py_items (name, price, created_at) VALUES (?, ?, ?)",
                               (data["name"], data.get("price", 0.0), now))
    except db.IntegrityError:
        wasmcorn.abort(409, "an item named %r exists" % data["name"])
    return row(fetch(cur.lastrowid)), 201


@app.get("/items/<int:item_id>")
def get_item(request, item_id):
    return row(fetch(item_id))


@app.put("/items/<int:item_id>")
def update_item(request, item_id):
    data = validate(request.json, partial=True)
    if not data:
        wasmcorn.abort(400, "nothing to update")
    sets = ", ".join("%s = ?" % k for k in sorted(data))
    try:
        with conn:
            cur = conn.execute("UPDATE py_items SET %s WHERE id = ?" % sets,
                               tuple(data[k] for k in sorted(data)) + (item_id,))
    except db.IntegrityError:
        wasmcorn.abort(409, "an item named %r exists" % data.get("name"))
    if cur.rowcount == 0:
        wasmcorn.abort(404, "no item %d" % item_id)
    return row(fetch(item_id))


@app.delete("/items/<int:item_id>")
def delete_item(request, item_id):
    with conn:
        cur = conn.execute("DELETE FROM py_items WHERE id = ?", (item_id,))
    if cur.rowcount == 0:
        wasmcorn.abort(404, "no item %d" % item_id)
    return None


@app.get("/db/<int:item_id>")
def db_and_cache(request, item_id):
    r = conn.execute("SELECT id, name, price, created_at FROM py_items WHERE id = ?", (item_id,)).fetchone()
    greeting = cache.get("greeting")
    return {"item": row(r) if r else None, "greeting": greeting.decode() if greeting else None}
