"""Where the released ExpGest files live in a weights folder, for each generation mode.

The folder is laid out as the original project distributes it (paths relative to its ``mydiffusion_zeggs/``)::

    audio_only_model/            model.pt  mean.npz  std.npz  emo_classifier.bin  joint_sem_ges.bin
    audio_pharse_hybrid_model/   model.pt  mean_style.npy  std_style.npy
    audio_text_hybrid_model/     model.pt  mean_speakerid.npy  std_speakerid.npy
    WavLM/WavLM-Large.pt                                   (microsoft/unilm release)
    54074b1c16f4de6a5ad59affb4caa8f2ea03a119/              (facebook/wav2vec2-large-960h-lv60-self snapshot)
    1dbc166cf8765166998eff31ade2eb64c8a40076/              (bert-base-uncased snapshot)
    ViT-B-32.pt + bpe_simple_vocab_16e6.txt.gz             (OpenAI CLIP ViT-B/32 + its tokenizer file)

Readable alternatives are accepted for the encoders: ``wavlm-large/``, ``wav2vec2-large-960h-lv60-self/``,
``bert-base-uncased/`` and ``clip-vit-base-patch32/`` (Hugging Face folders). The whole tree may also sit in a
``mydiffusion_zeggs/`` subfolder of the given folder (a checkout of the original repository); ``ViT-B-32.pt``
is then also looked for beside that subfolder (the original README puts it in the repository root).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backend.vocabulary import MODE_ALIASES, MODES  # a stdlib-only leaf (tests/backend/test_layering.py)

from .errors import WeightsError

ASR_SNAPSHOT = "54074b1c16f4de6a5ad59affb4caa8f2ea03a119"
BERT_SNAPSHOT = "1dbc166cf8765166998eff31ade2eb64c8a40076"
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
DRIVE = "the ExpGest 'Pre-trained model and data' Google Drive (github.com/cyk990422/ExpGest README)"

# Per mode: (role, folder, {name: file}) of the ExpGest checkpoint files.
MODE_FILES: dict[str, tuple[str, dict[str, str]]] = {
    "audio_only": ("audio_only_model", {"denoiser": "model.pt", "mean": "mean.npz", "std": "std.npz",
                                        "emo_classifier": "emo_classifier.bin",
                                        "joint_sem_ges": "joint_sem_ges.bin"}),
    "audio_phrase": ("audio_pharse_hybrid_model", {"denoiser": "model.pt", "mean": "mean_style.npy",
                                                   "std": "std_style.npy"}),
    "audio_text": ("audio_text_hybrid_model", {"denoiser": "model.pt", "mean": "mean_speakerid.npy",
                                               "std": "std_speakerid.npy"}),
}
_FILE_DESCRIPTIONS = {
    "denoiser": "the {mode} diffusion denoiser", "mean": "the {mode} motion mean", "std": "the {mode} motion std",
    "emo_classifier": "the emotion classifier", "joint_sem_ges": "the BERT semantic heads",
}
_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class MissingItem:
    """One thing a mode needs that is not in the folder.

    Attributes:
        role: ``denoiser``, ``mean``, ``std``, ``emo_classifier``, ``joint_sem_ges``, ``wavlm``, ``asr``,
            ``bert``, ``clip`` or ``clip_tokenizer``.
        where: the path (relative to the weights folder) where it goes.
        what: a description with where to get it.
        alternatives: other accepted places, relative to the weights folder.
    """

    role: str
    where: str
    what: str
    alternatives: tuple[str, ...] = ()

    def line(self) -> str:
        """``<where>: <what>`` plus the accepted alternatives."""
        alt = f" (or {', '.join(self.alternatives)})" if self.alternatives else ""
        return f"{self.where}{alt}: {self.what}"


@dataclass(frozen=True)
class WeightsLayout:
    """Resolved paths of everything one mode needs.

    Attributes:
        root: the folder holding the tree (the given folder, or its ``mydiffusion_zeggs/``).
        mode: ``audio_only``, ``audio_phrase`` or ``audio_text``.
        denoiser, mean, std: the mode's checkpoint and normalisation statistics.
        wavlm: ``WavLM-Large.pt`` (unilm) or a Hugging Face folder.
        emo_classifier, joint_sem_ges, asr, bert: audio_only only (None otherwise).
        clip: hybrid modes only: ``ViT-B-32.pt`` or a Hugging Face folder.
        clip_tokenizer: for an OpenAI ``ViT-B-32.pt``, the BPE file or tokenizer folder (None for a HF folder).
    """

    root: Path
    mode: str
    denoiser: Path
    mean: Path
    std: Path
    wavlm: Path
    emo_classifier: Path | None = None
    joint_sem_ges: Path | None = None
    asr: Path | None = None
    bert: Path | None = None
    clip: Path | None = None
    clip_tokenizer: Path | None = None

    def files(self) -> dict[str, Path]:
        """Role → path of every item that is set."""
        names = ("denoiser", "mean", "std", "emo_classifier", "joint_sem_ges", "wavlm", "asr", "bert", "clip",
                 "clip_tokenizer")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@dataclass
class LayoutReport:
    """What :func:`inspect_weights` found and what is missing for one mode.

    Attributes:
        root: the resolved tree root.
        mode: the canonical mode name.
        found: role → path.
        missing: the missing items, each with where it goes.
    """

    root: Path
    mode: str
    found: dict[str, Path] = field(default_factory=dict)
    missing: list[MissingItem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing is missing."""
        return not self.missing

    def layout(self) -> WeightsLayout:
        """The :class:`WeightsLayout` (raises ``WeightsError`` listing every missing item when incomplete)."""
        if self.missing:
            lines = "\n".join(f"  - {item.line()}" for item in self.missing)
            raise WeightsError(
                f"The weights folder {self.root} is missing {len(self.missing)} item(s) for mode '{self.mode}':\n"
                f"{lines}\nSee models/README.md for where to get each file; run "
                f"'python -m backend models check {self.root}' to check the folder.",
                data={"missing": [item.where for item in self.missing], "mode": self.mode},
                details=[item.line() for item in self.missing])
        return WeightsLayout(root=self.root, mode=self.mode, **self.found)


def canonical_mode(mode: str) -> str:
    """``audio_only`` / ``audio_phrase`` / ``audio_text`` (``audio_pharse``, the original spelling, is accepted)."""
    mode = MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        raise WeightsError(f"Unknown mode '{mode}'; use one of {', '.join(MODES)}.")
    return mode


def resolve_root(folder: str | Path) -> Path:
    """The folder that holds the tree: ``folder`` itself, or ``folder/mydiffusion_zeggs`` for a checkout."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise WeightsError(f"The weights folder {folder} {what}. Point --models (or the add-on "
                           f"preferences) at the folder that holds audio_only_model/, WavLM/ … (see models/README.md).")
    nested = folder / "mydiffusion_zeggs"
    own = any((folder / MODE_FILES[m][0]).is_dir() for m in MODES) or (folder / "WavLM").is_dir()
    return nested if nested.is_dir() and not own else folder


def _hf_folder(path: Path, required: tuple[str, ...]) -> bool:
    return path.is_dir() and all(any((path / n).is_file() for n in group.split("|")) for group in required)


def _hf_missing(path: Path, required: tuple[str, ...]) -> list[str]:
    return [group.replace("|", " or ") for group in required
            if not any((path / n).is_file() for n in group.split("|"))]


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _encoder(report: LayoutReport, role: str, candidates: list[tuple[Path, tuple[str, ...] | None]],
             what: str) -> Path | None:
    """First existing candidate: a file (``required`` None) or a folder holding the ``required`` files."""
    partial: list[str] = []
    for path, required in candidates:
        if required is None and path.is_file():
            report.found[role] = path
            return path
        if required is not None and _hf_folder(path, required):
            report.found[role] = path
            return path
        if required is not None and path.is_dir():
            partial.append(f"{_rel(report.root, path)}/ lacks {', '.join(_hf_missing(path, required))}")
    first, *others = [_rel(report.root, p) + ("/" if req is not None else "") for p, req in candidates]
    detail = f"{what}" + (f"; found incomplete: {'; '.join(partial)}" if partial else "")
    report.missing.append(MissingItem(role, first, detail, tuple(others)))
    return None


def inspect_weights(folder: str | Path, mode: str) -> LayoutReport:
    """Find every file ``mode`` needs in ``folder`` without loading anything.

    Args:
        folder: the weights folder (original layout, or a checkout holding ``mydiffusion_zeggs/``).
        mode: ``audio_only``, ``audio_phrase`` (or ``audio_pharse``) or ``audio_text``.

    Returns:
        A :class:`LayoutReport` (``found`` and ``missing``).
    """
    from models.encoders import asr, bert, clip_text

    mode = canonical_mode(mode)
    root = resolve_root(folder)
    report = LayoutReport(root=root, mode=mode)
    subfolder, names = MODE_FILES[mode]
    for role, name in names.items():
        path = root / subfolder / name
        if path.is_file():
            report.found[role] = path
        else:
            what = _FILE_DESCRIPTIONS[role].format(mode=mode) + f", from {DRIVE}"
            report.missing.append(MissingItem(role, f"{subfolder}/{name}", what))

    hf = ("config.json", "|".join(_HF_WEIGHTS))
    _encoder(report, "wavlm", [(root / "WavLM" / "WavLM-Large.pt", None), (root / "WavLM-Large.pt", None),
                               (root / "wavlm-large", hf)],
             "WavLM-Large (WavLM-Large.pt of the microsoft/unilm release, or the Hugging Face model "
             "microsoft/wavlm-large)")
    if mode == "audio_only":
        _encoder(report, "asr", [(root / ASR_SNAPSHOT, asr.REQUIRED_FILES),
                                 (root / "wav2vec2-large-960h-lv60-self", asr.REQUIRED_FILES)],
                 "the speech recogniser (Hugging Face snapshot of facebook/wav2vec2-large-960h-lv60-self)")
        _encoder(report, "bert", [(root / BERT_SNAPSHOT, bert.REQUIRED_FILES),
                                  (root / "bert-base-uncased", bert.REQUIRED_FILES)],
                 "BERT (Hugging Face snapshot of bert-base-uncased)")
    else:
        clip_candidates: list[tuple[Path, tuple[str, ...] | None]] = [(root / "ViT-B-32.pt", None)]
        if root.name == "mydiffusion_zeggs":
            clip_candidates.append((root.parent / "ViT-B-32.pt", None))
        clip_candidates.append((root / "clip-vit-base-patch32", (*hf, "vocab.json|tokenizer.json")))
        found = _encoder(report, "clip", clip_candidates,
                         "CLIP ViT-B/32 (OpenAI's ViT-B-32.pt, or the Hugging Face model openai/clip-vit-base-patch32)")
        if found is not None and found.is_file():
            tokenizer = clip_text.find_clip_tokenizer(found) or clip_text.find_clip_tokenizer(root / "ViT-B-32.pt")
            if tokenizer is not None:
                report.found["clip_tokenizer"] = tokenizer
            else:
                report.missing.append(MissingItem(
                    "clip_tokenizer", BPE_FILE,
                    f"the CLIP tokenizer for {found.name} (the file clip/{BPE_FILE} of OpenAI's clip package)",
                    ("CLIP/clip/" + BPE_FILE, "clip_tokenizer/ (vocab.json + merges.txt)",
                     "clip-vit-base-patch32/ (tokenizer files)")))
    return report


def find_weights(folder: str | Path, mode: str) -> WeightsLayout:
    """Resolve the files of ``mode`` in a weights folder.

    Args:
        folder: the weights folder (see the module docstring for the layout).
        mode: ``audio_only``, ``audio_phrase`` (or ``audio_pharse``) or ``audio_text``.

    Returns:
        The :class:`WeightsLayout`.

    Raises:
        WeightsError: listing every missing file and exactly where it goes.
    """
    return inspect_weights(folder, mode).layout()
