"""The framework floor for bench/ingest.py: the least a Flask endpoint does for a bill under the
same gunicorn configuration (parse the JSON body, answer 201 with a small JSON document), and
no database. What `POST /v1/bills` costs above this is the service's own work."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/v1/bills")
def create_bill():
    body = request.get_json()
    return jsonify(id="bill_floor", object="bill", status="pending", **body), 201


@app.get("/v1/openapi.json")
def ready():
    return jsonify(ok=True)
