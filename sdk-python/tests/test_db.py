"""wasmcorn.db: the PEP 249 module over the host's SQL ops (FakeHost runs
them on SQLite, as the server's embedded backend does)."""

import datetime
import decimal

import pytest

from wasmcorn import _abi, db
from wasmcorn.testing import FakeHost


@pytest.fixture
def host():
    with FakeHost(databases=("default", "other")) as h:
        conn = db.connect()
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, price REAL, "
                     "data BLOB, note TEXT)")
        yield h


def ops(host):
    return [_abi.op_name(op) for op, _ in host.calls]


def test_module_globals():
    assert (db.apilevel, db.threadsafety, db.paramstyle) == ("2.0", 1, "qmark")
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
                 "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError"):
        assert issubclass(getattr(db, name), Exception)
    assert issubclass(db.IntegrityError, db.DatabaseError) and issubclass(db.DatabaseError, db.Error)
    assert db.NUMBER == int and db.STRING == str and db.BINARY == bytes and db.NUMBER != str


def test_insert_select_types(host):
    conn = db.connect()
    cur = conn.cursor()
    cur.execute("INSERT INTO items (name, price, data, note) VALUES (?, ?, ?, ?)", ("pen", 1.5, b"\x00\xff", None))
    assert cur.rowcount == 1 and cur.lastrowid == 1
    assert conn.in_transaction  # DML opened a transaction
    conn.commit()
    assert not conn.in_transaction
    cur.execute("SELECT id, name, price, data, note FROM items WHERE name = ?", ["pen"])
    assert [d[0] for d in cur.description] == ["id", "name", "price", "data", "note"]
    assert cur.description[0][1] == db.NUMBER and cur.description[3][1] == db.BINARY
    assert cur.description[4][1] is None  # all NULL
    assert cur.fetchone() == (1, "pen", 1.5, b"\x00\xff", None)
    assert cur.fetchone() is None


def test_select_does_not_begin(host):
    conn = db.connect()
    host.calls.clear()
    conn.execute("SELECT 1")
    conn.execute("  -- comment\n /* block */ select 2")
    assert ops(host) == ["db.query", "db.query"]
    assert not conn.in_transaction


def test_rollback_and_context_manager(host):
    conn = db.connect()
    conn.execute("INSERT INTO items (name) VALUES (?)", ("a",))
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
    with conn:
        conn.execute("INSERT INTO items (name) VALUES (?)", ("b",))
    assert conn.execute("SELECT name FROM items").fetchall() == [("b",)]
    with pytest.raises(RuntimeError):
        with conn:
            conn.execute("INSERT INTO items (name) VALUES (?)", ("c",))
            raise RuntimeError("abort")
    assert conn.query("SELECT name FROM items") == [{"name": "b"}]


def test_uncommitted_work_is_rolled_back_at_call_end(host):
    conn = db.connect()
    conn.execute("INSERT INTO items (name) VALUES (?)", ("x",))
    assert conn.in_transaction
    host.end_call()   # the server ends the request
    db._end_call()    # and the runtime forgets the handle
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)


def test_autocommit(host):
    conn = db.connect(autocommit=True)
    host.calls.clear()
    conn.execute("INSERT INTO items (name) VALUES (?)", ("auto",))
    assert ops(host) == ["db.exec"]
    assert db.connect().query_one("SELECT name FROM items") == {"name": "auto"}


def test_executemany_prepares_once(host):
    conn = db.connect()
    host.calls.clear()
    cur = conn.cursor()
    cur.executemany("INSERT INTO items (name, price) VALUES (?, ?)", [("a", 1), ("b", 2), ("c", 3)])
    conn.commit()
    assert cur.rowcount == 3
    assert ops(host) == ["db.begin", "db.prepare", "db.stmt_exec", "db.stmt_exec", "db.stmt_exec",
                         "db.stmt_close", "db.commit"]
    cur.execute("SELECT name FROM items ORDER BY price DESC")
    assert cur.fetchmany(2) == [("c",), ("b",)]
    assert list(cur) == [("a",)]


def test_parameter_adaptation(host):
    conn = db.connect()
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    conn.execute("INSERT INTO items (name, note, price) VALUES (?, ?, ?)", ("d", when, decimal.Decimal("2.50")))
    row = conn.query_one("SELECT note, price FROM items")
    assert row == {"note": "2024-05-06 07:08:09", "price": 2.5}
    with pytest.raises(db.ProgrammingError):
        conn.execute("SELECT ?", (object(),))
    with pytest.raises(db.ProgrammingError):
        conn.execute("SELECT :a", {"a": 1})


def test_errors_map_to_pep249(host):
    conn = db.connect()
    conn.execute("INSERT INTO items (name) VALUES (?)", ("dup",))
    with pytest.raises(db.IntegrityError) as e:
        conn.execute("INSERT INTO items (name) VALUES (?)", ("dup",))
    assert "UNIQUE" in str(e.value)
    with pytest.raises(db.ProgrammingError):
        conn.execute("SELECT * FROM nope")
    with pytest.raises(db.ProgrammingError, match="not granted"):
        db.connect("secret").execute("SELECT 1")
    with pytest.raises(db.IntegrityError):
        conn.execute("INSERT INTO items (name) VALUES (NULL)")


def test_returning_is_a_query(host):
    conn = db.connect()
    cur = conn.execute("INSERT INTO items (name) VALUES (?) RETURNING id, name", ("r",))
    assert cur.fetchall() == [(1, "r")]
    assert conn.in_transaction


def test_closed(host):
    conn = db.connect()
    cur = conn.cursor()
    cur.close()
    with pytest.raises(db.ProgrammingError):
        cur.execute("SELECT 1")
    conn.close()
    with pytest.raises(db.ProgrammingError):
        conn.cursor()


def test_two_databases(host):
    other = db.connect("other")
    other.execute("CREATE TABLE t (x)")
    with other:
        other.execute("INSERT INTO t VALUES (?)", (1,))
    assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
    with pytest.raises(db.ProgrammingError):
        db.connect().execute("SELECT x FROM t")


def test_statement_kinds_are_cached_and_bounded():
    db._kinds.clear()
    assert db._kind("  /* x */ insert INTO t VALUES (1)") == (True, False)
    assert db._kind("SELECT 1") == (False, True)
    assert db._kind("delete from t returning id") == (True, True)
    assert db._kind("CREATE TABLE t (x)") == (False, False)
    assert db._kinds["SELECT 1"] == (False, True)
    for i in range(db._KINDS_MAX + 10):
        db._kind("SELECT %d" % i)
    assert len(db._kinds) <= db._KINDS_MAX
