"""py-cached: an HTML page rendered once and served from the shared cache
(the benchmark's /cached workload). X-Cache says hit or miss.

    GET    /py-cached/            the page (cached for TTL seconds)
    DELETE /py-cached/            drop it from the cache
"""

import html
import time

import wasmcorn
from wasmcorn import cache

app = wasmcorn.App(prefix="/py-cached")

KEY = "page:index"
TTL = 10


def render():
    rows = "".join("<tr><td>%d</td><td>%d</td><td>%s</td></tr>" % (i, i * i, html.escape("item <%d>" % i))
                   for i in range(100))
    return ("<!doctype html><html><head><title>py-cached</title></head><body>"
            "<h1>Squares</h1><p>rendered at %.3f</p><table>%s</table></body></html>" % (time.time(), rows))


@app.get("/")
def index(request):
    page = cache.get(KEY)
    state = "hit"
    if page is None:
        page = render().encode()
        cache.set(KEY, page, ttl=TTL)
        state = "miss"
    return wasmcorn.Response(page, headers={"X-Cache": state, "Cache-Control": "public, max-age=%d" % TTL},
                             content_type="text/html; charset=utf-8")


@app.delete("/")
def purge(request):
    return {"purged": cache.delete(KEY)}
