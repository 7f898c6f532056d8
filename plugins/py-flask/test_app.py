"""Native tests of py-flask through the WSGI bridge."""

from app import app
from wasmcorn.testing import FakeHost, TestClient


def test_flask():
    with FakeHost() as host:
        c = TestClient(app, host=host)
        assert c.get("/py-flask/").get_json() == {"message": "hello from Flask", "path": "/py-flask/"}
        assert c.get("/py-flask/hello/ann?x=1").get_json() == {"hello": "ann", "args": {"x": "1"}}
        r = c.get("/py-flask/page")
        assert r.status == 200 and "<li>&lt;one&gt;</li>" in r.text
        assert c.post("/py-flask/echo", data={"a": "1"}).get_json() == {"json": None, "form": {"a": "1"}}
        assert c.get("/py-flask/nope").status == 404
