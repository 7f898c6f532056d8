"""Request, Response, Headers and HTTP errors.

Strings follow the conventions of WSGI and HTTP: header names and values,
the host and the query string are decoded as Latin-1 (lossless: every byte
maps to one code point); the path, which the server percent-decoded, as
UTF-8 with surrogate escapes (``raw_path`` keeps the bytes). The body is
bytes; ``text``, ``json`` and ``form`` decode it on first use.
"""

import json as _json
from functools import cached_property

PARAM_HEADER_PREFIX = "x-wasmcorn-param-"

_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 413: "Payload Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Entity", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def reason(status):
    """Return the standard reason phrase for status ("" when unknown)."""
    return _REASONS.get(status, "")


class Headers:
    """An ordered, case-insensitive multi-map of HTTP header fields.

    Names keep the case they were given; lookups ignore case. ``h[name]``
    and ``get`` return the first value; ``get_all`` every value.
    """

    __slots__ = ("_items",)

    def __init__(self, items=None):
        self._items = []
        if items:
            if isinstance(items, dict):
                items = items.items()
            elif isinstance(items, Headers):
                items = items._items
            for name, value in items:
                self._items.append((str(name), str(value)))

    @classmethod
    def _from_list(cls, items):
        h = cls.__new__(cls)
        h._items = items
        return h

    def get(self, name, default=None):
        """Return the first value of name, or default."""
        n = name.lower()
        for k, v in self._items:
            if k.lower() == n:
                return v
        return default

    def get_all(self, name):
        """Return every value of name, in order (an empty list if none)."""
        n = name.lower()
        return [v for k, v in self._items if k.lower() == n]

    getlist = get_all

    def __getitem__(self, name):
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name):
        return self.get(name) is not None

    def add(self, name, value):
        """Append a field, keeping existing ones of the same name."""
        self._items.append((str(name), str(value)))

    def set(self, name, value):
        """Replace every field named name with one field."""
        self.remove(name)
        self._items.append((str(name), str(value)))

    __setitem__ = set

    def setdefault(self, name, value):
        """Set name to value unless present; return the value in effect."""
        v = self.get(name)
        if v is None:
            self._items.append((str(name), str(value)))
            return str(value)
        return v

    def remove(self, name):
        """Remove every field named name (no error if absent)."""
        n = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != n]

    def __delitem__(self, name):
        if name not in self:
            raise KeyError(name)
        self.remove(name)

    def items(self):
        """Return the fields as a list of (name, value) pairs."""
        return list(self._items)

    def keys(self):
        return [k for k, _ in self._items]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._items)

    def __eq__(self, other):
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    def __repr__(self):
        return "Headers(%r)" % (self._items,)


class MultiDict(dict):
    """A dict of first values that also keeps every value of a key.

    ``d[key]`` and ``d.get(key)`` give the first value, ``d.getlist(key)``
    all of them, in order. Used for query strings and forms.
    """

    def __init__(self, pairs=()):
        super().__init__()
        self._lists = {}
        for k, v in pairs:
            self._lists.setdefault(k, []).append(v)
            if k not in self:
                dict.__setitem__(self, k, v)

    def getlist(self, key):
        """Return every value of key (an empty list if none)."""
        return list(self._lists.get(key, ()))

    def lists(self):
        """Return (key, [values]) pairs."""
        return [(k, list(v)) for k, v in self._lists.items()]


class UploadedFile:
    """One file of a multipart/form-data body."""

    __slots__ = ("name", "filename", "content_type", "data")

    def __init__(self, name, filename, content_type, data):
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data

    def __repr__(self):
        return "UploadedFile(%r, filename=%r, %d bytes)" % (self.name, self.filename, len(self.data))


class HTTPError(Exception):
    """Raise HTTPError(status, message) in a handler to answer with that
    status; message becomes a text/plain body (the reason phrase if None).
    headers (a dict or pairs) are added to the response."""

    def __init__(self, status, message=None, headers=None):
        super().__init__(status, message)
        self.status = status
        self.message = message if message is not None else reason(status) or "error"
        self.headers = headers

    def response(self):
        """Return the Response this error stands for."""
        r = Response(self.message, status=self.status, headers=self.headers)
        return r


def abort(status, message=None, headers=None):
    """Raise HTTPError(status, message, headers)."""
    raise HTTPError(status, message, headers)


def parse_query(qs):
    """Parse a query string (or form body) into a list of (name, value)
    str pairs, blank values kept: urllib.parse.parse_qsl(qs,
    keep_blank_values=True), with a fast path for the common string that
    has nothing to unquote."""
    if "%" in qs or "+" in qs:
        from urllib.parse import parse_qsl  # not imported by every instance

        return parse_qsl(qs, keep_blank_values=True)
    pairs = []
    for field in qs.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((name, value))
    return pairs


def _options(value):
    """Split 'type/sub; a=1; b="x"' into ('type/sub', {'a': '1', 'b': 'x'})."""
    parts = value.split(";")
    opts = {}
    for p in parts[1:]:
        k, _, v = p.strip().partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1]
        opts[k.strip().lower()] = v
    return parts[0].strip().lower(), opts


class Request:
    """An HTTP request as a handler sees it.

    Attributes: method, scheme, host, path (decoded), raw_path (bytes),
    query_string (raw, without '?'), remote_addr ("ip:port"), request_id,
    headers (Headers), body (bytes), params (route parameters, a dict).
    Lazily computed: query, form, files, json, text, cookies, url,
    content_type, content_length.

    A Request belongs to one call; do not keep it after the handler returns.
    """

    def __init__(self, method="GET", path="/", query_string="", headers=None, body=b"",
                 scheme="http", host="", remote_addr="", request_id="", raw_path=None):
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.method = method
        self.scheme = scheme
        self.host = host or self.headers.get("host", "")
        self.path = path
        self.raw_path = raw_path if raw_path is not None else path.encode("utf-8", "surrogateescape")
        self.query_string = query_string
        self.remote_addr = remote_addr
        self.request_id = request_id
        self.body = bytes(body)

    @classmethod
    def _from_message(cls, m):
        """Build from a decoded RequestMsg (the pure-Python codec)."""
        r = cls.__new__(cls)
        r.method = m.method.decode("latin-1")
        r.scheme = m.scheme.decode("latin-1")
        r.host = m.host.decode("latin-1")
        r.raw_path = m.path
        r.path = m.path.decode("utf-8", "surrogateescape")
        r.query_string = m.raw_query.decode("latin-1")
        r.remote_addr = m.remote_addr.decode("latin-1")
        r.request_id = m.request_id.decode("latin-1")
        r.headers = Headers._from_list([(k.decode("latin-1"), v.decode("latin-1")) for k, v in m.headers])
        r.body = m.body
        return r

    @classmethod
    def _from_tuple(cls, t):
        """Build from the shim's decoded tuple (see _wasmcorn.decode_request)."""
        r = cls.__new__(cls)
        (r.method, r.scheme, r.host, r.path, r.raw_path, r.query_string, r.remote_addr, r.request_id,
         items, r.body) = t
        r.headers = Headers._from_list(items)
        return r

    @property
    def params(self):
        """Route parameters: those of the manifest's route pattern (sent by
        the server as X-Wasmcorn-Param-<name> headers, the name as written
        in the pattern) and those of the App's route."""
        p = self.__dict__.get("_params")
        if p is None:
            p = {}
            for k, v in self.headers._items:
                if len(k) > 17 and k[:17].lower() == PARAM_HEADER_PREFIX:
                    p[k[17:]] = v
            route = self.__dict__.get("_route_params")
            if route:
                p.update(route)
            self._params = p
        return p

    def _set_route_params(self, params):
        self._route_params = params
        self.__dict__.pop("_params", None)

    @cached_property
    def query(self):
        """The query string's parameters (a MultiDict of str)."""
        return MultiDict(parse_query(self.query_string))

    @property
    def args(self):
        """Alias of query (the name Flask uses)."""
        return self.query

    @cached_property
    def content_type(self):
        """The media type of the body, lower case, without parameters."""
        return _options(self.headers.get("content-type", ""))[0]

    @cached_property
    def content_length(self):
        """The body's length in bytes."""
        return len(self.body)

    @cached_property
    def charset(self):
        """The body's charset from Content-Type (default utf-8)."""
        return _options(self.headers.get("content-type", ""))[1].get("charset", "utf-8")

    @cached_property
    def text(self):
        """The body decoded with its charset (errors replaced)."""
        try:
            return self.body.decode(self.charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")

    @cached_property
    def json(self):
        """The body parsed as JSON (None for an empty body). Invalid JSON
        raises HTTPError(400)."""
        if not self.body:
            return None
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise HTTPError(400, "invalid JSON body: %s" % e) from None

    def _parse_form(self):
        ctype, opts = _options(self.headers.get("content-type", ""))
        if ctype == "application/x-www-form-urlencoded":
            text = _decode(self.body, opts.get("charset", "utf-8"))
            return MultiDict(parse_query(text)), MultiDict()
        if ctype == "multipart/form-data":
            return _parse_multipart(self.body, self.headers.get("content-type"))
        return MultiDict(), MultiDict()

    @cached_property
    def _form_files(self):
        return self._parse_form()

    @property
    def form(self):
        """Form fields of a urlencoded or multipart body (a MultiDict)."""
        return self._form_files[0]

    @property
    def files(self):
        """Uploaded files of a multipart body (a MultiDict of UploadedFile)."""
        return self._form_files[1]

    @cached_property
    def cookies(self):
        """Cookies sent by the client (a dict of str)."""
        out = {}
        for header in self.headers.get_all("cookie"):
            for part in header.split(";"):
                name, sep, value = part.strip().partition("=")
                if not sep or not name:
                    continue
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                out.setdefault(name.strip(), value)
        return out

    @cached_property
    def url(self):
        """The full URL: scheme://host/path?query."""
        from urllib.parse import quote

        u = "%s://%s%s" % (self.scheme or "http", self.host, quote(self.raw_path, safe="/:@!$&'()*+,;=-._~"))
        return u + "?" + self.query_string if self.query_string else u

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.path)


def _parse_multipart(body, content_type):
    from email.parser import BytesParser
    from email.policy import HTTP

    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise HTTPError(400, "malformed multipart/form-data body")
    fields, files = [], []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        filename = part.get_filename()
        data = part.get_payload(decode=True) or b""
        if filename is not None:
            files.append((name, UploadedFile(name, filename, part.get_content_type(), data)))
        else:
            fields.append((name, _decode(data, part.get_content_charset() or "utf-8")))
    return MultiDict(fields), MultiDict(files)


def _json_default(o):
    iso = getattr(o, "isoformat", None)
    if iso is not None:
        return iso()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, (bytes, bytearray)):
        return o.decode("utf-8", "replace")
    return str(o)


try:
    # The C encoder, built once: json.dumps with options would build a new
    # encoder per call, which is most of a small JSON response's cost.
    # No circular-reference check (markers=None): a cyclic structure ends in
    # RecursionError instead of ValueError.
    from _json import encode_basestring as _c_encode_basestring
    from _json import make_encoder as _c_make_encoder

    _c_encoder = _c_make_encoder(None, _json_default, _c_encode_basestring, None, ":", ",", False, False, True)
except ImportError:  # pragma: no cover - CPython always has _json
    _c_encoder = None
_py_encoder = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)
_ascii_encoder = _json.JSONEncoder(separators=(",", ":"), default=_json_default)


def _decode(data, charset):
    """data decoded with charset, errors replaced; an unknown charset is
    taken as UTF-8."""
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def dumps(obj):
    """Serialize obj to compact UTF-8 JSON bytes. Dates become ISO 8601
    strings, sets lists, and anything else json cannot encode its str()."""
    s = "".join(_c_encoder(obj, 0)) if _c_encoder is not None else _py_encoder.encode(obj)
    try:
        return s.encode()
    except UnicodeEncodeError:
        # A lone surrogate: a byte of the request path that is not UTF-8
        # (decoded with surrogateescape). \u escapes keep the JSON valid.
        return _ascii_encoder.encode(obj).encode()


class Response:
    """An HTTP response.

    body may be bytes or str (encoded as UTF-8). content_type defaults to
    text/plain for str and application/octet-stream for bytes, unless
    headers set Content-Type. Use Response.json / html / redirect for the
    usual cases, and set_cookie / delete_cookie for cookies.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(self, body=b"", status=200, headers=None, content_type=None):
        self.status = int(status)
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        if isinstance(body, str):
            # surrogateescape gives back the bytes of a request path that
            # was not UTF-8 (decoded that way), e.g. echoed in a 404 text.
            body = body.encode("utf-8", "surrogateescape")
            default_type = "text/plain; charset=utf-8"
        else:
            body = bytes(body)
            default_type = "application/octet-stream"
        self.body = body
        if content_type is not None:
            self.headers.set("Content-Type", content_type)
        elif body and "content-type" not in self.headers:
            self.headers.add("Content-Type", default_type)

    @classmethod
    def json(cls, obj, status=200, headers=None):
        """A JSON response (application/json)."""
        return cls(dumps(obj), status, headers, "application/json")

    @classmethod
    def html(cls, text, status=200, headers=None):
        """An HTML response (text/html; charset=utf-8)."""
        return cls(text, status, headers, "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location, status=302):
        """A redirect to location."""
        return cls(b"", status, [("Location", location)])

    def set_cookie(self, name, value="", max_age=None, expires=None, path="/", domain=None,
                   secure=False, httponly=False, samesite=None):
        """Add a Set-Cookie header. max_age is in seconds; expires a
        datetime or a preformatted HTTP date."""
        parts = ["%s=%s" % (name, value)]
        if max_age is not None:
            parts.append("Max-Age=%d" % int(max_age))
        if expires is not None:
            if hasattr(expires, "strftime"):
                expires = expires.strftime("%a, %d %b %Y %H:%M:%S GMT")
            parts.append("Expires=%s" % expires)
        if path:
            parts.append("Path=%s" % path)
        if domain:
            parts.append("Domain=%s" % domain)
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite:
            parts.append("SameSite=%s" % samesite)
        self.headers.add("Set-Cookie", "; ".join(parts))

    def delete_cookie(self, name, path="/", domain=None):
        """Expire cookie name on the client."""
        self.set_cookie(name, "", max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT", path=path, domain=domain)

    @property
    def text(self):
        """The body decoded as UTF-8 (for tests)."""
        return self.body.decode("utf-8", "replace")

    def get_json(self):
        """The body parsed as JSON (for tests)."""
        return _json.loads(self.body)

    def __repr__(self):
        return "<Response %d, %d bytes>" % (self.status, len(self.body))


def make_response(rv):
    """Turn a handler's return value into a Response.

    Response as is; None: 204; dict or list: JSON; str: text/plain; bytes:
    application/octet-stream; a tuple (body, status), (body, headers) or
    (body, status, headers) with body any of the above.
    """
    if isinstance(rv, Response):
        return rv
    if isinstance(rv, tuple):
        status = headers = None
        if len(rv) == 3:
            rv, status, headers = rv
        elif len(rv) == 2:
            rv, second = rv
            if isinstance(second, int):
                status = second
            else:
                headers = second
        else:
            raise TypeError("a handler returned a tuple of %d items; use (body, status[, headers])" % len(rv))
        r = make_response(rv)
        if status is not None:
            r.status = int(status)
        if headers:
            # Each name given replaces the response's values of that name;
            # a name given several times (Set-Cookie) keeps every value.
            pairs = headers.items() if isinstance(headers, (dict, Headers)) else headers
            given = set()
            for k, v in pairs:
                if k.lower() not in given:
                    given.add(k.lower())
                    r.headers.set(k, v)
                else:
                    r.headers.add(k, v)
        return r
    if rv is None:
        return Response(b"", 204)
    if isinstance(rv, (dict, list)):
        r = Response.__new__(Response)
        r.status = 200
        r.headers = Headers._from_list([("Content-Type", "application/json")])
        r.body = dumps(rv)
        return r
    if isinstance(rv, (str, bytes, bytearray, memoryview)):
        return Response(rv)
    raise TypeError("a handler returned %s; return a Response, dict, list, str, bytes, None or a tuple"
                    % type(rv).__name__)
