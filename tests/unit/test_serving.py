"""bin/start's serving: the access log line gunicorn writes, the front's nginx configuration, and
the proxy the app believes about the client."""
from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import flask_migrate
import pytest
from flask import request
from gunicorn.config import Config

from aggregator import create_app
from aggregator.config import Settings
from aggregator.front import BODY_BUFFER_BYTES, FrontPlan, nginx_conf, nginx_path, running_user
from aggregator.serving import AccessLogger


def _logger(tmp_path, accesslog: str | None):
    cfg = Config()
    if accesslog:
        cfg.set("accesslog", accesslog)
    cfg.set("logger_class", "aggregator.serving.AccessLogger")
    return AccessLogger(cfg)


def test_a_request_is_logged_in_the_combined_format_with_its_duration(tmp_path):
    path = tmp_path / "access.log"
    logger = _logger(tmp_path, str(path))
    environ = {"REMOTE_ADDR": "10.0.0.7", "REQUEST_METHOD": "POST", "RAW_URI": "/v1/bills?x=1",
               "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_USER_AGENT": "billing-client/2"}
    logger.access(SimpleNamespace(status="201 CREATED", sent=412), None, environ,
                  timedelta(microseconds=1250))
    line = path.read_text().strip()
    assert line.startswith('10.0.0.7 - - [') and line.endswith(
        '] "POST /v1/bills?x=1 HTTP/1.1" 201 412 "-" "billing-client/2" 1.2ms'), line


def test_nothing_is_built_when_access_logging_is_off(tmp_path):
    logger = _logger(tmp_path, None)
    logger.access(None, None, {}, None)  # would fail if it looked at anything


# --- the front (aggregator/front.py) and the proxy the app believes -----------------------------


def _plan(tmp_path, **changes) -> FrontPlan:
    return FrontPlan(**{"listen": "127.0.0.1:8123", "upstream_socket": tmp_path / "gunicorn.sock",
                        "directory": tmp_path, "max_request_bytes": 4 * 1024 * 1024,
                        "timeout_seconds": 10.0, **changes})


def test_the_front_reads_whole_requests_within_its_timeouts_and_refuses_what_the_app_would(tmp_path):
    conf = nginx_conf(_plan(tmp_path, timeout_seconds=2.5, max_request_bytes=1000))
    for directive in ("client_header_timeout 2500ms;", "client_body_timeout 2500ms;", "send_timeout 2500ms;",
                      "proxy_request_buffering on;", "proxy_buffering on;", "client_max_body_size 1000;",
                      "client_body_buffer_size 1000;", "proxy_next_upstream off;",
                      "proxy_set_header X-Forwarded-For $remote_addr;", "listen 127.0.0.1:8123;",
                      f"server unix:{tmp_path}/gunicorn.sock;", "keepalive_timeout 1s;",
                      f"pid {tmp_path}/nginx.pid;",
                      f"client_body_temp_path {tmp_path}/tmp/body;"):
        assert directive in conf, directive
    assert "user " not in conf  # only when started as root
    assert f"client_body_buffer_size {BODY_BUFFER_BYTES};" in nginx_conf(_plan(tmp_path))


@pytest.mark.skipif(not nginx_path(), reason="nginx is not installed (bin/_setup.sh installs nginx-light)")
def test_nginx_accepts_the_configuration(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(_plan(tmp_path, user=running_user())))
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / sub).mkdir(parents=True)
    checked = subprocess.run([nginx_path(), "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def _app_seeing_the_client(tmp_path, trusted_proxies: int):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", storage_dir=tmp_path / "storage",
                        secret_key_file=tmp_path / "secret.key", trusted_proxies=trusted_proxies)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade()  # an app without its database answers 503 to everything but health
    app.add_url_rule("/client", "client", lambda: {"address": request.remote_addr, "scheme": request.scheme})
    return app.test_client()


def test_a_directly_reached_app_does_not_believe_a_clients_forwarded_headers(tmp_path):
    client = _app_seeing_the_client(tmp_path, 0)
    answer = client.get("/client", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
                        environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert answer.json == {"address": "198.51.100.4", "scheme": "http"}


def test_behind_one_proxy_the_client_is_the_one_the_proxy_saw(tmp_path):
    client = _app_seeing_the_client(tmp_path, 1)
    answer = client.get("/client", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Forwarded-Proto": "https"},
                        environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert answer.json == {"address": "203.0.113.9", "scheme": "https"}


def test_trusted_proxies_is_read_from_the_environment_and_off_by_default():
    assert Settings.from_env({}).trusted_proxies == 0
    assert Settings.from_env({}).front == "none"
    settings = Settings.from_env({"AGGREGATOR_TRUSTED_PROXIES": "1", "AGGREGATOR_FRONT": "nginx",
                                  "AGGREGATOR_FRONT_TIMEOUT_SECONDS": "3", "AGGREGATOR_VAR_DIR": "/srv/agg"})
    assert (settings.trusted_proxies, settings.front, settings.front_timeout_seconds, settings.front_dir) == (
        1, "nginx", 3.0, Path("/srv/agg/front"))
