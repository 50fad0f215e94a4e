"""Misbehaving server: answers every line with text that is not JSON (pygls ``tests/servers/invalid_json.py``)."""

import sys

sys.stdout.write("this is not json\n")
sys.stdout.flush()
for _line in sys.stdin:
    sys.stdout.write("still not json {\n")
    sys.stdout.flush()
