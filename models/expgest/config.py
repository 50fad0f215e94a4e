"""Typed configurations of the ExpGest networks.

The released full sizes are the defaults below, and they are written only here. Everything the
official classes hard-wire (stream widths, seed length, one-hot sizes, WavLM width, the 8 rotary heads,
local-attention windows) is a module constant, not a config field, because the released weights fix it.

``from_dict`` rejects unknown and missing keys; ``to_dict`` gives the JSON-ready dict that reads back to
an equal config. ``from_official_kwargs`` reads the constructor kwargs of the original classes (as the
fixtures' ``<name>.small.json`` records them) and checks that the hard-wired ones match.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeVar

# Hard-wired sizes of the released networks (spec sections 3 and 5; fixtures README section 2).
N_SEED = 8                   # seed frames given to every window
AUDIO_IN = 1024              # WavLM-Large feature width
AUDIO_FEAT = 64              # WavEncoder output width
ROTARY_HEADS = 8             # heads of the rotary split / local attention (independent of num_heads)
STYLE_EMB = 64               # width of the emotion / speaker one-hot embedding
CLIP_DIM = 512               # CLIP ViT-B/32 text feature width
N_EMOTIONS = 8               # BEAT emotion one-hot (backend.request.EMOTIONS order)
N_SPEAKERS = 4               # BEAT speaker one-hot used by the phrase hybrid
AUDIO_ONLY_BODY = 451        # audio_only body stream width
AUDIO_ONLY_HAND = 690        # audio_only hand stream width
HYBRID_BODY = 238            # hybrid body stream width
HYBRID_HAND = 756            # hybrid hand stream width
AUDIO_ONLY_WINDOW = 11       # local-attention window of the audio_only denoiser (frames)
HYBRID_WINDOW = 20           # local-attention window of the hybrid denoisers (frames)
AUDIO_ONLY_FRAMES = 88       # frames per audio_only diffusion window
HYBRID_FRAMES = 180          # frames per hybrid diffusion window
VAE_MAX_FRAMES = 500         # rows of the MLD-VAE learned positional table
MAX_TIMESTEPS = 5000         # rows of the sinusoidal table that the timestep embedder indexes

HybridVariant = Literal["phrase", "text"]
_C = TypeVar("_C", bound="_ConfigBase")


class _ConfigBase:
    """``from_dict`` / ``to_dict`` shared by the frozen config dataclasses."""

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build the config from a dict holding exactly its fields.

        Args:
            data: field name -> value; every field must be present and no other key.

        Returns:
            The validated config.

        Raises:
            ValueError: on an unknown or missing key, or an invalid value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} needs a dict, got {type(data).__name__}.")
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys are {names}.")
        if missing:
            raise ValueError(f"{cls.__name__}: missing key(s) {missing}; every one of {names} is required.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (``from_dict`` reads it back to an equal config)."""
        return asdict(self)  # type: ignore[call-overload]


def _check_positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}.")


def _check_official(kwargs: dict[str, Any], expected: dict[str, Any], name: str) -> None:
    for key, value in expected.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"{name}: constructor kwarg {key}={kwargs[key]!r} is not supported "
                             f"(the released network has {key}={value!r}).")


@dataclass(frozen=True)
class AudioOnlyConfig(_ConfigBase):
    """Sizes of the audio_only denoiser (official ``model/mdm.py`` MDM).

    Args:
        latent_dim: token width d; also the BERT semantic-latent width. Multiple of 16 and > 64
            (the seed embedding is d − 64 wide).
        num_layers: post-norm transformer layers per stream.
        ff_size: feed-forward width of each transformer layer.
        num_heads: attention heads of the transformers (the rotary split always uses 8).
    """

    latent_dim: int = 256
    num_layers: int = 8
    ff_size: int = 1024
    num_heads: int = 4

    def __post_init__(self) -> None:
        _check_positive("AudioOnlyConfig", latent_dim=self.latent_dim, num_layers=self.num_layers,
                        ff_size=self.ff_size, num_heads=self.num_heads)
        if self.latent_dim % (2 * ROTARY_HEADS) or self.latent_dim <= STYLE_EMB:
            raise ValueError(f"AudioOnlyConfig.latent_dim must be a multiple of 16 above 64, got {self.latent_dim}.")
        if self.latent_dim % self.num_heads:
            raise ValueError(f"AudioOnlyConfig.latent_dim {self.latent_dim} is not divisible by "
                             f"num_heads {self.num_heads}.")

    @classmethod
    def from_official_kwargs(cls, kwargs: dict[str, Any]) -> AudioOnlyConfig:
        """Config from the original ``MDM(...)`` constructor kwargs (e.g. ``<name>.small.json``).

        Args:
            kwargs: the original keyword arguments; omitted sizes take the original defaults.

        Returns:
            The config; raises ValueError if a hard-wired kwarg differs from the released network.
        """
        _check_official(kwargs, {"njoints": 1141, "nfeats": 1, "n_seed": N_SEED, "audio_feat": "wavlm",
                                 "cond_mode": "cross_local_attention3_style1", "arch": "trans_enc"}, cls.__name__)
        return cls(**{f.name: kwargs.get(f.name, f.default) for f in fields(cls)})


@dataclass(frozen=True)
class HybridConfig(_ConfigBase):
    """Sizes of the hybrid denoisers (official ``model/mdm_id.py`` and ``model/mdm_ges.py`` MDM).

    Args:
        variant: ``"phrase"`` (audio_pharse, ``mdm_id``: speaker one-hot, per-stream seed embeddings) or
            ``"text"`` (audio_text, ``mdm_ges``: no speaker embedding, the hand-seed embedding for both streams).
        latent_dim: body token width d (multiple of 16; > 64 for ``phrase``); the hand transformer is d + 64 wide.
        num_layers: post-norm transformer layers per stream.
        ff_size: feed-forward width of each transformer layer.
        num_heads: attention heads of both transformers (must divide d and d + 64).
    """

    variant: HybridVariant = "phrase"
    latent_dim: int = 512
    num_layers: int = 8
    ff_size: int = 1024
    num_heads: int = 4

    def __post_init__(self) -> None:
        if self.variant not in ("phrase", "text"):
            raise ValueError(f"HybridConfig.variant must be 'phrase' or 'text', got {self.variant!r}.")
        _check_positive("HybridConfig", latent_dim=self.latent_dim, num_layers=self.num_layers,
                        ff_size=self.ff_size, num_heads=self.num_heads)
        if self.latent_dim % (2 * ROTARY_HEADS):
            raise ValueError(f"HybridConfig.latent_dim must be a multiple of 16, got {self.latent_dim}.")
        if self.variant == "phrase" and self.latent_dim <= STYLE_EMB:
            raise ValueError(f"HybridConfig.latent_dim must be above 64 for 'phrase', got {self.latent_dim}.")
        if self.latent_dim % self.num_heads or self.hand_dim % self.num_heads:
            raise ValueError(f"HybridConfig.num_heads {self.num_heads} must divide latent_dim {self.latent_dim} "
                             f"and the hand width {self.hand_dim}.")

    @property
    def hand_dim(self) -> int:
        """Width of the hand transformer (d + 64: the token with the audio feature appended)."""
        return self.latent_dim + AUDIO_FEAT

    @classmethod
    def from_official_kwargs(cls, kwargs: dict[str, Any], variant: HybridVariant) -> HybridConfig:
        """Config from the original ``MDM(...)`` kwargs of ``mdm_id`` (``"phrase"``) or ``mdm_ges`` (``"text"``).

        Args:
            kwargs: the original keyword arguments; omitted sizes take the original defaults.
            variant: which of the two hybrid classes the kwargs belong to.

        Returns:
            The config; raises ValueError if a hard-wired kwarg differs from the released network.
        """
        _check_official(kwargs, {"njoints": 994, "nfeats": 1, "n_seed": N_SEED, "audio_feat": "wavlm",
                                 "cond_mode": "cross_local_attention3_style1", "arch": "trans_enc"}, cls.__name__)
        sizes = {f.name: kwargs.get(f.name, f.default) for f in fields(cls) if f.name != "variant"}
        return cls(variant=variant, **sizes)


@dataclass(frozen=True)
class EmotionClassifierConfig(_ConfigBase):
    """Sizes of the noise-aware emotion classifier (official ``EmoCls`` with two MLD-VAE encoders).

    Args:
        latent_dim: VAE token / latent width, also the input width of the ``emo_pred_*`` heads.
        ff_size: feed-forward width of each VAE transformer block.
        num_layers: blocks of each skip-transformer encoder (odd: in blocks, a middle block, out blocks).
        num_heads: attention heads of each block.
    """

    latent_dim: int = 256
    ff_size: int = 1024
    num_layers: int = 9
    num_heads: int = 4

    def __post_init__(self) -> None:
        _check_positive("EmotionClassifierConfig", latent_dim=self.latent_dim, ff_size=self.ff_size,
                        num_layers=self.num_layers, num_heads=self.num_heads)
        if self.num_layers % 2 != 1:
            raise ValueError(f"EmotionClassifierConfig.num_layers must be odd (skip connections pair the blocks "
                             f"around a middle block), got {self.num_layers}.")
        if self.latent_dim % self.num_heads:
            raise ValueError(f"EmotionClassifierConfig.latent_dim {self.latent_dim} is not divisible by "
                             f"num_heads {self.num_heads}.")

    @classmethod
    def from_official_kwargs(cls, vae_kwargs: dict[str, Any]) -> EmotionClassifierConfig:
        """Config from the original ``MldVae(...)`` kwargs (``vae_kwargs`` of ``emo_classifier.small.json``).

        Args:
            vae_kwargs: MldVae keyword arguments (``latent_dim`` is ``[1, D]`` there).

        Returns:
            The config; raises ValueError if a hard-wired kwarg differs from the released network.
        """
        _check_official(vae_kwargs, {"arch": "encoder_decoder", "normalize_before": False, "activation": "gelu",
                                     "position_embedding": "learned"}, cls.__name__)
        latent = vae_kwargs.get("latent_dim", [1, cls.latent_dim])
        if not (isinstance(latent, list | tuple) and len(latent) == 2 and latent[0] == 1):
            raise ValueError(f"{cls.__name__}: MldVae latent_dim must be [1, D], got {latent!r}.")
        return cls(latent_dim=int(latent[1]), ff_size=vae_kwargs.get("ff_size", cls.ff_size),
                   num_layers=vae_kwargs.get("num_layers", cls.num_layers),
                   num_heads=vae_kwargs.get("num_heads", cls.num_heads))
