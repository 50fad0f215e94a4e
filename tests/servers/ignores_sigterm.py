"""Misbehaving server: answers ``initialize`` but ignores ``shutdown``, SIGTERM, SIGINT and a closed stdin
(jupyter ``tests/problemkernel.py``); only SIGKILL stops it."""

import json
import signal
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
for line in sys.stdin:
    request = json.loads(line)
    if request.get("method") == "initialize":
        result = {"protocol_version": "1.0", "server_version": "stubborn", "engines": [], "devices": ["cpu"]}
        sys.stdout.write(json.dumps({"id": request["id"], "result": result}) + "\n")
        sys.stdout.flush()
    print(f"ignores_sigterm: ignoring {request.get('method')}", file=sys.stderr, flush=True)
while True:
    time.sleep(1)
