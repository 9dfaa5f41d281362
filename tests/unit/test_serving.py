"""The access log line that bin/start's gunicorn writes."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config

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
