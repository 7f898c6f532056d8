"""SQL through the host's pooled databases, as a PEP 249 (DB-API 2.0) module.

    from wasmcorn import db

    conn = db.connect("default")          # a database the manifest grants
    cur = conn.cursor()
    cur.execute("SELECT id, name FROM items WHERE id = ?", (42,))
    row = cur.fetchone()

    with conn:                            # commit, or roll back on error
        conn.execute("UPDATE items SET name = ? WHERE id = ?", ("x", 42))

Module globals: apilevel "2.0", threadsafety 1, paramstyle "qmark".

Transactions follow the sqlite3 module's long-standing default: a
transaction is opened implicitly before an INSERT, UPDATE, DELETE or
REPLACE (not before a SELECT, which runs on the pool directly), and ends
with commit() or rollback(). With autocommit=True nothing is opened
implicitly; begin() opens one explicitly. Transactions and prepared
statements belong to the current request or job: the host rolls back
whatever is not committed when the call returns, and the connection
forgets it then, so a Connection object may live at module level.

Parameters: None, bool, int, float, str, bytes; datetime, date and time
are sent as ISO 8601 strings, Decimal as its string. Results come back as
the host's values: None, int, float, str, bytes (and bool).
"""

import re

from . import _abi, _host

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "qmark"


class Warning(Exception):  # noqa: A001 - the name PEP 249 requires
    """PEP 249 Warning (never raised by this module)."""


class Error(Exception):
    """Base of the PEP 249 errors. A HostError behind it is its __cause__."""


class InterfaceError(Error):
    """The host refused the call's arguments (a bug in this module or a bad value)."""


class DatabaseError(Error):
    """An error of the database."""


class DataError(DatabaseError):
    """A value could not be sent or stored."""


class OperationalError(DatabaseError):
    """The database is unavailable, timed out, or a result is too large."""


class IntegrityError(DatabaseError):
    """A constraint failed (unique, foreign key, not null...)."""


class InternalError(DatabaseError):
    """The host failed unexpectedly."""


class ProgrammingError(DatabaseError):
    """Bad SQL, a missing table, a database the manifest does not grant,
    a closed connection or cursor."""


class NotSupportedError(DatabaseError):
    """The operation is not supported."""


class _TypeObject:
    def __init__(self, *types):
        self.types = frozenset(types)

    def __eq__(self, other):
        return other in self.types

    def __ne__(self, other):
        return other not in self.types

    def __hash__(self):
        return hash(self.types)


# Type objects: a description's type_code is the Python type of the column's
# first non-NULL value (None when every value is NULL) and compares equal to
# the matching object.
STRING = _TypeObject(str)
BINARY = _TypeObject(bytes)
NUMBER = _TypeObject(int, float, bool)
DATETIME = _TypeObject(str)
ROWID = _TypeObject(int)

Binary = bytes


def __getattr__(name):
    # Date, Time and Timestamp (PEP 249 constructors) are datetime's
    # classes; datetime is imported only when they are used.
    import datetime

    attrs = {"Date": datetime.date, "Time": datetime.time, "Timestamp": datetime.datetime}
    if name in attrs:
        return attrs[name]
    raise AttributeError("module 'wasmcorn.db' has no attribute %r" % name)


def DateFromTicks(ticks):
    """PEP 249 constructor."""
    import datetime

    return datetime.date.fromtimestamp(ticks)


def TimeFromTicks(ticks):
    """PEP 249 constructor."""
    import datetime

    return datetime.datetime.fromtimestamp(ticks).time()


def TimestampFromTicks(ticks):
    """PEP 249 constructor."""
    import datetime

    return datetime.datetime.fromtimestamp(ticks)


_SQL_INTEGRITY = re.compile(r"constraint|duplicate|foreign key|not null|unique", re.I)
_SQL_PROGRAMMING = re.compile(r"syntax|no such (table|column)|doesn't exist|does not exist|unknown column"
                              r"|no such function|ambiguous", re.I)


def _db_error(e):
    if isinstance(e, _host.SQLError):
        if _SQL_INTEGRITY.search(e.message):
            cls = IntegrityError
        elif _SQL_PROGRAMMING.search(e.message):
            cls = ProgrammingError
        else:
            cls = DatabaseError
    elif isinstance(e, (_host.Unavailable, _host.HostTimeout, _host.TooLarge)):
        cls = OperationalError
    elif isinstance(e, _host.Denied):
        cls = ProgrammingError
    elif isinstance(e, _host.InvalidArgument):
        cls = InterfaceError
    else:
        cls = InternalError
    err = cls(str(e))
    err.__cause__ = e
    return err


def _call(op, *args):
    try:
        return _host.call(op, *args)
    except _host.HostError as e:
        raise _db_error(e) from e


def _adapt(v):
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    import datetime

    if isinstance(v, datetime.datetime):
        return v.isoformat(" ")
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if type(v).__name__ == "Decimal":
        return str(v)
    raise ProgrammingError("cannot bind a parameter of type %s (use None, bool, int, float, str, bytes, "
                           "datetime or Decimal)" % type(v).__name__)


_PLAIN = frozenset((type(None), bool, int, float, str, bytes))


def _params(params):
    if type(params) is tuple:  # the common case: nothing to adapt
        for v in params:
            if type(v) not in _PLAIN:
                break
        else:
            return params
    if params is None:
        return ()
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise ProgrammingError("parameters must be a sequence for paramstyle 'qmark' (got %s)"
                               % type(params).__name__)
    return tuple(_adapt(v) for v in params)


_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_QUERY_WORDS = frozenset(("SELECT", "WITH", "SHOW", "PRAGMA", "EXPLAIN", "VALUES", "DESCRIBE", "DESC", "TABLE"))
_DML_WORDS = frozenset(("INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "UPSERT"))
_RETURNING = re.compile(r"\bRETURNING\b", re.I)


def _first_word(sql):
    i = _LEADING.match(sql).end()
    j = i
    while j < len(sql) and (sql[j].isalpha() or sql[j] == "_"):
        j += 1
    return sql[i:j].upper()


def _is_query(word, sql):
    return word in _QUERY_WORDS or (word in _DML_WORDS and _RETURNING.search(sql) is not None)


# (is DML, is a query) per statement text: handlers run the same few
# statements over and over. Bounded: cleared when full.
_kinds = {}
_KINDS_MAX = 512


def _kind(sql):
    k = _kinds.get(sql)
    if k is None:
        word = _first_word(sql)
        k = (word in _DML_WORDS, _is_query(word, sql))
        if len(_kinds) >= _KINDS_MAX:
            _kinds.clear()
        _kinds[sql] = k
    return k


def _rows(values):
    if not values:
        raise InterfaceError("the host's query reply has no column count")
    ncols = values[0]
    if not isinstance(ncols, int) or ncols < 0 or len(values) < 1 + ncols:
        raise InterfaceError("malformed query reply from the host")
    names = values[1:1 + ncols]
    flat = values[1 + ncols:]
    if ncols == 0:
        return names, []
    if len(flat) % ncols:
        raise InterfaceError("query reply: %d values do not fill rows of %d columns" % (len(flat), ncols))
    return names, [tuple(flat[i:i + ncols]) for i in range(0, len(flat), ncols)]


def _description(names, rows):
    desc = []
    for i, name in enumerate(names):
        t = None
        for r in rows:
            if r[i] is not None:
                t = type(r[i])
                break
        desc.append((name, t, None, None, None, None, True))
    return desc


# Connections with a transaction open in the current call; the runtime
# calls _end_call() after every request and job.
_in_tx = set()


def _end_call():
    if _in_tx:
        for c in _in_tx:
            c._tx = None
        _in_tx.clear()


class Connection:
    """A PEP 249 connection to database name (as granted by the manifest).

    Cheap: it holds the name and, while one is open, a transaction handle.
    Not safe for use by several threads at once (the guest has one thread).
    """

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, database="default", autocommit=False):
        self.database = database
        self.autocommit = autocommit
        self._tx = None
        self._closed = False

    def _check(self):
        if self._closed:
            raise ProgrammingError("connection to %r is closed" % self.database)

    def _target(self):
        return self._tx if self._tx is not None else self.database

    @property
    def in_transaction(self):
        """Whether a transaction is open."""
        return self._tx is not None

    def begin(self):
        """Open a transaction now (a no-op if one is open)."""
        self._check()
        if self._tx is None:
            self._tx = _call(_abi.OP_DB_BEGIN, self.database)[0]
            _in_tx.add(self)

    def commit(self):
        """Commit the open transaction, if any."""
        self._check()
        tx, self._tx = self._tx, None
        _in_tx.discard(self)
        if tx is not None:
            _call(_abi.OP_DB_COMMIT, tx)

    def rollback(self):
        """Roll back the open transaction, if any."""
        self._check()
        tx, self._tx = self._tx, None
        _in_tx.discard(self)
        if tx is not None:
            _call(_abi.OP_DB_ROLLBACK, tx)

    def close(self):
        """Roll back any open transaction and make the connection unusable."""
        if self._closed:
            return
        try:
            self.rollback()
        finally:
            self._closed = True

    def cursor(self):
        """Return a new Cursor."""
        self._check()
        return Cursor(self)

    def execute(self, sql, params=()):
        """Shortcut: a new cursor, execute(sql, params), return the cursor."""
        if self._closed:
            self._check()
        return Cursor(self).execute(sql, params)

    def executemany(self, sql, seq_of_params):
        """Shortcut: a new cursor, executemany(sql, seq_of_params)."""
        return self.cursor().executemany(sql, seq_of_params)

    def query(self, sql, *params):
        """Run a query and return its rows as dicts (column name -> value)."""
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def query_one(self, sql, *params):
        """Run a query and return its first row as a dict, or None."""
        rows = self.query(sql, *params)
        return rows[0] if rows else None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False

    def __repr__(self):
        return "<wasmcorn.db.Connection %r%s>" % (self.database, " in transaction" if self._tx else "")


class Cursor:
    """A PEP 249 cursor. Results are fetched whole by execute (the host
    bounds their size); fetch* then read from memory."""

    def __init__(self, connection):
        self.connection = connection
        self.arraysize = 1
        self.description = None
        self.rowcount = -1
        self.lastrowid = None
        self._rows = []
        self._pos = 0
        self._closed = False

    def _check(self):
        if self._closed:
            raise ProgrammingError("cursor is closed")
        self.connection._check()

    def _reset(self):
        self.description = None
        self.rowcount = -1
        self.lastrowid = None
        self._rows = []
        self._pos = 0

    def execute(self, sql, params=()):
        """Run one statement with qmark parameters; returns the cursor."""
        conn = self.connection
        if self._closed or conn._closed:
            self._check()
        if not isinstance(sql, str):
            raise ProgrammingError("sql must be a str, not %s" % type(sql).__name__)
        args = _params(params)
        # _reset, inline: execute is the hot path.
        self.description = None
        self.rowcount = -1
        self.lastrowid = None
        self._rows = []
        self._pos = 0
        dml, query = _kind(sql)
        if dml and not conn.autocommit and conn._tx is None:
            conn.begin()
        if query:
            names, rows = _rows(_call(_abi.OP_DB_QUERY, conn._target(), sql, *args))
            self.description = _description(names, rows)
            self._rows = rows
            self.rowcount = len(rows)
        else:
            affected, last_id = _call(_abi.OP_DB_EXEC, conn._target(), sql, *args)
            self.rowcount = affected
            self.lastrowid = last_id
        return self

    def executemany(self, sql, seq_of_params):
        """Run one statement once per parameter sequence (prepared once);
        rowcount is the total of rows affected."""
        self._check()
        self._reset()
        conn = self.connection
        dml, query = _kind(sql)
        if query:
            raise ProgrammingError("executemany() is for statements, not queries")
        if dml and not conn.autocommit and conn._tx is None:
            conn.begin()
        stmt = _call(_abi.OP_DB_PREPARE, conn._target(), sql)[0]
        total = 0
        try:
            for params in seq_of_params:
                affected, last_id = _call(_abi.OP_DB_STMT_EXEC, stmt, *_params(params))
                total += affected
                self.lastrowid = last_id
        finally:
            _call(_abi.OP_DB_STMT_CLOSE, stmt)
        self.rowcount = total
        return self

    def fetchone(self):
        """Return the next row (a tuple), or None."""
        if self._closed or self.connection._closed:
            self._check()
        if self._pos >= len(self._rows):
            return None
        r = self._rows[self._pos]
        self._pos += 1
        return r

    def fetchmany(self, size=None):
        """Return up to size rows (default arraysize)."""
        self._check()
        n = self.arraysize if size is None else size
        rows = self._rows[self._pos:self._pos + n]
        self._pos += len(rows)
        return rows

    def fetchall(self):
        """Return the remaining rows."""
        self._check()
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def close(self):
        """Free the results; the cursor is unusable afterwards."""
        self._closed = True
        self._rows = []

    def setinputsizes(self, sizes):
        """PEP 249: accepted and ignored."""

    def setoutputsize(self, size, column=None):
        """PEP 249: accepted and ignored."""

    def __iter__(self):
        return self

    def __next__(self):
        r = self.fetchone()
        if r is None:
            raise StopIteration
        return r

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def connect(database="default", autocommit=False):
    """Return a Connection to database (a name the manifest grants)."""
    if not isinstance(database, str) or not database:
        raise InterfaceError("database must be a non-empty name")
    return Connection(database, autocommit)
