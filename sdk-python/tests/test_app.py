"""Routing, requests, responses, errors and jobs through the runtime
(natively, with the codec in the loop via TestClient)."""

import pytest

import wasmcorn
from wasmcorn import _abi
from wasmcorn.testing import FakeHost, TestClient


@pytest.fixture
def host():
    with FakeHost() as h:
        yield h


def make_app():
    app = wasmcorn.App()

    @app.route("/")
    def index(request):
        return {"hello": request.query.get("name", "world")}

    @app.route("/items/<int:item_id>", methods=["GET", "PUT"])
    def item(request, item_id):
        if request.method == "PUT":
            return {"id": item_id, "body": request.json}, 201
        return {"id": item_id, "type": type(item_id).__name__}

    @app.route("/files/<path:rest>")
    def files(request, rest):
        return rest

    @app.route("/users/{name}/greet")
    def greet(request, name):
        return "hi " + name

    @app.post("/form")
    def form(request):
        return {"a": request.form.getlist("a"), "b": request.form.get("b"), "ctype": request.content_type}

    @app.get("/cookies")
    def cookies(request):
        r = wasmcorn.Response.json(request.cookies)
        r.set_cookie("sid", "abc", max_age=60, httponly=True, samesite="Lax")
        return r

    @app.get("/teapot")
    def teapot(request):
        wasmcorn.abort(418, "short and stout", headers={"X-Pot": "yes"})

    @app.get("/boom")
    def boom(request):
        return 1 / 0

    @app.get("/none")
    def none(request):
        return None

    @app.get("/bytes")
    def raw(request):
        return b"\x00\x01", {"Content-Type": "application/x-raw"}

    @app.get("/headers")
    def hdrs(request):
        return {"ua": request.headers.get("user-agent"), "all": request.headers.get_all("X-Multi"),
                "param": request.params.get("id"), "remote": request.remote_addr, "url": request.url}

    @app.errorhandler(404)
    def not_found(request, e):
        return {"error": "nothing at " + request.path}, 404

    @app.job("emails")
    def send(job):
        if job.json().get("fail"):
            raise wasmcorn.FailJob("bad address")
        if job.json().get("retry"):
            raise wasmcorn.RetryJob("smtp busy")
        if job.json().get("crash"):
            raise KeyError("oops")
        wasmcorn.cache.set("sent:" + job.id, job.payload)

    return app


def test_routes(host):
    c = TestClient(make_app(), host=host)
    r = c.get("/?name=ann")
    assert (r.status, r.get_json(), r.headers.get("content-type")) == (200, {"hello": "ann"}, "application/json")
    assert c.get("/items/42").get_json() == {"id": 42, "type": "int"}
    r = c.put("/items/7", json={"x": 1})
    assert (r.status, r.get_json()) == (201, {"id": 7, "body": {"x": 1}})
    assert c.get("/files/a/b/c.txt").text == "a/b/c.txt"
    assert c.get("/users/bob/greet").text == "hi bob"


def test_not_found_and_method_not_allowed(host):
    c = TestClient(make_app(), host=host)
    r = c.get("/items/abc")  # int converter does not match
    assert (r.status, r.get_json()) == (404, {"error": "nothing at /items/abc"})
    r = c.delete("/items/1")
    assert r.status == 405
    assert r.headers.get("Allow") == "GET, HEAD, PUT"


def test_head_has_no_body(host):
    c = TestClient(make_app(), host=host)
    r = c.head("/items/1")
    assert (r.status, r.body) == (200, b"")
    # The length a GET would have, as net/http and the server send it.
    assert r.headers.get("Content-Length") == str(len(c.get("/items/1").body))


def test_form_and_cookies(host):
    c = TestClient(make_app(), host=host)
    r = c.post("/form", data={"a": ["1", "2"], "b": "x y"})
    assert r.get_json() == {"a": ["1", "2"], "b": "x y", "ctype": "application/x-www-form-urlencoded"}
    r = c.get("/cookies", headers={"Cookie": 'theme=dark; lang="en"'})
    assert r.get_json() == {"theme": "dark", "lang": "en"}
    assert r.headers.get("Set-Cookie") == "sid=abc; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"


def test_multipart(host):
    app = wasmcorn.App()

    @app.post("/upload")
    def upload(request):
        f = request.files["doc"]
        return {"title": request.form["title"], "name": f.filename, "type": f.content_type, "data": f.data.decode()}

    body = (b"--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nfile body\r\n--XX--\r\n")
    r = TestClient(app, host=host).post("/upload", data=body,
                                        headers={"Content-Type": "multipart/form-data; boundary=XX"})
    assert r.get_json() == {"title": "Hello", "name": "a.txt", "type": "text/plain", "data": "file body"}


def test_http_error_and_exceptions(host):
    c = TestClient(make_app(), host=host)
    r = c.get("/teapot")
    assert (r.status, r.text, r.headers.get("X-Pot")) == (418, "short and stout", "yes")
    r = c.get("/boom")
    assert (r.status, r.text) == (500, "Internal Server Error")
    level, msg, attrs = host.logs[-1]
    assert level == wasmcorn.log.ERROR and msg == "unhandled exception in handler"
    assert attrs["error"] == "ZeroDivisionError: division by zero"
    assert attrs["path"] == "/boom"
    tb = attrs["traceback"]
    # The traceback starts at the app's frame, not in the SDK.
    assert tb.splitlines()[1].strip().startswith('File "%s"' % __file__)
    assert "return 1 / 0" in tb and "ZeroDivisionError" in tb


def test_invalid_json_is_400(host):
    r = TestClient(make_app(), host=host).put("/items/1", data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status == 400 and "invalid JSON" in r.text


def test_return_values(host):
    c = TestClient(make_app(), host=host)
    assert c.get("/none").status == 204
    r = c.get("/bytes")
    assert (r.body, r.headers.get("Content-Type")) == (b"\x00\x01", "application/x-raw")


def test_request_attributes(host):
    r = TestClient(make_app(), host=host).get(
        "/headers?x=1", headers=[("User-Agent", "t/1"), ("X-Multi", "a"), ("X-Multi", "b"),
                                ("X-Wasmcorn-Param-id", "99"), ("Host", "h.test")])
    assert r.get_json() == {"ua": "t/1", "all": ["a", "b"], "param": "99", "remote": "127.0.0.1:5555",
                            "url": "http://h.test/headers?x=1"}


def test_jobs(host):
    c = TestClient(make_app(), host=host)
    assert c.job("emails", {"to": "a"}, job_id="j1") == (_abi.JOB_OK, "")
    assert host.cache["sent:j1"][0] == b'{"to":"a"}'
    assert c.job("emails", {"fail": True}) == (_abi.JOB_FAIL, "bad address")
    assert c.job("emails", {"retry": True}) == (_abi.JOB_RETRY, "smtp busy")
    status, err = c.job("emails", {"crash": True})
    assert (status, err) == (_abi.JOB_RETRY, "KeyError: 'oops'")
    assert host.logs[-1][1] == "unhandled exception in job handler"
    status, err = c.job("nope", b"")
    assert status == _abi.JOB_FAIL and "no job handler for queue 'nope'" in err


def test_plain_handler_function(host):
    def handle(request):
        return {"path": request.path}

    r = TestClient(handle, host=host).get("/any/thing")
    assert r.get_json() == {"path": "/any/thing"}


def test_before_after_hooks(host):
    app = wasmcorn.App()

    @app.before_request
    def auth(request):
        if request.headers.get("Authorization") != "secret":
            return wasmcorn.Response("no", 401)

    @app.after_request
    def stamp(request, response):
        response.headers.set("X-Stamp", "1")
        return response

    @app.get("/")
    def index(request):
        return "ok"

    c = TestClient(app, host=host)
    r = c.get("/")
    # A before_request response still goes through after_request (as
    # Flask, and as an abort() from it does) and HEAD handling.
    assert (r.status, r.text, r.headers.get("X-Stamp")) == (401, "no", "1")
    r = c.head("/")
    assert (r.status, r.body, r.headers.get("X-Stamp"), r.headers.get("Content-Length")) == (401, b"", "1", "2")
    r = c.get("/", headers={"Authorization": "secret"})
    assert (r.status, r.text, r.headers.get("X-Stamp")) == (200, "ok", "1")


def test_route_pattern_errors():
    app = wasmcorn.App()
    with pytest.raises(ValueError):
        app.route("no-slash")(lambda r: None)
    with pytest.raises(ValueError):
        app.route("/<uuid:x>")(lambda r, x: None)
    with pytest.raises(ValueError):
        app.route("/<a>/<a>")(lambda r, a: None)


def test_malformed_request_from_host(host):
    from wasmcorn._runtime import Server

    out = Server(make_app()).handle(b"\x05\x00\x00\x00GE")
    assert _abi.decode_response(out).status == 400


def test_deadline_exceeded_becomes_504(host):
    app = wasmcorn.App()

    @app.get("/slow")
    def slow(request):
        raise wasmcorn.DeadlineExceeded()

    r = TestClient(app, host=host).get("/slow")
    assert r.status == 504
    assert host.logs[-1][1] == "handler stopped at its deadline"
    attrs = host.logs[-1][2]
    assert "DeadlineExceeded" in attrs["traceback"] and "in slow" in attrs["traceback"]


def test_header_and_path_encodings(host):
    app = wasmcorn.App()

    @app.get("/p/<name>")
    def p(request, name):
        return wasmcorn.Response(name, headers={"X-Latin": "caf\u00e9", "X-Wide": "\u8def",
                                                "X-Echo": request.headers.get("X-In")})

    r = TestClient(app, host=host).get("/p/\u00fcn\u00efcode", headers={"X-In": "caf\u00e9"})
    assert r.text == "\u00fcn\u00efcode"
    # Decoded as Latin-1 on the way back, as the server would.
    assert r.headers.get("X-Latin") == "caf\u00e9" and r.headers.get("X-Echo") == "caf\u00e9"
    assert r.headers.get("X-Wide") == "\u8def".encode().decode("latin-1")


def test_parse_query_matches_parse_qsl():
    # The fast path must parse exactly as parse_qsl(keep_blank_values=True).
    import random
    from urllib.parse import parse_qsl

    from wasmcorn._http import parse_query

    cases = ["", "a", "a=", "=b", "a=1&b=2", "a=1&&b=2&", "&", "a=1=2", "x=%20y", "x=a+b", "a;b=c",
             "é=ü", "k=v&k=w", "a&b&c=", "%zz=1", "+=+"]
    rng = random.Random(7)
    alphabet = "ab=&%+;é2 "
    cases += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(12))) for _ in range(3000)]
    for qs in cases:
        assert parse_query(qs) == parse_qsl(qs, keep_blank_values=True), qs


def test_tuple_headers_keep_repeated_names(host):
    app = wasmcorn.App()

    @app.get("/list")
    def as_list(request):
        return "ok", 200, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Type", "text/x-ok")]

    @app.get("/headers")
    def as_headers(request):
        return "ok", wasmcorn.Headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])

    c = TestClient(app, host=host)
    for path in ("/list", "/headers"):
        assert c.get(path).headers.get_all("Set-Cookie") == ["a=1", "b=2"], path
    assert c.get("/list").headers.get_all("Content-Type") == ["text/x-ok"]


def test_undecodable_path_echoed(host):
    app = wasmcorn.App()

    @app.get("/echo/<name>")
    def echo(request, name):
        return {"name": name}

    @app.get("/text/<name>")
    def text(request, name):
        return name

    # The server percent-decodes: /echo/%FF arrives as the byte 0xFF, which
    # the SDK decodes with surrogateescape.
    c = TestClient(app, host=host)
    r = c.get("/echo/\udcff")
    assert r.status == 200 and r.get_json() == {"name": "\udcff"}
    r = c.get("/text/\udcff")
    assert (r.status, r.body) == (200, b"\xff")


def test_form_with_unknown_charset(host):
    app = wasmcorn.App()

    @app.post("/f")
    def f(request):
        return {"a": request.form.get("a")}

    r = TestClient(app, host=host).post("/f", data=b"a=1",
                                       headers={"Content-Type": "application/x-www-form-urlencoded; charset=bogus"})
    assert (r.status, r.get_json()) == (200, {"a": "1"})
