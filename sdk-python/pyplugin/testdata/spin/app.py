"""A runaway handler, for the deadline test."""

import wasmcorn

app = wasmcorn.App(prefix="/py-spin")


@app.get("/")
def spin(request):
    while True:
        pass


@app.get("/ok")
def ok(request):
    return {"ok": True}
