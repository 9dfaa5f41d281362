"""Serving under gunicorn: the access log line, written without gunicorn's per-request dict of
every header and environ variable (about a tenth of a single bill's server time)."""
from __future__ import annotations

import time
from pathlib import Path

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
# are retired (prometheus_client's multiprocess mode). With AGGREGATOR_FRONT=nginx (bin/start),
# the master also starts nginx in front of gunicorn's unix socket before anything else, and
# stops it first (aggregator/front.py).

_embedded = {}


def on_starting(server):
    """Import the service's code once, in the master, before it forks its HTTP workers: each
    starts with it loaded and answers soon after "listening" (`import aggregator` alone imports
    nothing heavy, so that the command line starts fast). Each worker still builds its own app."""
    import importlib
    import pkgutil

    import aggregator

    for module in pkgutil.walk_packages(aggregator.__path__, "aggregator."):
        importlib.import_module(module.name)


def when_ready(server):
    import sys
    import threading

    from .config import Settings
    from .worker import Supervisor

    settings = Settings.from_env()
    address = _start_front(server, settings) or _address(server)
    processes = settings.embedded_workers
    if processes:
        supervisor = Supervisor(processes)
        supervisor.start()
        watching = threading.Thread(target=supervisor.watch, name="embedded workers", daemon=True)
        watching.start()
        _embedded.update(supervisor=supervisor, thread=watching)
    workers = f" and {processes} worker process{'es' if processes > 1 else ''}" if processes else ""
    print(f"aggregator listening on http://{address} (the API{workers}; create a tenant: "
          ".venv/bin/aggregator tenants create --name NAME)", file=sys.stderr, flush=True)


def _address(server) -> str:
    host, port = server.address[0][:2] if isinstance(server.address[0], tuple) else (server.address[0], "")
    return f"{host}:{port}"


def _start_front(server, settings) -> str | None:
    """With AGGREGATOR_FRONT=nginx (bin/start), nginx in front of gunicorn's unix socket: started,
    listening, before the line saying so is printed. -> the address it listens on."""
    if settings.front == "none":
        return None
    from .front import Front, FrontPlan, nginx_path, open_files_allowed, running_user

    if settings.front != "nginx":
        raise RuntimeError(f"AGGREGATOR_FRONT={settings.front!r}: expected nginx or none")
    binary = nginx_path()
    if not binary:
        raise RuntimeError("AGGREGATOR_FRONT=nginx but nginx is not installed (apt-get install nginx-light)")
    [upstream] = server.address
    if isinstance(upstream, tuple):
        raise RuntimeError("AGGREGATOR_FRONT=nginx: bind gunicorn to a unix socket (--bind unix:PATH)")
    front = Front(FrontPlan(listen=settings.front_bind, upstream_socket=Path(upstream),
                            directory=settings.front_dir, max_request_bytes=settings.max_request_bytes,
                            timeout_seconds=settings.front_timeout_seconds, user=running_user(),
                            open_files=open_files_allowed()), binary)
    front.start()
    _embedded["front"] = front
    return settings.front_bind


def on_exit(server):
    if front := _embedded.get("front"):
        front.stop()
    supervisor, thread = _embedded.get("supervisor"), _embedded.get("thread")
    if supervisor:
        supervisor.stop()
        thread.join(timeout=60)


def child_exit(server, worker):
    from .worker import mark_process_dead

    mark_process_dead(worker.pid)
