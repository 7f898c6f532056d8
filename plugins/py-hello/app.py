"""py-hello: the smallest Python plugin, a JSON API (the Python twin of the
Go hello and jsonapi plugins). Served at /py-hello/ (no manifest needed)."""

import wasmcorn

app = wasmcorn.App(prefix="/py-hello")

MESSAGE = {"message": "hello, world"}


@app.get("/")
def index(request):
    # The thin-handler benchmark: a fixed document.
    return MESSAGE


@app.get("/greet/<name>")
def greet(request, name):
    return {"hello": name, "lang": request.query.get("lang", "en")}


@app.post("/echo")
def echo(request):
    return {"json": request.json, "content_type": request.content_type, "length": len(request.body)}
