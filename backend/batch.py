"""Batch generation for studios: a manifest (one request per line) or a folder of audio files → a folder of results.

The batch drives one backend server through ``backend.client`` (the same path as the add-on), so models stay
loaded across items, and an item that crashes the backend costs only that item: the server is restarted
and the batch goes on. It is resumable: an item whose output already exists and loads as a valid motion
file is skipped, so re-running the same command after a kill or a power cut finishes the rest.

Manifest format (``.jsonl``): one JSON object per line with the ``generate`` params (DESIGN.md section 3);
blank lines and lines starting with ``#`` are ignored. The command-line options give defaults that each line
may override. A relative ``audio`` path is relative to the manifest's folder; a missing ``output`` becomes
``OUT/<audio name>.npz``; a relative ``output`` is relative to ``OUT``.

Settings record (``OUT/expgest-batch.jsonl``, ``BatchLedger``): every output is recorded with a fingerprint of the
settings and audio that made it, so a re-run skips a line only when its output is complete *and* was made from
the same settings and the same audio bytes; a line whose settings changed is redone. The same record serves the
local batch and the Ray batch (``backend.cluster``), so either one resumes what the other started.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import timeouts
from .client import BackendClient, BackendError
from .errors import OutputError, RequestError
from .protocol import SERVER_EXITED

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


@dataclass
class BatchItem:
    """One unit of work.

    Attributes:
        label: how the summary names it ("line 12 (a.wav)", "takes/a.wav").
        params: the ``generate`` params, or None when the line could not be read.
        output: where the result goes.
        error: why the item cannot run (bad manifest line), else "".
    """

    label: str
    params: dict[str, Any] | None
    output: Path | None
    error: str = ""


@dataclass
class BatchSummary:
    """What a batch did: counts and the failures, each ``(label, message)``."""

    total: int = 0
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    retried: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``retried``: lines run again after their worker died, with the reason)."""
        return {"total": self.total, "written": self.written, "skipped": self.skipped,
                "failed": [{"item": label, "error": message} for label, message in self.failed],
                "retried": [{"item": label, "reason": message} for label, message in self.retried],
                "interrupted": self.interrupted, "seconds": round(self.seconds, 3)}


def _resolve_output(value: Any, out_dir: Path, audio: Path) -> Path:
    if value is None:
        return (out_dir / audio.name).with_suffix(".npz")
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else out_dir / path


def read_manifest(manifest: Path, out_dir: Path, defaults: dict[str, Any]) -> list[BatchItem]:
    """Read a ``.jsonl`` manifest into items (unreadable lines become failing items, not an abort).

    Args:
        manifest: the manifest file.
        out_dir: folder for outputs without an absolute path.
        defaults: ``generate`` params every line starts from.

    Returns:
        One item per request line, in file order.

    Raises:
        RequestError: the file is not UTF-8 text.
    """
    items: list[BatchItem] = []
    base = manifest.resolve().parent
    used: dict[Path, str] = {}
    try:
        lines = manifest.read_text(encoding="utf-8").split("\n")  # not splitlines(): JSON may hold U+2028
    except UnicodeDecodeError:
        raise RequestError("source", f"{manifest} is not a text manifest (not UTF-8); give a .jsonl file with one "
                                     "JSON object per line, or a folder of audio files.") from None
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        label = f"line {number}"
        try:
            line = json.loads(text)
        except ValueError as error:
            items.append(BatchItem(label, None, None, f"not valid JSON ({error}); fix or remove the line."))
            continue
        if not isinstance(line, dict):
            items.append(BatchItem(label, None, None, "expected a JSON object of generate params."))
            continue
        audio_value = line.get("audio")
        audio_path = audio_value.get("path") if isinstance(audio_value, dict) else audio_value
        if not isinstance(audio_path, str) or not audio_path:
            items.append(BatchItem(label, None, None, "needs \"audio\": a path or {\"path\": ...}."))
            continue
        audio = Path(audio_path).expanduser()
        audio = audio if audio.is_absolute() else base / audio
        label = f"line {number} ({audio.name})"
        output = _resolve_output(line.get("output"), out_dir, audio).resolve()
        params = {**defaults, **line}
        params["audio"] = {**audio_value, "path": str(audio)} if isinstance(audio_value, dict) else str(audio)
        params["output"] = str(output)
        if output in used:
            items.append(BatchItem(label, None, output, f"writes the same output as {used[output]}; give each "
                                                        "line its own \"output\"."))
            continue
        used[output] = label
        items.append(BatchItem(label, params, output))
    return items


def scan_folder(folder: Path, out_dir: Path, defaults: dict[str, Any], *, recursive: bool = False) -> list[BatchItem]:
    """One item per audio file in ``folder`` (sorted), writing ``OUT/<relative path>.npz``."""
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    items = []
    used: dict[Path, str] = {}
    for audio in files:
        relative = audio.relative_to(folder)
        output = (out_dir / relative).with_suffix(".npz").resolve()
        if output in used:
            items.append(BatchItem(str(relative), None, output, f"writes the same output as {used[output]} "
                                                                f"({output.name}); rename one of the two files."))
            continue
        used[output] = str(relative)
        items.append(BatchItem(str(relative), {**defaults, "audio": str(audio.resolve()), "output": str(output)},
                               output))
    return items


def is_valid_output(path: Path) -> bool:
    """True when ``path`` is a complete result: an ``.npz`` that loads as a Motion with frames, or a BVH with
    a hierarchy and motion section."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    if path.suffix.lower() == ".bvh":
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return False
        return text.startswith("HIERARCHY") and "\nMOTION" in text and "Frames:" in text
    try:
        from .motion.motion import load_npz

        return load_npz(path).num_frames > 0
    except Exception:  # any unreadable file is simply not done yet
        return False


LEDGER_NAME = "expgest-batch.jsonl"


def file_digest(path: Path) -> str | None:
    """SHA-256 (hex) of a file's bytes, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def settings_fingerprint(params: dict[str, Any]) -> str:
    """Fingerprint of everything that decides a line's result: its settings and its audio bytes.

    The settings are normalised through ``GenerationRequest`` (an omitted field and its default give the same
    fingerprint); the output path and the audio's path are left out, the audio's content digest goes in, so
    moving the audio folder redoes nothing and re-recording a line redoes it.

    Args:
        params: the ``generate`` params of one item.

    Returns:
        A hex SHA-256.
    """
    from .engines.plugins import split_engine
    from .request import GenerationRequest

    checked, plugin = split_engine(params)
    try:
        settings = GenerationRequest.from_dict(checked).to_dict()
    except RequestError:  # the line fails when run; fingerprint what it says
        settings = dict(params)
    if plugin is not None:
        settings["engine"] = plugin
    settings.pop("output", None)
    audio = settings.get("audio")
    path = audio.get("path") if isinstance(audio, dict) else audio
    if isinstance(path, str):
        audio = dict(audio) if isinstance(audio, dict) else {}
        audio.pop("path", None)
        audio["sha256"] = file_digest(Path(path))
        settings["audio"] = audio
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class BatchLedger:
    """The settings record of an output folder: which settings made each output (``OUT/expgest-batch.jsonl``).

    An append-only JSON-lines file; the last entry for an output wins and a torn last line (a kill mid-append)
    is ignored. Writing a result takes two entries around the atomic write of the file:

    1. ``begin``: ``{"output", "fingerprint", "replaces": <digest of the file there now, or null>}``;
    2. the result file is written atomically (by the backend server, or by the Ray driver);
    3. ``commit``: ``{"output", "fingerprint", "sha256": <digest of the new file>}``.

    A kill between any two steps is safe: after 1 the old file is still there with the digest ``replaces``
    names, so it is not taken for the new result; after 2 the file differs from ``replaces``, so it is the new
    result, complete because its write was atomic.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LEDGER_NAME
        self.entries: dict[str, dict[str, Any]] = {}  # the last entry per output
        self.committed: dict[str, dict[str, Any]] = {}  # the last ``commit`` entry per output
        lines = 0
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        for line in text.split("\n"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("output"), str):
                self._remember(entry)
                lines += 1
        if lines > 2 * len(self.entries) + 100:  # mostly superseded entries: keep the ones still read
            from .fileio import write_atomic

            kept = [*self.committed.values(), *(e for e in self.entries.values() if "sha256" not in e)]
            write_atomic(self.path, "".join(json.dumps(e) + "\n" for e in kept).encode("utf-8"),
                         what="batch settings record")

    def _remember(self, entry: dict[str, Any]) -> None:
        self.entries[entry["output"]] = entry
        if "sha256" in entry:
            self.committed[entry["output"]] = entry

    def _key(self, output: Path) -> str:
        output = Path(output).resolve()
        try:
            return output.relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return str(output)

    def is_done(self, output: Path, fingerprint: str) -> bool:
        """True when ``output`` is a complete result made with ``fingerprint``'s settings."""
        key = self._key(output)
        committed, latest = self.committed.get(key), self.entries.get(key)
        candidates = [e for e in (committed, latest) if e is not None and e.get("fingerprint") == fingerprint]
        if not candidates or not is_valid_output(output):
            return False
        digest = file_digest(output)
        for entry in candidates:
            if "sha256" in entry and digest == entry["sha256"]:
                return True
            if "sha256" not in entry and digest != entry.get("replaces"):
                return True  # begun, not committed, and the file changed since: that run wrote it
        return False

    def begin(self, output: Path, fingerprint: str) -> None:
        """Record that ``output`` is about to be (re)written with ``fingerprint``'s settings."""
        self._append({"output": self._key(output), "fingerprint": fingerprint,
                      "replaces": file_digest(output) if Path(output).exists() else None})

    def commit(self, output: Path, fingerprint: str) -> None:
        """Record that ``output`` now holds the result of ``fingerprint``'s settings."""
        self._append({"output": self._key(output), "fingerprint": fingerprint, "sha256": file_digest(output)})

    def _append(self, entry: dict[str, Any]) -> None:
        self._remember(entry)
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise OutputError(f"Could not update the batch settings record {self.path}: {error.strerror or error}. "
                              "Choose an output folder you can write to.") from None


class ProgressBar:
    """Overall progress on one line of a terminal (``\\r``), or a line per item elsewhere."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.finished = 0
        self.failed = 0
        self._last_draw = 0.0

    def update(self, label: str, fraction: float, stage: str = "") -> None:
        """Draw the bar for the current item at ``fraction`` (0..1) of it."""
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        overall = (self.finished + max(0.0, min(1.0, fraction))) / max(1, self.total)
        filled = int(round(30 * overall))
        text = f"[{'#' * filled}{'-' * (30 - filled)}] {self.finished}/{self.total}"
        if self.failed:
            text += f" ({self.failed} failed)"
        text += f" {label}: {stage}"
        self.stream.write("\r\033[K" + text[:150])
        self.stream.flush()

    def item_done(self, label: str, outcome: str) -> None:
        """Count a finished item and report it."""
        self.finished += 1
        if outcome.startswith("failed"):
            self.failed += 1
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"[{self.finished}/{self.total}] {label}: {outcome}{self._status_suffix()}\n")
        self.stream.flush()

    def _status_suffix(self) -> str:
        """What follows an item's line (nothing here; the Ray batch adds its aggregated status)."""
        return ""


def triage(item: BatchItem, summary: BatchSummary, progress: Any, ledger: BatchLedger | None,
           force: bool) -> str | None:
    """Decide whether an item runs: one whose line could not be read is counted as failed, one already done (its
    settings record matches, or without a record a valid output exists) as skipped, each reported to ``progress``.

    Returns:
        The item's settings fingerprint ("" without a ledger) when it must run, else None.
    """
    if item.error or item.params is None:
        summary.failed.append((item.label, item.error))
        progress.item_done(item.label, f"failed: {item.error}")
        return None
    assert item.output is not None
    fingerprint = settings_fingerprint(item.params) if ledger is not None else ""
    if not force and (ledger.is_done(item.output, fingerprint) if ledger is not None
                      else is_valid_output(item.output)):
        summary.skipped.append(item.label)
        progress.item_done(item.label, "already done, skipped")
        return None
    return fingerprint


def run_batch(items: list[BatchItem], client_factory: Any, *, force: bool = False,
              progress: ProgressBar | None = None, ledger: BatchLedger | None = None) -> BatchSummary:
    """Generate every item, one at a time, through a backend server.

    Args:
        items: from ``read_manifest`` or ``scan_folder``.
        client_factory: returns a started ``BackendClient`` (called again after a backend crash).
        force: regenerate items whose output is already done.
        progress: overall progress display.
        ledger: the output folder's settings record; an item is done when the record says its output was made
            with the item's settings. None: any valid output counts as done (settings are not compared).

    Returns:
        The summary; a Ctrl-C stops after cancelling the running item and sets ``interrupted``.
    """
    summary = BatchSummary(total=len(items))
    progress = progress or ProgressBar(len(items))
    started = time.monotonic()
    client: BackendClient | None = None
    try:
        for item in items:
            fingerprint = triage(item, summary, progress, ledger, force)
            if fingerprint is None:
                continue
            assert item.output is not None and item.params is not None
            if client is None or not client.alive:
                client = client_factory()
            if ledger is not None:
                ledger.begin(item.output, fingerprint)
            pending = client.generate(item.params, on_progress=_item_progress(progress, item.label))
            try:
                result = pending.result()
            except KeyboardInterrupt:
                pending.cancel()
                raise
            except BackendError as error:
                summary.failed.append((item.label, error.message))
                progress.item_done(item.label, f"failed: {error.message}")
                if error.code == SERVER_EXITED:
                    client.shutdown(timeout=timeouts.QUICK_STOP_S)
                    client = None
                continue
            if ledger is not None:
                ledger.commit(item.output, fingerprint)
            summary.written.append(item.label)
            progress.item_done(item.label, f"wrote {result['output']} ({result['frames']} frames)")
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if client is not None:
            client.shutdown()
        summary.seconds = time.monotonic() - started
    return summary


def _item_progress(progress: ProgressBar, label: str) -> Any:
    """A ``ProgressFn`` that draws ``progress`` for the item ``label``."""

    def report(stage: str, done: float | None = None, message: str = "") -> None:
        progress.update(label, done or 0.0, stage)

    return report


def run_batch_in_process(items: list[BatchItem], clips_per_forward: int, *, force: bool = False,
                         progress: ProgressBar | None = None, ledger: BatchLedger | None = None) -> BatchSummary:
    """Generate every item in this process, window k of up to ``clips_per_forward`` clips in one forward.

    Items with the same engine settings, steps and guidance are grouped (in file order) and run through
    ``pipeline.run_generation_batch``; each clip keeps its own seed, guidance and stitching, so it gets the motion
    it gets alone. Unlike ``run_batch`` there is no server process: models load once here, and a crash of the
    process stops the batch (re-running the command resumes it, as with ``run_batch``).

    Args:
        items: from ``read_manifest`` or ``scan_folder``.
        clips_per_forward: the most clips sampled together (≥ 1).
        force, progress, ledger: as for ``run_batch``.

    Returns:
        The summary; a Ctrl-C cancels the running group and sets ``interrupted``.
    """
    from .engines.base import CancelToken
    from .errors import ExpGestError
    from .pipeline import EngineCache, engine_key, run_generation_batch
    from .request import GenerationRequest

    summary = BatchSummary(total=len(items))
    progress = progress or ProgressBar(len(items))
    started = time.monotonic()
    groups: dict[tuple, list[tuple[BatchItem, GenerationRequest, str]]] = {}
    for item in items:
        fingerprint = triage(item, summary, progress, ledger, force)
        if fingerprint is None:
            continue
        assert item.params is not None
        try:
            request = GenerationRequest.from_dict(item.params)
        except ExpGestError as error:
            summary.failed.append((item.label, str(error)))
            progress.item_done(item.label, f"failed: {error}")
            continue
        groups.setdefault((engine_key(request), request.steps, request.guidance), []).append(
            (item, request, fingerprint))
    cache, cancel = EngineCache(), CancelToken()
    try:
        for members in groups.values():
            for start in range(0, len(members), clips_per_forward):
                chunk = members[start:start + clips_per_forward]
                if ledger is not None:
                    for item, _, fingerprint in chunk:
                        assert item.output is not None
                        ledger.begin(item.output, fingerprint)
                reports = [_item_progress(progress, item.label) for item, _, _ in chunk]
                try:
                    outcomes = run_generation_batch([request for _, request, _ in chunk], progress=reports,
                                                    cancel=cancel, cache=cache, clips_per_forward=clips_per_forward)
                except ExpGestError as error:   # the shared engine could not load: every item of the group fails
                    outcomes = [error] * len(chunk)
                for (item, _, fingerprint), outcome in zip(chunk, outcomes, strict=True):
                    if isinstance(outcome, ExpGestError):
                        summary.failed.append((item.label, str(outcome)))
                        progress.item_done(item.label, f"failed: {outcome}")
                        continue
                    if ledger is not None:
                        assert item.output is not None
                        ledger.commit(item.output, fingerprint)
                    summary.written.append(item.label)
                    progress.item_done(item.label, f"wrote {outcome.output} ({outcome.frames} frames)")
    except KeyboardInterrupt:
        cancel.cancel()
        summary.interrupted = True
    finally:
        summary.seconds = time.monotonic() - started
    return summary


def format_summary(summary: BatchSummary) -> str:
    """A human-readable summary, failures listed last."""
    lines = [f"{len(summary.written)} written, {len(summary.skipped)} skipped (already done), "
             f"{len(summary.failed)} failed, of {summary.total} in {summary.seconds:.1f} s"
             + (" (interrupted: run the same command again to finish)" if summary.interrupted else "")]
    if summary.retried:
        lines.append("Run again on another worker:")
        lines += [f"  {label}: {message}" for label, message in summary.retried]
    if summary.failed:
        lines.append("Failures:")
        lines += [f"  {label}: {message}" for label, message in summary.failed]
    return "\n".join(lines)
