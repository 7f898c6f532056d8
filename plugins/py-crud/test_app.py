"""Native tests of py-crud on the fake host's SQLite."""

import pytest

import app as plugin
from wasmcorn.testing import FakeHost, TestClient


@pytest.fixture
def client():
    plugin._ready = False
    with FakeHost(databases=("default",)) as host:
        yield TestClient(plugin.app, host=host), host


def test_crud(client):
    c, host = client
    r = c.post("/py-crud/items", json={"name": "pen", "price": 1.5})
    assert r.status == 201
    item = r.get_json()
    assert item["name"] == "pen" and item["price"] == 1.5 and item["id"] == 1
    assert c.post("/py-crud/items", json={"name": "pen"}).status == 409
    assert c.post("/py-crud/items", json={"name": ""}).status == 422
    assert c.get("/py-crud/items/1").get_json()["name"] == "pen"
    r = c.put("/py-crud/items/1", json={"price": 2})
    assert r.get_json()["price"] == 2.0
    assert c.put("/py-crud/items/9", json={"price": 2}).status == 404
    c.post("/py-crud/items", json={"name": "ink"})
    assert [i["name"] for i in c.get("/py-crud/items").get_json()["items"]] == ["pen", "ink"]
    assert c.delete("/py-crud/items/1").status == 204
    assert c.get("/py-crud/items/1").status == 404
    host.cache["greeting"] = (b"hi", None)
    assert c.get("/py-crud/db/2").get_json() == {"item": c.get("/py-crud/items/2").get_json(), "greeting": "hi"}
