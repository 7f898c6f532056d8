"""Native tests of py-cached."""

from app import app
from wasmcorn.testing import FakeHost, TestClient


def test_cached_page():
    with FakeHost() as host:
        c = TestClient(app, host=host)
        first = c.get("/py-cached/")
        assert first.status == 200 and first.headers.get("X-Cache") == "miss"
        assert first.headers.get("Content-Type") == "text/html; charset=utf-8"
        assert b"item &lt;99&gt;" in first.body
        second = c.get("/py-cached/")
        assert second.headers.get("X-Cache") == "hit" and second.body == first.body
        assert c.delete("/py-cached/").get_json() == {"purged": True}
        assert c.get("/py-cached/").headers.get("X-Cache") == "miss"
