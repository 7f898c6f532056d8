"""py-flask: a stock Flask application, unchanged, served through the WSGI
bridge. Flask and its pure-Python dependencies (Werkzeug, Jinja2,
MarkupSafe, ItsDangerous, Click, Blinker) come from Debian's python3-flask
and are bundled into the plugin by the build."""

from flask import Flask, jsonify, render_template_string, request

app = Flask(__name__)

PAGE = """<!doctype html>
<title>{{ title }}</title>
<h1>{{ title }}</h1>
<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>"""


@app.route("/py-flask/")
def index():
    return jsonify(message="hello from Flask", path=request.path)


@app.route("/py-flask/hello/<name>")
def hello(name):
    return jsonify(hello=name, args=request.args.to_dict())


@app.route("/py-flask/page")
def page():
    return render_template_string(PAGE, title="Flask on wasmcorn", items=["<one>", "two"])


@app.route("/py-flask/echo", methods=["POST"])
def echo():
    return jsonify(json=request.get_json(silent=True), form=request.form.to_dict())
