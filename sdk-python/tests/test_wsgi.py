"""The WSGI bridge: environ per PEP 3333, and a stock Flask app (Debian's
python3-flask) served unchanged."""

import pytest

from wasmcorn import wsgi
from wasmcorn._http import Request
from wasmcorn.testing import FakeHost, TestClient


def test_environ():
    req = Request("POST", "/a b/ü", "x=1&y=2", [("Host", "example.com:8080"), ("Content-Type", "text/plain"),
                                                 ("X-A", "1"), ("X-A", "2"), ("Cookie", "a=1"), ("Cookie", "b=2")],
                  b"body", scheme="https", remote_addr="[::1]:4444", request_id="rid")
    env = wsgi.environ_for(req)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/a b/ü".encode().decode("latin-1")
    assert env["SCRIPT_NAME"] == "" and env["QUERY_STRING"] == "x=1&y=2"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("::1", "4444")
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "4"
    assert env["HTTP_X_A"] == "1,2" and env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["wsgi.url_scheme"] == "https" and env["wsgi.input"].read() == b"body"
    assert env["wsgi.multithread"] is False and env["REQUEST_ID"] == "rid"
    assert "HTTP_CONTENT_TYPE" not in env


def test_environ_drops_underscore_headers():
    # An underscore header would share the environ key of its dashed twin.
    req = Request("GET", "/", "", [("X-Wasmcorn-Param-id", "7"), ("X_Wasmcorn_Param_id", "spoofed"),
                                   ("X_Forwarded_For", "1.2.3.4"), ("X-Ok", "1")], b"")
    env = wsgi.environ_for(req)
    assert env["HTTP_X_WASMCORN_PARAM_ID"] == "7"
    assert "HTTP_X_FORWARDED_FOR" not in env and env["HTTP_X_OK"] == "1"


def test_minimal_wsgi_app_and_close():
    closed = []

    class Body:
        def __iter__(self):
            yield b"hello "
            yield b"world"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("201 Created", [("X-Test", "1"), ("Content-Type", "text/plain")])
        return Body()

    with FakeHost():
        r = TestClient(app, kind="wsgi").get("/")
    assert (r.status, r.body, r.headers.get("X-Test")) == (201, b"hello world", "1")
    assert closed == [True]


def test_write_callable_and_errors():
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"via write;")
        return [b"via iter"]

    def broken(environ, start_response):
        return [b"no start_response"]

    with FakeHost() as host:
        assert TestClient(app, kind="wsgi").get("/").body == b"via write;via iter"
        assert TestClient(broken, kind="wsgi").get("/").status == 500
        assert "start_response" in host.logs[-1][2]["error"]


flask = pytest.importorskip("flask")


def make_flask_app():
    app = flask.Flask("stock")

    @app.route("/hello/<name>")
    def hello(name):
        return flask.jsonify(hello=name, q=flask.request.args.get("q"))

    @app.route("/echo", methods=["POST"])
    def echo():
        return {"json": flask.request.get_json(), "ua": flask.request.headers.get("User-Agent")}

    @app.route("/set")
    def set_cookie():
        resp = flask.make_response("ok")
        resp.set_cookie("k", "v")
        return resp

    @app.route("/fail")
    def fail():
        raise RuntimeError("flask handler failed")

    return app


def test_flask_app_unchanged():
    import logging

    from wasmcorn import log

    app = make_flask_app()
    handler = log.Handler()
    logging.getLogger().addHandler(handler)
    with FakeHost() as host:
        c = TestClient(app)
        assert c.server.kind == "wsgi"
        r = c.get("/hello/ann?q=1")
        assert r.status == 200 and r.get_json() == {"hello": "ann", "q": "1"}
        r = c.post("/echo", json={"a": 1}, headers={"User-Agent": "t"})
        assert r.get_json() == {"json": {"a": 1}, "ua": "t"}
        assert "k=v" in c.get("/set").headers.get("Set-Cookie")
        assert c.get("/missing").status == 404
        try:
            r = c.get("/fail")
        finally:
            logging.getLogger().removeHandler(handler)
        assert r.status == 500
        # Flask logs the exception through logging, which reaches the host.
        level, msg, attrs = host.logs[-1]
        assert level == log.ERROR and msg.startswith("Exception on /fail [GET]")
        assert "RuntimeError: flask handler failed" in attrs["traceback"]
