# Sourced by bin/start and bin/test: checks the system, makes .venv and installs the project.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "aggregator needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi

# System libraries: WeasyPrint renders with Pango and subsets fonts with HarfBuzz (without it,
# a much slower fallback); venv needs ensurepip; DejaVu fonts for the PDFs.
missing=()
"$PYTHON" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
"$PYTHON" - <<'PY' || missing+=(libpango-1.0-0 libpangoft2-1.0-0)
import ctypes.util, sys
sys.exit(0 if ctypes.util.find_library("pango-1.0") and ctypes.util.find_library("pangoft2-1.0") else 1)
PY
"$PYTHON" -c 'import ctypes.util, sys; sys.exit(not ctypes.util.find_library("harfbuzz-subset"))' \
  || missing+=(libharfbuzz-subset0)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
# nginx: bin/start's front, reading every request whole before gunicorn sees it (slow clients;
# aggregator/front.py). AGGREGATOR_FRONT=none serves gunicorn directly and needs none.
if [ "${AGGREGATOR_FRONT:-nginx}" = nginx ] && ! PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v nginx >/dev/null; then
  missing+=(nginx-light)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing system packages: ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Missing system packages; install them with: sudo apt-get install ${missing[*]}" >&2
    case " ${missing[*]} " in *" nginx-light "*)
      echo "(nginx is bin/start's front against slow clients; AGGREGATOR_FRONT=none serves without it, unsafely: see docs/reliability.md)" >&2;;
    esac
    exit 1
  fi
fi

# The tests' own: a real browser for finance's page (Debian's chromium and its chromedriver;
# Selenium is pointed at them and never downloads one). Optional: without them the browser test
# is skipped, saying why. Only bin/test (the script sourcing this) asks for them.
if [ "$(basename "$0")" = test ]; then
  browser=()
  [ -x /usr/bin/chromium ] || browser+=(chromium)
  [ -x /usr/bin/chromedriver ] || browser+=(chromium-driver)
  if [ ${#browser[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "Installing the tests' browser: ${browser[*]}" >&2
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${browser[@]}" >/dev/null; } \
        || echo "WARNING: could not install ${browser[*]}: the browser test will be skipped." >&2
    else
      echo "The browser test will be skipped; to run it: sudo apt-get install ${browser[*]}" >&2
    fi
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Exactly the locked dependencies (requirements.lock: pinned and hashed, made by bin/lock from
# pyproject.toml with the test extras), then the project itself without resolving anything; again
# whenever either file changes. The lock is the whole closure, so pip installs it file by file
# (--no-deps) and `pip check` proves it complete: pip's resolver is not asked again, which failed
# once a newer cachecontrol was published (the venv's pip 23 then took pip-audit's
# `CacheControl[filecache]>=0.13.0` for an unpinned requirement).
stamp=.venv/.aggregator-installed
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements.lock
  broken=$(.venv/bin/python -m pip check 2>&1) || { echo "$broken" >&2; exit 1; }
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
