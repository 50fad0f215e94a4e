"""Misbehaving server: sleeps ``EXPGEST_TEST_START_DELAY`` seconds (default 5) before serving normally."""

import os
import sys
import time

print("slow_start: warming up", file=sys.stderr, flush=True)
time.sleep(float(os.environ.get("EXPGEST_TEST_START_DELAY", "5")))
sys.path.insert(0, os.getcwd())
from backend.server import serve_stdio  # noqa: E402

serve_stdio()
