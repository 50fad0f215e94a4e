"""The ``character`` builder: SMPL-X rest skeleton + skinned mannequin-x body as ``.npz``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backend.character import build_character
from backend.errors import RequestError, WeightsError
from backend.motion.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS

mannequin = pytest.importorskip("mannequin")


def load_character(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a character ``.npz`` written by ``build_character`` into a dict of arrays (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def neutral(tmp_path_factory) -> dict[str, np.ndarray]:
    path = tmp_path_factory.mktemp("character") / "neutral.npz"
    summary = build_character(output=path)
    assert summary["output"] == str(path) and summary["num_vertices"] == 24256
    assert summary["gender"] == "neutral" and "mannequin-x" in summary["source"]
    return load_character(path)


def test_file_layout(neutral):
    assert [str(n) for n in neutral["joint_names"]] == list(JOINT_NAMES)
    assert neutral["parents"].tolist() == list(PARENTS)
    assert neutral["rest_joints"].shape == (55, 3) and neutral["rest_joints"].dtype == np.float32
    vertices, faces = neutral["vertices"], neutral["faces"]
    assert vertices.shape == (24256, 3) and vertices.dtype == np.float32
    assert faces.shape == (48396, 3) and faces.dtype == np.int32
    assert faces.min() == 0 and faces.max() == len(vertices) - 1
    assert neutral["skin_indices"].shape == (24256, 4) and neutral["skin_weights"].shape == (24256, 4)
    assert str(neutral["gender"]) == "neutral" and neutral["betas"].shape == (10,)
    # a standing adult: about 1.72 m from the soles to the crown, Y up
    assert 1.6 < np.ptp(vertices[:, 1]) < 1.85 and np.ptp(vertices[:, 1]) > np.ptp(vertices[:, 2]) * 4


def test_rest_joints_are_the_builtin_skeleton(neutral):
    np.testing.assert_allclose(neutral["rest_joints"], REST_JOINTS, atol=1e-7)


def test_skin_weights(neutral):
    weights, indices = neutral["skin_weights"], neutral["skin_indices"]
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-6)
    assert (weights >= 0).all() and (np.diff(weights, axis=1) <= 0).all()  # strongest first
    assert indices.min() >= 0 and indices.max() < 55
    used = set(np.unique(indices[weights > 0]).tolist())
    # every body part is skinned to its own SMPL-X joint; the mannequin has no jaw/eye joints
    for name in ("pelvis", "head", "left_wrist", "right_wrist", "left_thumb3", "right_pinky3", "left_foot"):
        assert JOINT_NAMES.index(name) in used
    assert not used & {22, 23, 24}
    # vertices bound to the left wrist lie at the left hand (+X), those of the right wrist at -X
    left = np.isin(np.arange(len(weights)), np.nonzero((indices[:, 0] == 20) & (weights[:, 0] > 0.9))[0])
    assert left.any() and neutral["vertices"][left, 0].min() > 0.6


def test_mesh_is_bound_to_the_skeleton(neutral):
    # mannequin-x binds its mesh to its own refitted skeleton: that must be our rest skeleton
    model = mannequin.Mannequin("wooden", flat_hand_mean=True)
    bind = model.joint_transforms(model.rest_pose(dtype=np.float64))[:, :3, 3]
    ours = np.delete(np.arange(55), [22, 23, 24])  # mannequin order minus its L_Hand/R_Hand = SMPL-X order
    mannequin_rows = np.delete(np.arange(54), [22, 23])
    np.testing.assert_allclose(bind[mannequin_rows], neutral["rest_joints"][ours], atol=1e-5)


def _lbs(vertices, indices, weights, rest_joints, rotations, parents):
    """Linear blend skinning with per-joint local rotations (J, 3, 3) about the rest joints."""
    world = np.zeros((55, 3, 3))
    origin = np.zeros((55, 3))
    for joint, parent in enumerate(parents):
        if parent < 0:
            world[joint] = rotations[joint]
            origin[joint] = rest_joints[joint]
        else:
            world[joint] = world[parent] @ rotations[joint]
            origin[joint] = origin[parent] + world[parent] @ (rest_joints[joint] - rest_joints[parent])
    relative = vertices[:, None, :] - rest_joints[indices]
    moved = np.einsum("vkij,vkj->vki", world[indices], relative) + origin[indices]
    return (moved * weights[..., None]).sum(1)


def test_exported_skinning_reproduces_mannequin_poses(neutral):
    rng = np.random.default_rng(0)
    body_pose = rng.normal(0, 0.3, (21, 3))
    hand_pose = rng.normal(0, 0.3, (30, 3))
    model = mannequin.Mannequin("wooden", flat_hand_mean=True)
    pose = model.rest_pose(dtype=np.float64)
    pose["body_pose"], pose["hand_pose"] = body_pose, hand_pose
    expected = model.vertices(pose)

    def rotation(axis_angle):
        angle = np.linalg.norm(axis_angle)
        k = np.array([[0, -axis_angle[2], axis_angle[1]], [axis_angle[2], 0, -axis_angle[0]],
                      [-axis_angle[1], axis_angle[0], 0]]) / max(angle, 1e-12)
        return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k

    axis_angles = np.zeros((55, 3))
    axis_angles[1:22], axis_angles[25:55] = body_pose, hand_pose
    rotations = np.stack([rotation(a) for a in axis_angles])
    bind = model.joint_transforms(model.rest_pose(dtype=np.float64))[:, :3, 3]
    bind55 = np.array(neutral["rest_joints"], np.float64)
    bind55[np.delete(np.arange(55), [22, 23, 24])] = bind[np.delete(np.arange(54), [22, 23])]
    posed = _lbs(neutral["vertices"].astype(np.float64), neutral["skin_indices"],
                 neutral["skin_weights"].astype(np.float64), bind55, rotations, PARENTS)
    assert np.abs(posed - neutral["vertices"]).max() > 0.05  # the pose really moves the body
    np.testing.assert_allclose(posed, expected, atol=2e-4)


def test_skeleton_only(tmp_path):
    summary = build_character(with_mesh=False, output=tmp_path / "bones.npz")
    data = load_character(tmp_path / "bones.npz")
    assert summary["num_vertices"] == 0 and "vertices" not in data and "skin_weights" not in data
    np.testing.assert_allclose(data["rest_joints"], REST_JOINTS, atol=1e-7)


def test_betas_change_bone_lengths(tmp_path):
    tall = load_character(build_character(betas=[2.0], output=tmp_path / "tall.npz")["output"])
    short = load_character(build_character(betas=[-2.0], with_mesh=False, output=tmp_path / "short.npz")["output"])
    tall_height = tall["rest_joints"][15, 1] - tall["rest_joints"][7, 1]
    short_height = short["rest_joints"][15, 1] - short["rest_joints"][7, 1]
    assert abs(tall_height - short_height) > 0.05
    assert tall["betas"][0] == 2.0 and tall["betas"][1:].tolist() == [0.0] * 9
    # jaw and eyes keep their place relative to the head
    for joint in (22, 23, 24):
        np.testing.assert_allclose(tall["rest_joints"][joint] - tall["rest_joints"][15],
                                   REST_JOINTS[joint] - REST_JOINTS[15], atol=1e-6)
    # the refitted mesh follows: the crown sits above the shaped head joint, the soles below the ankles
    assert tall["vertices"][:, 1].max() > tall["rest_joints"][15, 1] + 0.1
    assert tall["vertices"][:, 1].min() < tall["rest_joints"][7, 1]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"gender": "robot"}, "gender"), ({"gender": "female"}, "gender"), ({"betas": [0.0] * 11}, "betas"),
    ({"betas": [float("nan")]}, "betas"), ({"betas": "tall"}, "betas")])
def test_bad_requests(tmp_path, kwargs, field):
    with pytest.raises(RequestError) as error:
        build_character(output=tmp_path / "x.npz", **kwargs)
    assert error.value.field == field
    assert not (tmp_path / "x.npz").exists()


def test_smplx_dir_missing_folder_or_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist.*smpl-x.is.tue.mpg.de"):
        build_character(smplx_dir=tmp_path / "nowhere", output=tmp_path / "x.npz")
    (tmp_path / "models" / "smplx").mkdir(parents=True)
    with pytest.raises(WeightsError, match="SMPLX_FEMALE.npz"):
        build_character(gender="female", smplx_dir=tmp_path / "models", output=tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_smplx_package_missing(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "SMPLX_NEUTRAL.npz").write_bytes(b"not checked before the package")
    monkeypatch.setitem(sys.modules, "smplx", None)  # as if not installed (it is not, and must not be)
    with pytest.raises(WeightsError, match="optional 'smplx' package.*non-commercial"):
        build_character(smplx_dir=tmp_path / "models", output=tmp_path / "x.npz")


FAKE_SMPLX = textwrap.dedent('''
    """Stand-in for the non-commercial smplx package: a 4-joint-influence toy body with SMPL-X's API."""
    import numpy as np
    import torch
    from types import SimpleNamespace

    CALLS = []

    class _Body(torch.nn.Module):
        def __init__(self, path, gender):
            super().__init__()
            data = np.load(path)
            self.template, self.regressor = data["v_template"], data["J_regressor"]
            self.shapedirs, self.faces = data["shapedirs"], data["f"]
            self.lbs_weights = torch.as_tensor(data["weights"])

        def forward(self, betas, return_verts=True):
            vertices = self.template + self.shapedirs @ betas[0].numpy()
            joints = self.regressor @ vertices
            extra = np.zeros((72, 3))  # smplx appends landmark joints after the 55
            return SimpleNamespace(vertices=torch.as_tensor(vertices[None]),
                                   joints=torch.as_tensor(np.concatenate([joints, extra])[None]))

    def create(model_path, model_type, gender, num_betas, use_pca, flat_hand_mean):
        CALLS.append(dict(model_path=model_path, model_type=model_type, gender=gender, num_betas=num_betas,
                          use_pca=use_pca, flat_hand_mean=flat_hand_mean))
        return _Body(model_path, gender)
''')


def test_smplx_model_folder(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    vertices = 300
    weights = rng.random((vertices, 55)) ** 8
    weights /= weights.sum(1, keepdims=True)
    folder = tmp_path / "models" / "smplx"
    folder.mkdir(parents=True)
    np.savez(folder / "SMPLX_MALE.npz", v_template=rng.normal(size=(vertices, 3)),
             J_regressor=np.abs(rng.normal(size=(55, vertices))) / vertices, weights=weights,
             shapedirs=rng.normal(size=(vertices, 3, 10)) * 0.01, f=rng.integers(0, vertices, (500, 3)))
    (tmp_path / "pkg" / "smplx").mkdir(parents=True)
    (tmp_path / "pkg" / "smplx" / "__init__.py").write_text(FAKE_SMPLX)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.delitem(sys.modules, "smplx", raising=False)

    summary = build_character("male", [1.0, -1.0], tmp_path / "models", output=tmp_path / "male.npz")
    import smplx

    assert smplx.CALLS == [dict(model_path=str(folder / "SMPLX_MALE.npz"), model_type="smplx", gender="male",
                                num_betas=10, use_pca=False, flat_hand_mean=True)]
    assert summary["source"].startswith("SMPL-X model") and summary["num_vertices"] == vertices
    data = load_character(tmp_path / "male.npz")
    model = np.load(folder / "SMPLX_MALE.npz")
    shaped = model["v_template"] + model["shapedirs"] @ np.r_[1.0, -1.0, [0.0] * 8]
    np.testing.assert_allclose(data["vertices"], shaped, atol=1e-5)
    np.testing.assert_allclose(data["rest_joints"], model["J_regressor"] @ shaped, atol=1e-5)
    np.testing.assert_allclose(data["skin_weights"].sum(1), 1.0, atol=1e-6)
    strongest = np.argsort(-weights, 1)[:, :4]
    assert (data["skin_indices"] == strongest).all()
    np.testing.assert_array_equal(data["faces"], model["f"])


def test_cli(repo_root, tmp_path):
    out = tmp_path / "cli.npz"
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    result = subprocess.run([sys.executable, "-m", "backend", "character", "-o", str(out), "--no-mesh",
                             "--betas", "0.5", "1"], cwd=repo_root, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["num_vertices"] == 0 and summary["betas"][:3] == [0.5, 1.0, 0.0]
    assert load_character(out)["rest_joints"].shape == (55, 3)
    bad = subprocess.run([sys.executable, "-m", "backend", "character", "-o", str(tmp_path / "f.npz"),
                          "--gender", "female"], cwd=repo_root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "smplx_dir" in bad.stderr and not Path(tmp_path / "f.npz").exists()


def test_cli_creates_the_output_folder_and_wants_npz(repo_root, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    out = tmp_path / "new" / "sub" / "body.npz"
    made = subprocess.run([sys.executable, "-m", "backend", "character", "-o", str(out), "--no-mesh"], cwd=repo_root,
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert load_character(out)["rest_joints"].shape == (55, 3)
    text = tmp_path / "body.txt"
    bad = subprocess.run([sys.executable, "-m", "backend", "character", "-o", str(text), "--no-mesh"], cwd=repo_root,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'output'" in bad.stderr and ".npz" in bad.stderr and not text.exists()


def test_unwritable_output(tmp_path):
    from backend.errors import OutputError

    with pytest.raises(OutputError, match="Could not write the character file"):
        build_character(with_mesh=False, output=tmp_path / "missing" / "x.npz")
    assert not list(tmp_path.rglob("*.tmp"))


def test_without_mannequin_the_mesh_is_a_segment_body_and_shapes_need_it(tmp_path, monkeypatch):
    """Blender's own Python has numpy < 2 and so no mannequin-x: Add SMPL-X Character still gets a body."""
    monkeypatch.setitem(sys.modules, "mannequin", None)  # as if mannequin-x were not installed
    summary = build_character(output=tmp_path / "x.npz")
    assert "segment body" in summary["source"] and summary["num_vertices"] > 500
    body = load_character(tmp_path / "x.npz")
    np.testing.assert_allclose(body["skin_weights"].sum(1), 1.0, atol=1e-6)
    assert body["faces"].max() < len(body["vertices"]) and body["faces"].min() >= 0
    bound = set(body["skin_indices"][:, 0].tolist())
    for name in ("pelvis", "left_elbow", "right_wrist", "left_knee", "head", "right_index1"):
        assert JOINT_NAMES.index(name) in bound, name
    # each tube hugs its bone: its vertices lie near the segment from its joint to the child
    lowest = body["vertices"][:, 1].min()
    assert abs(lowest - REST_JOINTS[:, 1].min()) < 0.1
    with pytest.raises(WeightsError, match="mannequin-x"):
        build_character(betas=[1.0], output=tmp_path / "shaped.npz")
    build_character(with_mesh=False, output=tmp_path / "bones.npz")  # the skeleton alone needs nothing
    np.testing.assert_allclose(load_character(tmp_path / "bones.npz")["rest_joints"], REST_JOINTS, atol=1e-7)
