"""bin/start's front: nginx before gunicorn, so that a slow client costs a connection in nginx and
never one of gunicorn's threads.

gunicorn's threads read a request themselves: a client sending its headers or body a byte at a time
holds a thread for as long as it likes, and a few dozen such clients stall every request (issue 16).
nginx reads each request whole (headers within `client_header_timeout`, its body into memory or a
file under var/front, `client_body_timeout` between two reads) before it opens a connection to
gunicorn over a unix socket, and takes the answer whole from gunicorn before sending it at the
client's pace. What a slow client then holds is one of nginx's connections (event-driven, a few
kilobytes each), not a worker.

`nginx_conf` is the configuration (pure); `Front` runs nginx in the foreground as a child of
gunicorn's master (aggregator.serving's hooks start it once gunicorn listens, start it again if it
dies, and stop it when gunicorn exits).
"""
from __future__ import annotations

import ctypes
import grp
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess  # nosec B404  # starts nginx (the binary found on PATH) with our argv, no shell
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: A request body up to this size stays in nginx's memory; a larger one is written to a file under
#: var/front/tmp first. Not the whole AGGREGATOR_MAX_REQUEST_BYTES: nginx allocates the buffer when
#: the body starts, so 4 MiB each would let a few hundred slow clients claiming 4 MiB bodies take
#: gigabytes. 256 KiB holds a batch of about 1,000 bills.
BODY_BUFFER_BYTES = 256 * 1024

#: What nginx answers itself, in the API's one error shape (aggregator.errors).
_TOO_LARGE = ('{"error":{"type":"request_too_large","message":"The request body is too large.",'
              '"code":"request_too_large"}}')
_UNAVAILABLE = ('{"error":{"type":"api_error","message":"The service did not answer; try again.",'
                '"code":"service_unavailable"}}')


@dataclass(frozen=True)
class FrontPlan:
    """What the front is told: where it listens, where gunicorn listens, where its files go."""

    listen: str  # host:port
    upstream_socket: Path  # gunicorn's unix socket
    directory: Path  # pid, temporary bodies and answers
    max_request_bytes: int
    timeout_seconds: float
    user: str | None = None  # run nginx's workers as this user (nginx started as root only)
    open_files: int = 8192  # per nginx worker; half of them client connections, half to gunicorn


def nginx_conf(plan: FrontPlan) -> str:
    """nginx's whole configuration for `plan` (nothing read from /etc/nginx)."""
    d, timeout = plan.directory, f"{max(1, round(plan.timeout_seconds * 1000))}ms"
    temp = d / "tmp"  # nginx's temporary files, under var/front (not the system's /tmp)
    user = f"user {plan.user};\n" if plan.user else ""
    return f"""\
# Written by aggregator.front at each start: edit aggregator/front.py, not this file.
{user}daemon off;
master_process on;
worker_processes auto;
worker_rlimit_nofile {plan.open_files};
pid {d}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections {plan.open_files // 2};
}}

http {{
    access_log off;  # gunicorn writes the access line, with the client's address (AGGREGATOR_TRUSTED_PROXIES)
    server_tokens off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;

    # A client has this long for its request line and headers (in all), between two reads of its
    # body, and between two writes of the answer; then its connection is closed.
    client_header_timeout {timeout};
    client_body_timeout {timeout};
    send_timeout {timeout};
    keepalive_timeout 60s;
    reset_timedout_connection on;
    client_max_body_size {plan.max_request_bytes};
    client_body_buffer_size {min(BODY_BUFFER_BYTES, plan.max_request_bytes)};

    # The whole request before gunicorn sees it, the whole answer before the client gets it.
    proxy_request_buffering on;
    proxy_buffering on;
    # Connections to gunicorn are kept for other requests (a new one per request cost about 0.3 ms
    # of CPU), and let go after 1 s idle, before gunicorn's own 2 s (--keep-alive): nginx never
    # sends a request on a connection that gunicorn is closing.
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_connect_timeout 5s;
    proxy_send_timeout 300s;
    proxy_read_timeout 300s;  # closes and clock advances can take minutes
    proxy_next_upstream off;  # never send a request twice
    proxy_redirect off;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;  # replaced, not appended to: the client's own is not believed
    proxy_set_header X-Forwarded-Proto $scheme;

    upstream gunicorn {{
        server unix:{plan.upstream_socket};
        keepalive 32;
        keepalive_timeout 1s;
    }}

    server {{
        listen {plan.listen};
        location / {{
            proxy_pass http://gunicorn;
        }}
        error_page 413 @too_large;
        location @too_large {{
            default_type application/json;
            return 413 '{_TOO_LARGE}\\n';
        }}
        error_page 502 @unavailable;
        location @unavailable {{
            default_type application/json;
            return 502 '{_UNAVAILABLE}\\n';
        }}
        error_page 504 @timed_out;
        location @timed_out {{
            default_type application/json;
            return 504 '{_UNAVAILABLE}\\n';
        }}
    }}
}}
"""


def nginx_path() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, outside a user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def running_user() -> str | None:
    """nginx's `user` when started as root: the same user and group as gunicorn, whose socket and
    var/ directory the workers must reach (nginx's default, nobody, cannot), and no more."""
    if os.geteuid() != 0:
        return None
    return f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"


def open_files_allowed(wanted: int = 8192) -> int:
    """As many open files as nginx's workers may have, up to `wanted` (they may raise their soft
    limit up to the hard one, root or not)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """nginx gets SIGTERM if gunicorn's master dies without stopping it (kill -9): it must not
    keep the port."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Front:
    """nginx in the foreground, supervised from a thread of gunicorn's master."""

    READY_SECONDS = 15.0
    RESTART_PAUSE = 1.0

    def __init__(self, plan: FrontPlan, binary: str):
        self.plan, self.binary = plan, binary
        self.conf = plan.directory / "nginx.conf"
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the configuration, start nginx and return once it listens; RuntimeError if it
        cannot (its own message is on standard error)."""
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.plan.directory / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(nginx_conf(self.plan))
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="front", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        pid_file = self.plan.directory / "nginx.pid"
        pid_file.unlink(missing_ok=True)
        process = subprocess.Popen(  # nosec B603  # nginx with our own arguments, no shell
            [self.binary, "-e", "stderr", "-p", str(self.plan.directory), "-c", str(self.conf)],
            preexec_fn=_die_with_parent)
        # nginx writes its pid file once its listening socket is bound.
        deadline = time.monotonic() + self.READY_SECONDS
        while not (pid_file.exists() and pid_file.read_text().strip() == str(process.pid)):
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                raise RuntimeError(f"the front (nginx, {self.conf}) did not start: exit status "
                                   f"{process.returncode}; its message is above")
            time.sleep(0.05)
        host, port = self.plan.listen.rsplit(":", 1)
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
        self.process = process

    def _watch(self) -> None:
        """Start nginx again if it dies; if it was told to stop (exit status 0: SIGINT from the
        terminal, SIGTERM or SIGQUIT from someone else), stop gunicorn too."""
        while not self.stopping.is_set():
            status = self.process.poll()
            if status is None:
                self.stopping.wait(0.2)
                continue
            if self.stopping.is_set():
                return
            if status == 0:
                log.warning("the front (nginx) stopped; stopping the API")
                os.kill(os.getpid(), signal.SIGTERM)
                return
            log.error("the front (nginx, pid %d) exited with status %s; starting another",
                      self.process.pid, status)
            self.stopping.wait(self.RESTART_PAUSE)
            if not self.stopping.is_set():
                try:
                    self._spawn()
                except RuntimeError:
                    log.exception("the front could not start again; stopping the API")
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    def stop(self, timeout: float = 10.0) -> None:
        """SIGQUIT (nginx finishes the requests in hand), then SIGKILL after `timeout`."""
        self.stopping.set()
        if self._thread:
            self._thread.join(timeout=2)
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
