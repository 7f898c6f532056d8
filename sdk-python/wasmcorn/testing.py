"""Test plugins natively, with no server: a fake host and a test client.

    from wasmcorn.testing import FakeHost, TestClient
    import app as plugin

    def test_hello():
        with FakeHost() as host:
            client = TestClient(plugin.app)
            r = client.get("/hello/ann")
            assert r.status == 200 and r.get_json() == {"hello": "ann"}

TestClient drives an app (a wasmcorn.App, a WSGI app or a handler
function) through the same path the guest uses: the request is encoded
with the ABI codec, served by the runtime, and the response decoded.

FakeHost implements every host operation in this process: log records in
host.logs, config from a dict, a cache with TTLs, leases for locks,
submitted jobs in host.jobs, and SQL on an in-memory SQLite database
(Python's sqlite3) with transactions and prepared statements. Installing
it (``with FakeHost() as host`` or ``host.install()``) makes wasmcorn.db,
cache, lock, queue, config and log talk to it.
"""

import itertools
import sqlite3
import time
from urllib.parse import urlencode

from . import _abi, _host
from ._http import Headers, Response, dumps
from ._runtime import Server


class FakeHost:
    """An in-process wasmcorn host for native tests (not thread-safe).

    databases: names the fake grants (each an in-memory SQLite database);
    queues: the queue names it grants (None: any); config: config.get's
    answers. host.down = True makes the cache behave as when its backend is
    unavailable (misses, no-op writes, Unavailable for incr/add/locks).
    """

    def __init__(self, databases=("default",), queues=None, config=None, clock=time.monotonic):
        self.logs = []
        self.jobs = []
        self.config = dict(config or {})
        self.queues = None if queues is None else set(queues)
        self.cache = {}
        self.locks = {}
        self.down = False
        self.clock = clock
        self.dbs = {name: sqlite3.connect(":memory:", isolation_level=None) for name in databases}
        self.calls = []
        self._tx = {}
        self._stmts = {}
        self._ids = itertools.count(1)
        self._prev = None

    # --- installation ---------------------------------------------------

    def install(self):
        """Make the SDK use this host; returns self."""
        self._prev = _host.set_transport(self.transport)
        return self

    def uninstall(self):
        """Restore the previous transport, roll back open transactions."""
        _host.set_transport(self._prev)
        self.end_call()

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.uninstall()
        return False

    def end_call(self):
        """What the server does when a request or job ends: roll back
        uncommitted transactions and close prepared statements."""
        for conn in self._tx.values():
            conn.execute("ROLLBACK")
        self._tx.clear()
        self._stmts.clear()

    # --- transport ------------------------------------------------------

    def transport(self, op, args):
        """The host side of wasmcorn.call: decode, dispatch, encode."""
        try:
            values = _abi.decode_values(args)
        except _abi.ABIError as e:
            return _abi.encode_reply_error(_abi.ERR_INVALID, str(e))
        self.calls.append((op, values))
        fn = self._ops.get(op)
        if fn is None:
            return _abi.encode_reply_error(_abi.ERR_UNKNOWN_OP, "fake host does not implement " + _abi.op_name(op))
        try:
            return _abi.encode_reply_ok(fn(self, *values))
        except _Reply as r:
            return _abi.encode_reply_error(r.code, r.message)
        except TypeError as e:
            return _abi.encode_reply_error(_abi.ERR_INVALID, "%s: %s" % (_abi.op_name(op), e))

    # --- ops ------------------------------------------------------------

    def _log(self, level, msg, *kv):
        self.logs.append((level, msg, dict(zip(kv[0::2], kv[1::2]))))
        return ()

    def _config_get(self, key):
        if key not in self.config:
            raise _Reply(_abi.ERR_NOT_FOUND, "no config key %r" % key)
        return (self.config[key],)

    def _expired(self, key):
        v = self.cache.get(key)
        if v is not None and v[1] is not None and v[1] <= self.clock():
            del self.cache[key]
            return True
        return v is None

    def _cache_get(self, key):
        if self.down or self._expired(key):
            raise _Reply(_abi.ERR_NOT_FOUND, "miss")
        return (self.cache[key][0],)

    def _deadline(self, ttl_ms):
        return None if ttl_ms == 0 else self.clock() + ttl_ms / 1000

    def _cache_set(self, key, value, ttl_ms):
        if not self.down:
            self.cache[key] = (bytes(value), self._deadline(ttl_ms))
        return ()

    def _cache_delete(self, key):
        if self.down:
            return (False,)
        existed = not self._expired(key)
        self.cache.pop(key, None)
        return (existed,)

    def _cache_get_many(self, *keys):
        return tuple(None if self.down or self._expired(k) else self.cache[k][0] for k in keys)

    def _unavailable(self):
        if self.down:
            raise _Reply(_abi.ERR_UNAVAILABLE, "cache backend down")

    def _cache_incr(self, key, delta, ttl_ms):
        self._unavailable()
        if self._expired(key):
            self.cache[key] = (b"0", self._deadline(ttl_ms))
        raw, exp = self.cache[key]
        try:
            n = int(raw) + delta
        except ValueError:
            raise _Reply(_abi.ERR_INVALID, "value at %r is not an integer" % key) from None
        self.cache[key] = (str(n).encode(), exp)
        return (n,)

    def _cache_add(self, key, value, ttl_ms):
        self._unavailable()
        if not self._expired(key):
            return (False,)
        self.cache[key] = (bytes(value), self._deadline(ttl_ms))
        return (True,)

    def _lock_acquire(self, key, ttl_ms, wait_ms):
        self._unavailable()
        held = self.locks.get(key)
        if held is not None and held[1] > self.clock():
            raise _Reply(_abi.ERR_CONFLICT, "lock %r is held" % key)
        token = "tok-%d" % next(self._ids)
        self.locks[key] = (token, self.clock() + ttl_ms / 1000)
        return (token,)

    def _lock_release(self, key, token):
        self._unavailable()
        held = self.locks.get(key)
        if held is None or held[0] != token or held[1] <= self.clock():
            return (False,)
        del self.locks[key]
        return (True,)

    def _lock_extend(self, key, token, ttl_ms):
        self._unavailable()
        held = self.locks.get(key)
        if held is None or held[0] != token or held[1] <= self.clock():
            return (False,)
        self.locks[key] = (token, self.clock() + ttl_ms / 1000)
        return (True,)

    def _queue_submit(self, queue, payload, delay_ms):
        if self.queues is not None and queue not in self.queues:
            raise _Reply(_abi.ERR_DENIED, "queue %r is not granted" % queue)
        job_id = "job-%d" % next(self._ids)
        self.jobs.append((queue, job_id, bytes(payload), delay_ms))
        return (job_id,)

    # SQL: a str target is a database name, an int a transaction handle.
    def _conn(self, target):
        if isinstance(target, int):
            conn = self._tx.get(target)
            if conn is None:
                raise _Reply(_abi.ERR_INVALID, "no transaction %d in this call" % target)
            return conn
        conn = self.dbs.get(target)
        if conn is None:
            raise _Reply(_abi.ERR_DENIED, "database %r is not granted" % target)
        return conn

    def _run(self, conn, sql, params, query):
        try:
            cur = conn.execute(sql, params)
        except sqlite3.Error as e:
            raise _Reply(_abi.ERR_SQL, str(e)) from None
        if not query:
            return (cur.rowcount, cur.lastrowid or 0)
        names = [d[0] for d in cur.description or ()]
        out = [len(names)] + names
        for row in cur.fetchall():
            out.extend(row)
        return tuple(out)

    def _db_query(self, target, sql, *params):
        return self._run(self._conn(target), sql, params, True)

    def _db_exec(self, target, sql, *params):
        return self._run(self._conn(target), sql, params, False)

    def _db_begin(self, name):
        conn = self._conn(name)
        if conn in self._tx.values():
            raise _Reply(_abi.ERR_CONFLICT, "the fake host allows one transaction per database")
        conn.execute("BEGIN")
        tx = next(self._ids)
        self._tx[tx] = conn
        return (tx,)

    def _db_end(self, tx, verb):
        conn = self._tx.pop(tx, None)
        if conn is None:
            raise _Reply(_abi.ERR_INVALID, "no transaction %d in this call" % tx)
        conn.execute(verb)
        return ()

    def _db_commit(self, tx):
        return self._db_end(tx, "COMMIT")

    def _db_rollback(self, tx):
        return self._db_end(tx, "ROLLBACK")

    def _db_prepare(self, target, sql):
        self._conn(target)
        stmt = next(self._ids)
        self._stmts[stmt] = (target, sql)
        return (stmt,)

    def _stmt(self, stmt):
        s = self._stmts.get(stmt)
        if s is None:
            raise _Reply(_abi.ERR_INVALID, "no statement %d in this call" % stmt)
        return s

    def _db_stmt_query(self, stmt, *params):
        target, sql = self._stmt(stmt)
        return self._run(self._conn(target), sql, params, True)

    def _db_stmt_exec(self, stmt, *params):
        target, sql = self._stmt(stmt)
        return self._run(self._conn(target), sql, params, False)

    def _db_stmt_close(self, stmt):
        self._stmt(stmt)
        del self._stmts[stmt]
        return ()

    _ops = {
        _abi.OP_LOG: _log, _abi.OP_CONFIG_GET: _config_get,
        _abi.OP_CACHE_GET: _cache_get, _abi.OP_CACHE_SET: _cache_set, _abi.OP_CACHE_DELETE: _cache_delete,
        _abi.OP_CACHE_GET_MANY: _cache_get_many, _abi.OP_CACHE_INCR: _cache_incr, _abi.OP_CACHE_ADD: _cache_add,
        _abi.OP_LOCK_ACQUIRE: _lock_acquire, _abi.OP_LOCK_RELEASE: _lock_release, _abi.OP_LOCK_EXTEND: _lock_extend,
        _abi.OP_QUEUE_SUBMIT: _queue_submit,
        _abi.OP_DB_QUERY: _db_query, _abi.OP_DB_EXEC: _db_exec, _abi.OP_DB_BEGIN: _db_begin,
        _abi.OP_DB_COMMIT: _db_commit, _abi.OP_DB_ROLLBACK: _db_rollback, _abi.OP_DB_PREPARE: _db_prepare,
        _abi.OP_DB_STMT_QUERY: _db_stmt_query, _abi.OP_DB_STMT_EXEC: _db_stmt_exec,
        _abi.OP_DB_STMT_CLOSE: _db_stmt_close,
    }


class _Reply(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class TestClient:
    """Calls an app natively through the ABI codec and the runtime.

    Methods get, post, put, patch, delete and request return a Response
    (status, headers, body, text, get_json()). json= sends a JSON body,
    data= a form (dict) or raw bytes/str, headers= extra headers, query= a
    dict for the query string. Host operations go to whatever transport is
    installed (use FakeHost). job(queue, payload) runs a job handler and
    returns (status, error).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, app, kind="auto", module=None, host=None):
        self.server = Server(app, kind, module)
        self.host = host

    def request(self, method, target, headers=None, json=None, data=None, query=None, remote_addr="127.0.0.1:5555"):
        path, _, raw_query = target.partition("?")
        if query:
            raw_query = (raw_query + "&" if raw_query else "") + urlencode(query, doseq=True)
        hdrs = Headers(headers)
        body = b""
        if json is not None:
            body = dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(data, dict):
            body = urlencode(data, doseq=True).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else bytes(data)
        hdrs.setdefault("Host", "testserver")
        msg = _abi.encode_request(_abi.RequestMsg(
            method.upper(), "http", hdrs.get("Host"), path, raw_query, remote_addr, "test-request",
            hdrs.items(), body))
        out = self.server.handle(msg)
        if self.host is not None:
            self.host.end_call()
        m = _abi.decode_response(out)
        r = Response.__new__(Response)
        r.status = m.status
        r.headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in m.headers])
        r.body = m.body
        return r

    def get(self, target, **kw):
        """GET target."""
        return self.request("GET", target, **kw)

    def head(self, target, **kw):
        """HEAD target."""
        return self.request("HEAD", target, **kw)

    def post(self, target, **kw):
        """POST target."""
        return self.request("POST", target, **kw)

    def put(self, target, **kw):
        """PUT target."""
        return self.request("PUT", target, **kw)

    def patch(self, target, **kw):
        """PATCH target."""
        return self.request("PATCH", target, **kw)

    def delete(self, target, **kw):
        """DELETE target."""
        return self.request("DELETE", target, **kw)

    def job(self, queue, payload=b"", attempt=1, job_id="test-job"):
        """Run the job handler of queue; return (status, error message)."""
        if isinstance(payload, str):
            payload = payload.encode()
        elif not isinstance(payload, (bytes, bytearray)):
            payload = dumps(payload)
        out = self.server.job(_abi.encode_job(queue, job_id, attempt, payload))
        if self.host is not None:
            self.host.end_call()
        m = _abi.decode_job_result(out)
        return m.status, m.error.decode("utf-8", "replace")
