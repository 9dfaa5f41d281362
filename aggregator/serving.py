"""Serving under gunicorn: the access log line, written without gunicorn's per-request dict of
every header and environ variable (about a tenth of a single bill's server time)."""
from __future__ import annotations

import time

from gunicorn.glogging import Logger


class AccessLogger(Logger):
    """gunicorn's logger; access lines in gunicorn's default (Apache combined) format plus the
    request's duration, built directly. `--access-logformat` is not consulted."""

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        sent = getattr(resp, "sent", None)
        try:
            self.access_log.info(
                '%s - - [%s] "%s %s %s" %s %s "%s" "%s" %.1fms',
                environ.get("REMOTE_ADDR", "-"), time.strftime("%d/%b/%Y:%H:%M:%S %z"),
                environ["REQUEST_METHOD"], environ["RAW_URI"], environ["SERVER_PROTOCOL"], status,
                "-" if sent is None else sent, environ.get("HTTP_REFERER", "-"),
                environ.get("HTTP_USER_AGENT", "-"), request_time.total_seconds() * 1000)
        except Exception:  # a log line never fails a request
            self.exception("access log")


# --- gunicorn's hooks (`gunicorn -c python:aggregator.serving`) ---------------------------------
# gunicorn reads this module's names that are settings (the hooks below) and ignores the rest.
# The master, not its HTTP workers, starts AGGREGATOR_EMBEDDED_WORKERS worker processes once it
# listens (bin/start: one, beside the API) and stops them when it exits; gunicorn's own workers
# never run due work. With PROMETHEUS_MULTIPROC_DIR set, an exited process's live metrics files
# are retired (prometheus_client's multiprocess mode).

_embedded = {}


def when_ready(server):
    import sys
    import threading

    from .config import Settings
    from .worker import Supervisor

    processes = Settings.from_env().embedded_workers
    if processes:
        supervisor = Supervisor(processes)
        supervisor.start()
        watching = threading.Thread(target=supervisor.watch, name="embedded workers", daemon=True)
        watching.start()
        _embedded.update(supervisor=supervisor, thread=watching)
    host, port = server.address[0][:2] if isinstance(server.address[0], tuple) else (server.address[0], "")
    workers = f" and {processes} worker process{'es' if processes > 1 else ''}" if processes else ""
    print(f"aggregator listening on http://{host}:{port} (the API{workers}; create a tenant: "
          ".venv/bin/aggregator tenants create --name NAME)", file=sys.stderr, flush=True)


def on_exit(server):
    supervisor, thread = _embedded.get("supervisor"), _embedded.get("thread")
    if supervisor:
        supervisor.stop()
        thread.join(timeout=60)


def child_exit(server, worker):
    from .worker import mark_process_dead

    mark_process_dead(worker.pid)
