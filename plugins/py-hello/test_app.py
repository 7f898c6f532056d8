"""Native tests of py-hello (the wasm build is tested in sdk-python/internal)."""

from app import app
from wasmcorn.testing import FakeHost, TestClient


def test_hello():
    with FakeHost() as host:
        c = TestClient(app, host=host)
        r = c.get("/py-hello/")
        assert r.status == 200 and r.get_json() == {"message": "hello, world"}
        assert c.get("/py-hello/greet/ann?lang=fr").get_json() == {"hello": "ann", "lang": "fr"}
        r = c.post("/py-hello/echo", json={"a": [1]})
        assert r.get_json() == {"json": {"a": [1]}, "content_type": "application/json", "length": 9}
        assert c.get("/elsewhere").status == 404
