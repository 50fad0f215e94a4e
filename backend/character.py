"""SMPL-X characters: the rest skeleton and an optional skinned body mesh, written as a ``.npz`` file.

The add-on cannot build a body itself (Blender's Python has numpy < 2 and no ``mannequin-x``), so the
backend's ``character`` method writes everything the add-on needs into one file:

| key (npz) | shape, dtype | meaning |
|---|---|---|
| ``joint_names`` | (55,) str | SMPL-X joint names (``backend.motion.skeleton.JOINT_NAMES``) |
| ``parents`` | (55,) int32 | parent index per joint, -1 for the pelvis |
| ``rest_joints`` | (55, 3) float32 | rest (T-pose) joint centres, SMPL-X canonical frame (Y up, +Z forward), metres |
| ``gender`` / ``betas`` | str / (10,) float32 | the body the file was built for |
| ``source`` | str | where the body came from (built-in skeleton, mannequin-x, or the user's SMPL-X file) |
| ``vertices`` | (V, 3) float32 | rest-pose mesh vertices, same frame (only with a mesh) |
| ``faces`` | (F, 3) int32 | triangles (only with a mesh) |
| ``skin_indices`` | (V, 4) int32 | the four strongest skinning joints per vertex, SMPL-X indices, strongest first |
| ``skin_weights`` | (V, 4) float32 | their weights, each row sums to 1 (unused slots have weight 0) |

Two sources:

1. **Built-in** (default, needs no licensed file): the neutral skeleton of ``backend.motion.skeleton``
   (body shape from ``mannequin-x``'s linear beta→joint calibration when ``betas`` are given) and the
   ``mannequin-x`` wooden mannequin, which that package refits to the same skeleton. The mannequin has 54
   joints: no jaw or eyes, and a zero-length ``L_Hand``/``R_Hand`` at each wrist, which map to the wrists.
2. **The user's SMPL-X model** (``smplx_dir``): through the optional, non-commercial ``smplx`` package,
   which this project never installs or vendors.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RequestError, WeightsError
from .fileio import write_atomic
from .motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_JOINTS
from .vocabulary import GENDERS

NUM_BETAS = 10
SKIN_INFLUENCES = 4
HEAD = JOINT_NAMES.index("head")
_FACE_JOINTS = tuple(JOINT_NAMES.index(name) for name in ("jaw", "left_eye_smplhf", "right_eye_smplhf"))

# mannequin-x names that differ from "L_/R_ + SMPL-X name" (after its own SMPL-X renaming).
_MANNEQUIN_ALIASES = {"L_Hand": "left_wrist", "R_Hand": "right_wrist"}


def build_character(
    gender: str = "neutral",
    betas: Sequence[float] | np.ndarray | None = None,
    smplx_dir: str | os.PathLike[str] | None = None,
    with_mesh: bool = True,
    *,
    output: str | os.PathLike[str],
) -> dict[str, Any]:
    """Build an SMPL-X character (rest skeleton + optional skinned mesh) and write it as ``.npz``.

    Args:
        gender: ``neutral`` | ``male`` | ``female``. The built-in body is neutral only; male and female
            need ``smplx_dir``.
        betas: up to 10 SMPL-X shape coefficients (missing ones are 0); None = the mean shape.
        smplx_dir: folder with the user's own SMPL-X model (``SMPLX_NEUTRAL.npz`` etc., directly or in an
            ``smplx/`` sub-folder); needs the optional ``smplx`` package. None = the built-in body.
        with_mesh: also write the skinned body mesh (vertices, faces, top-4 skin weights).
        output: the ``.npz`` path to write (atomically: a reader never sees a partial file).

    Returns:
        ``{"output": str, "num_joints": 55, "num_vertices": int (0 without a mesh), "source": str,
        "gender": str, "betas": list[float]}``.

    Raises:
        RequestError: an invalid gender or betas.
        WeightsError: the SMPL-X files, the ``smplx`` package or ``mannequin-x`` are missing.
        OutputError: the file could not be written.
    """
    if gender not in GENDERS:
        raise RequestError("gender", f"must be one of {', '.join(GENDERS)}, got {gender!r}.")
    shape = _check_betas(betas)
    if smplx_dir is not None:
        character = _from_smplx(Path(smplx_dir), gender, shape, with_mesh)
    else:
        if gender != "neutral":
            raise RequestError("gender", f"the built-in body is neutral only; to get a {gender} body, point "
                               "smplx_dir at your own SMPL-X model files (and install the smplx package).")
        character = _from_builtin(shape, with_mesh)
    character.update(joint_names=np.array(JOINT_NAMES), parents=np.array(PARENTS, np.int32),
                     gender=np.array(gender), betas=shape)
    path = Path(output)
    _write_npz_atomic(path, character)
    return {"output": str(path), "num_joints": NUM_JOINTS,
            "num_vertices": int(len(character["vertices"])) if "vertices" in character else 0,
            "source": str(character["source"]), "gender": gender, "betas": [float(b) for b in shape]}


def _check_betas(betas: Sequence[float] | np.ndarray | None) -> np.ndarray:
    if betas is None:
        return np.zeros(NUM_BETAS, np.float32)
    try:
        values = np.asarray(betas, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise RequestError("betas", f"must be a list of up to {NUM_BETAS} numbers, got {betas!r}.") from None
    if len(values) > NUM_BETAS:
        raise RequestError("betas", f"at most {NUM_BETAS} shape coefficients are supported, got {len(values)}.")
    if not np.all(np.isfinite(values)):
        raise RequestError("betas", "must be finite numbers.")
    shape = np.zeros(NUM_BETAS, np.float32)
    shape[: len(values)] = values
    return shape


# ---------------------------------------------------------------------------------------------------
# Built-in body: skeleton.py + mannequin-x


def _import_mannequin() -> Any:
    try:
        import mannequin
    except ImportError:
        raise WeightsError("The built-in body mesh and body shapes need the mannequin-x package: install it "
                           "with `pip install mannequin-x` (the project's `mannequin` extra), or build the "
                           "character without a mesh and with the mean shape.") from None
    return mannequin


def _mannequin_available() -> bool:
    try:
        import mannequin  # noqa: F401
    except ImportError:
        return False
    return True


# Segment body: radius (m) of the segment from a joint to its child, by joint name (substring match, first
# wins). The head is an ellipsoid of its own. Proportions of an adult, only meant to read well in a viewport.
_SEGMENT_RADII = (("eye", 0.0), ("jaw", 0.0), ("thumb", 0.010), ("index", 0.009), ("middle", 0.009),
                  ("ring", 0.0085), ("pinky", 0.008), ("wrist", 0.030), ("elbow", 0.036), ("shoulder", 0.046),
                  ("collar", 0.045), ("neck", 0.050), ("spine", 0.110), ("pelvis", 0.110), ("hip", 0.070),
                  ("knee", 0.052), ("ankle", 0.040), ("foot", 0.035), ("head", 0.0))
_SIDES = 10


def segment_body(rest_joints: np.ndarray) -> dict[str, np.ndarray]:
    """A simple skinned body: a closed tube per bone (rigidly bound to the bone's joint) and a head.

    Args:
        rest_joints: (55, 3) rest joint centres, SMPL-X canonical frame (Y up), metres.

    Returns:
        ``vertices`` (V, 3) float32, ``faces`` (F, 3) int32, ``skin_indices`` (V, 4) int32 and
        ``skin_weights`` (V, 4) float32 (every vertex fully bound to one joint), as ``build_character``.
    """
    rest = np.asarray(rest_joints, np.float64)
    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    owners: list[np.ndarray] = []

    def add(part_vertices: np.ndarray, part_faces: np.ndarray, joint: int) -> None:
        offset = sum(len(v) for v in vertices)
        vertices.append(part_vertices)
        faces.append(part_faces + offset)
        owners.append(np.full(len(part_vertices), joint, np.int32))

    for child, parent in enumerate(PARENTS):
        if parent < 0:
            continue
        name = JOINT_NAMES[parent]
        radius = next((r for key, r in _SEGMENT_RADII if key in name), 0.02)
        if radius <= 0.0 or JOINT_NAMES[child] in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
            continue
        if JOINT_NAMES[child].startswith(("left_collar", "right_collar")):
            continue  # the chest tube covers the collar bones
        add(*_tube(rest[parent], rest[child], radius, radius * 0.85), parent)
    head = rest[HEAD]
    add(*_ellipsoid(head + np.array([0.0, 0.085, 0.015]), np.array([0.085, 0.11, 0.10])), HEAD)
    all_vertices = np.concatenate(vertices)
    skin_indices = np.repeat(np.concatenate(owners)[:, None], SKIN_INFLUENCES, 1)
    skin_weights = np.zeros((len(all_vertices), SKIN_INFLUENCES), np.float32)
    skin_weights[:, 0] = 1.0
    return {"vertices": all_vertices.astype(np.float32), "faces": np.concatenate(faces).astype(np.int32),
            "skin_indices": skin_indices.astype(np.int32), "skin_weights": skin_weights}


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``axis`` and to each other."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def _tube(start: np.ndarray, end: np.ndarray, r0: float, r1: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed, slightly tapered tube from ``start`` to ``end`` (rings of ``_SIDES`` plus two cap centres)."""
    length = float(np.linalg.norm(end - start))
    axis = (end - start) / max(length, 1e-9)
    u, v = _frame(axis)
    angles = np.linspace(0.0, 2.0 * np.pi, _SIDES, endpoint=False)
    ring = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v
    overlap = min(r0, r1) * 0.5 * axis  # tubes overlap at the joints so the body reads as closed
    bottom = start - overlap + r0 * ring
    top = end + overlap + r1 * ring
    verts = np.concatenate([bottom, top, [start - overlap, end + overlap]])
    i = np.arange(_SIDES)
    j = (i + 1) % _SIDES
    side = np.concatenate([np.stack([i, j, j + _SIDES], 1), np.stack([i, j + _SIDES, i + _SIDES], 1)])
    caps = np.concatenate([np.stack([np.full(_SIDES, 2 * _SIDES), j, i], 1),
                           np.stack([np.full(_SIDES, 2 * _SIDES + 1), i + _SIDES, j + _SIDES], 1)])
    return verts, np.concatenate([side, caps])


def _ellipsoid(centre: np.ndarray, radii: np.ndarray, rings: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A UV ellipsoid: ``rings`` latitude rings of ``_SIDES`` vertices plus the two poles."""
    lat = np.linspace(0.0, np.pi, rings + 2)[1:-1]
    lon = np.linspace(0.0, 2.0 * np.pi, _SIDES, endpoint=False)
    unit = np.stack([np.sin(lat)[:, None] * np.cos(lon), np.cos(lat)[:, None] * np.ones_like(lon),
                     np.sin(lat)[:, None] * np.sin(lon)], -1).reshape(-1, 3)
    verts = np.concatenate([unit, [[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]]) * radii + centre
    faces = []
    for r in range(rings - 1):
        for k in range(_SIDES):
            a, b = r * _SIDES + k, r * _SIDES + (k + 1) % _SIDES
            faces += [[a, a + _SIDES, b], [b, a + _SIDES, b + _SIDES]]
    top, bottom = rings * _SIDES, rings * _SIDES + 1
    last = (rings - 1) * _SIDES
    for k in range(_SIDES):
        faces += [[top, (k + 1) % _SIDES, k], [bottom, last + k, last + (k + 1) % _SIDES]]
    return verts, np.array(faces, np.int64)


def _mannequin_to_smplx(names: Sequence[str]) -> np.ndarray:
    """SMPL-X index of each mannequin-x joint, by name (``L_Index1`` → ``left_index1``)."""
    mapping = []
    for name in names:
        smplx_name = _MANNEQUIN_ALIASES.get(name)
        if smplx_name is None:
            lowered = name.lower()
            smplx_name = {"l_": "left_", "r_": "right_"}.get(lowered[:2], lowered[:2]) + lowered[2:]
        if smplx_name not in JOINT_NAMES:
            raise WeightsError(f"mannequin-x joint '{name}' has no SMPL-X counterpart; this mannequin-x "
                               "version is not supported (install mannequin-x 0.3).")
        mapping.append(JOINT_NAMES.index(smplx_name))
    return np.array(mapping, np.int64)


def _mannequin_rest_joints(model: Any, to_smplx: np.ndarray) -> np.ndarray:
    """(55, 3) float64 rest joints of a mannequin-x body; jaw and eyes (absent there) stay NaN."""
    transforms = model.joint_transforms(model.rest_pose(dtype=np.float64))
    joints = np.full((NUM_JOINTS, 3), np.nan)
    joints[to_smplx] = transforms[:, :3, 3]  # L_Hand/R_Hand coincide with the wrists they map to
    return joints


def _from_builtin(shape: np.ndarray, with_mesh: bool) -> dict[str, Any]:
    rest_joints = np.array(REST_JOINTS, dtype=np.float64)
    source = "built-in SMPL-X neutral skeleton"
    if not shape.any() and not with_mesh:
        return {"rest_joints": rest_joints.astype(np.float32), "source": np.array(source)}

    if with_mesh and not shape.any() and not _mannequin_available():
        # Blender's own Python (the extension's default backend) has numpy < 2 and so no mannequin-x: a
        # simple body of our own, one rigid segment per bone, still shows the gestures.
        return {"rest_joints": rest_joints.astype(np.float32), **segment_body(rest_joints),
                "source": np.array(source + ", segment body (mannequin-x not installed)")}
    mannequin = _import_mannequin()
    model = mannequin.Mannequin("wooden", shape=shape, flat_hand_mean=True)
    to_smplx = _mannequin_to_smplx(model.joint_names)
    if shape.any():
        # Body shape: rest joints move linearly with the betas (SMPL-X J = J_regressor (T + S beta)).
        # The mannequin's calibration carries that linear map for 54 joints; apply its displacement to the
        # built-in table so beta = 0 gives exactly REST_JOINTS. Jaw and eyes move with the head.
        neutral = _mannequin_rest_joints(mannequin.Mannequin("wooden", flat_hand_mean=True), to_smplx)
        delta = _mannequin_rest_joints(model, to_smplx) - neutral
        delta[list(_FACE_JOINTS)] = delta[HEAD]
        rest_joints = rest_joints + delta
        source += f", shaped by mannequin-x {_version('mannequin-x')} calibration"
    character: dict[str, Any] = {"rest_joints": rest_joints.astype(np.float32)}
    if with_mesh:
        character.update(_mannequin_mesh(model, to_smplx))
        source += f", mannequin-x {_version('mannequin-x')} wooden mesh"
    character["source"] = np.array(source)
    return character


def _mannequin_mesh(model: Any, to_smplx: np.ndarray) -> dict[str, np.ndarray]:
    """Rest mesh and top-4 skinning of a mannequin-x wooden body, joints renumbered to SMPL-X."""
    vertices = model.vertices(model.rest_pose(dtype=np.float64))
    # mannequin-x has no public accessor for its bound skin: read the top-4 binding its own skinning uses
    # (``Mannequin._skin_vertices``), so Blender's linear blend skinning reproduces mannequin-x exactly.
    indices = getattr(model, "_skin_joint_indices", None)
    weights = getattr(model, "_skin_weights", None)
    if indices is None or weights is None or indices.shape != (len(vertices), SKIN_INFLUENCES):
        raise WeightsError("This mannequin-x version does not expose its skin binding as 0.3 does; "
                           "install mannequin-x 0.3.")
    skin_indices, skin_weights = _top_k(to_smplx[np.asarray(indices)], np.asarray(weights, np.float64))
    return {"vertices": vertices.astype(np.float32), "faces": np.asarray(model.faces, np.int32),
            "skin_indices": skin_indices, "skin_weights": skin_weights}


def _top_k(indices: np.ndarray, weights: np.ndarray, k: int = SKIN_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """Keep the ``k`` strongest influences per vertex, strongest first, renormalised to sum to 1.

    Args:
        indices: (V, K) joint index per influence.
        weights: (V, K) non-negative weights.

    Returns:
        ``(indices (V, k) int32, weights (V, k) float32)``; unused slots repeat the strongest joint with
        weight 0.
    """
    if indices.shape[1] < k:
        pad = k - indices.shape[1]
        indices = np.concatenate([indices, np.repeat(indices[:, :1], pad, 1)], 1)
        weights = np.concatenate([weights, np.zeros((len(weights), pad))], 1)
    order = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    top_weights = np.take_along_axis(weights, order, 1)
    top_indices = np.take_along_axis(indices, order, 1)
    totals = top_weights.sum(1, keepdims=True)
    if np.any(totals <= 0):
        raise WeightsError(f"{int(np.sum(totals <= 0))} mesh vertices have no skinning weight.")
    top_weights = top_weights / totals
    top_indices = np.where(top_weights > 0, top_indices, top_indices[:, :1])
    return top_indices.astype(np.int32), top_weights.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# The user's SMPL-X model through the optional smplx package


def find_smplx_model(smplx_dir: Path, gender: str) -> Path:
    """The SMPL-X model file for ``gender`` in ``smplx_dir`` (or its ``smplx/`` sub-folder).

    Raises:
        WeightsError: the folder or the file is missing; the message lists where it looked.
    """
    if not smplx_dir.is_dir():
        raise WeightsError(f"SMPL-X model folder '{smplx_dir}' does not exist. Download the SMPL-X model "
                           "from https://smpl-x.is.tue.mpg.de (free registration, non-commercial licence) "
                           "and point smplx_dir at the folder holding SMPLX_NEUTRAL.npz.")
    names = [f"SMPLX_{gender.upper()}.npz", f"SMPLX_{gender.upper()}.pkl"]
    candidates = [folder / name for folder in (smplx_dir, smplx_dir / "smplx") for name in names]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise WeightsError(f"No SMPL-X {gender} model in '{smplx_dir}': looked for "
                       f"{', '.join(str(c) for c in candidates)}. Put SMPLX_{gender.upper()}.npz from "
                       "https://smpl-x.is.tue.mpg.de there.")


def _from_smplx(smplx_dir: Path, gender: str, shape: np.ndarray, with_mesh: bool) -> dict[str, Any]:
    model_file = find_smplx_model(smplx_dir, gender)
    try:
        import smplx
        import torch
    except ImportError as error:
        raise WeightsError(f"Reading your SMPL-X model needs the optional '{error.name}' package, which is "
                           "not installed. Install it yourself with `pip install smplx torch` (smplx is under "
                           "the MPI non-commercial licence), or build the character without smplx_dir to "
                           "use the built-in body.") from None
    try:
        model = smplx.create(str(model_file), model_type="smplx", gender=gender, num_betas=NUM_BETAS,
                             use_pca=False, flat_hand_mean=True)
    except Exception as error:  # the package unpickles/reads a user file: report any failure as unusable
        raise WeightsError(f"Could not load the SMPL-X model '{model_file}': {error}. Check that it is an "
                           "SMPL-X model file (SMPLX_*.npz/.pkl from https://smpl-x.is.tue.mpg.de).") from None
    with torch.no_grad():
        result = model(betas=torch.as_tensor(shape[None], dtype=torch.float32), return_verts=True)
    joints = result.joints[0, :NUM_JOINTS].detach().cpu().numpy().astype(np.float64)
    if joints.shape != (NUM_JOINTS, 3):
        raise WeightsError(f"'{model_file}' gave {joints.shape[0]} joints, not the {NUM_JOINTS} of SMPL-X.")
    character: dict[str, Any] = {"rest_joints": joints.astype(np.float32),
                                 "source": np.array(f"SMPL-X model {model_file}")}
    if with_mesh:
        lbs = np.asarray(model.lbs_weights.detach().cpu().numpy(), np.float64)  # (V, 55)
        all_joints = np.broadcast_to(np.arange(lbs.shape[1]), lbs.shape)
        skin_indices, skin_weights = _top_k(all_joints, lbs)
        character.update(vertices=result.vertices[0].detach().cpu().numpy().astype(np.float32),
                         faces=np.asarray(model.faces, dtype=np.int32), skin_indices=skin_indices,
                         skin_weights=skin_weights)
    return character


# ---------------------------------------------------------------------------------------------------


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _write_npz_atomic(path: Path, arrays: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue(), what="character file")
