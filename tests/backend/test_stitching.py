"""Window geometry and stitching, tested with fake sample_fns (pure numpy, no networks)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.engines.expgest import stitching as S


def _linear_sample_fn(plan: S.WindowPlan, channels: int = 3, offset_per_window: float = 0.0, calls=None):
    """A fake sampler whose window i returns frame value = its absolute time index (+ a per-window offset)."""

    def sample_fn(index: int, seed):
        if calls is not None:
            calls.append((index, None if seed is None else seed.copy()))
        start, end = plan.window_frames(index)
        frames = np.arange(start, end, dtype=np.float32)[:, None].repeat(channels, axis=1)
        return frames + np.float32(offset_per_window * index)

    return sample_fn


def test_geometry_constants():
    assert (S.AUDIO_ONLY_GEOMETRY.n_poses, S.AUDIO_ONLY_GEOMETRY.stride) == (88, 80)
    assert (S.HYBRID_GEOMETRY.n_poses, S.HYBRID_GEOMETRY.stride) == (180, 172)
    assert S.AUDIO_ONLY_GEOMETRY.samples_per_frame == 800


@pytest.mark.parametrize(("n_frames", "windows"), [(1, 1), (79, 1), (80, 1), (81, 2), (240, 3), (241, 4)])
def test_plan_counts_ceil_windows(n_frames, windows):
    assert S.plan_windows(n_frames, S.AUDIO_ONLY_GEOMETRY).n_windows == windows


def test_window_audio_has_prefix_of_previous_chunk():
    plan = S.plan_windows(200, S.AUDIO_ONLY_GEOMETRY)
    audio = np.arange(200 * 800, dtype=np.float32)
    windows = S.window_audio(audio, plan)
    assert len(windows) == 3 and all(len(w) == 70_400 for w in windows)
    np.testing.assert_array_equal(windows[0][:6400], 0)
    np.testing.assert_array_equal(windows[0][6400:], audio[:64_000])
    # window 1 = last 8 frames (6 400 samples) of chunk 0, then chunk 1
    np.testing.assert_array_equal(windows[1], audio[64_000 - 6400:128_000])
    # the tail beyond the audio is zero padding
    np.testing.assert_array_equal(windows[2][6400 + 32_000:], 0)


def test_short_audio_is_padded_to_one_stride():
    """Audio under 4 s (one stride) crashes the reference's chunk reshape; here it gets one padded window."""
    audio = np.ones(16000, dtype=np.float32)          # 1 s = 20 frames < 80
    n_frames = S.frames_for_samples(len(audio), S.AUDIO_ONLY_GEOMETRY)
    plan = S.plan_windows(n_frames, S.AUDIO_ONLY_GEOMETRY)
    windows = S.window_audio(audio, plan)
    assert n_frames == 20 and plan.n_windows == 1 and windows[0].shape == (70_400,)
    np.testing.assert_array_equal(windows[0][6400:6400 + 16000], 1)
    np.testing.assert_array_equal(windows[0][6400 + 16000:], 0)
    out = S.fit_length(S.sample_windows(_linear_sample_fn(plan), plan, "default", S.align_audio_only_root), 20)
    assert out.shape == (20, 3)
    np.testing.assert_array_equal(out[:, 0], np.arange(20))


def test_seed_is_previous_window_tail_after_its_own_stitching():
    plan = S.plan_windows(240, S.AUDIO_ONLY_GEOMETRY)
    calls = []
    S.sample_windows(_linear_sample_fn(plan, offset_per_window=5.0, calls=calls), plan, "default", None)
    assert calls[0][1] is None
    # window 1 was blended over its first 8 frames only, so its last 8 frames are untouched window-1 values
    start, end = plan.window_frames(1)
    np.testing.assert_array_equal(calls[2][1][:, 0], np.arange(end - 8, end) + 5.0)
    start, end = plan.window_frames(0)
    np.testing.assert_array_equal(calls[1][1][:, 0], np.arange(end - 8, end))


def test_default_crossfade_is_linear_over_eight_frames():
    weights = S.crossfade_weights(8, "default")
    np.testing.assert_allclose(weights, [8 / 9, 7 / 9, 6 / 9, 5 / 9, 4 / 9, 3 / 9, 2 / 9, 1 / 9])
    np.testing.assert_allclose(S.crossfade_weights(8, "faithful"), [0.5])
    # previous windows all 0, the new one all 1: the overlap ramps 1/9 … 8/9
    plan = S.plan_windows(160, S.AUDIO_ONLY_GEOMETRY)
    out = S.sample_windows(lambda i, seed: np.full((88, 2), float(i), np.float32), plan, "default", None)
    np.testing.assert_allclose(out[72:80, 0], np.arange(1, 9) / 9, atol=1e-6)
    assert np.all(out[:72] == 0) and np.all(out[80:] == 1)
    faithful = S.sample_windows(lambda i, seed: np.full((88, 2), float(i), np.float32), plan, "faithful", None)
    np.testing.assert_allclose(faithful[72:74, 0], [0.5, 1.0])


def test_stitched_frame_k_is_time_k_and_final_window_kept():
    """Window outputs that agree on time: the stitch is seamless and frame k is time k (k / 20 s)."""
    plan = S.plan_windows(230, S.AUDIO_ONLY_GEOMETRY)
    default = S.sample_windows(_linear_sample_fn(plan), plan, "default", S.align_audio_only_root)
    assert len(default) == plan.n_windows * 80 == 240
    np.testing.assert_allclose(default[:, 1], np.arange(240), atol=1e-4)
    # faithful drops the last window's final 8 frames and pads by repeating the last generated frame
    faithful = S.sample_windows(_linear_sample_fn(plan), plan, "faithful", S.align_audio_only_root)
    assert len(faithful) == 232
    padded = S.fit_length(faithful, 240)
    np.testing.assert_array_equal(padded[232:], np.repeat(faithful[-1:], 8, axis=0))
    np.testing.assert_array_equal(S.fit_length(default, 230), default[:230])


def test_root_alignment_removes_per_window_offset():
    plan = S.plan_windows(240, S.AUDIO_ONLY_GEOMETRY)
    out = S.sample_windows(_linear_sample_fn(plan, channels=4, offset_per_window=100.0), plan, "default",
                           S.align_audio_only_root)
    # channels 0:3 (root position) are continuous, the other channel keeps its jump
    np.testing.assert_allclose(np.diff(out[:, 0]), 1.0, atol=1e-4)
    assert np.abs(np.diff(out[:, 3])).max() > 10


def test_assign_by_time_picks_the_most_covering_span_and_none_when_empty():
    plan = S.plan_windows(500, S.HYBRID_GEOMETRY)       # 3 windows of 9 s, starting every 8.6 s
    spans = [(0.0, 2.0, "wave"), (1.0, 8.0, "walk"), (9.0, 12.0, "sit")]
    assert S.assign_by_time(spans, plan) == ["walk", "sit", None]
    assert S.assign_by_time([], plan) == [None, None, None]
    # one annotation far longer than the windows does not run out of texts (the reference's IndexError)
    assert S.assign_by_time([(0.0, 600.0, "talk")], S.plan_windows(3000, S.HYBRID_GEOMETRY)) == ["talk"] * 18


def test_hybrid_faithful_alignment_follows_reference_heuristics():
    new = np.zeros((180, 994), np.float32)
    new[:, 330:333] = 5.0
    new[:, 0:78] = 2.0
    previous = np.zeros((180, 994), np.float32)
    previous[:, 330:333] = np.arange(180, dtype=np.float32)[:, None]
    previous[-8, 0:78] = 1.0
    empty = S.make_hybrid_align_faithful(["", ""])(new, previous, 1)
    np.testing.assert_allclose(empty[0, 330:333], previous[-8, 330:333])
    np.testing.assert_allclose(empty[0, 0:78], previous[-8, 0:78])
    texted = S.make_hybrid_align_faithful(["", "walk"])(new, previous, 1)
    np.testing.assert_allclose(texted[0, 330:333], previous[-1, 330:333])   # aligned to frame 179 only
    np.testing.assert_allclose(texted[0, 0:6], previous[-8, 0:6])
    np.testing.assert_allclose(texted[0, 6:78], 2.0)
    default = S.align_hybrid_root(new, previous, 1)
    np.testing.assert_allclose(default[0, 330:333], previous[-8, 330:333])
    np.testing.assert_allclose(default[:, 0:78], 2.0)


def test_sample_fn_with_wrong_length_is_an_error():
    plan = S.plan_windows(100, S.AUDIO_ONLY_GEOMETRY)
    with pytest.raises(ValueError, match="88"):
        S.sample_windows(lambda i, seed: np.zeros((80, 3), np.float32), plan, "default", None)


# --- the reference's 3-window run (audio_only.small.stitch.pt), small real network (needs models.expgest) --------

def test_faithful_stitch_reproduces_reference_run(fixtures_dir):
    import json

    import torch

    from backend.engines.expgest import decode as D
    from backend.engines.expgest.guidance import ClassifierFreeGuidance
    from backend.engines.expgest.sampler import sample_ddim
    from backend.engines.expgest.streams import AUDIO_ONLY_LAYOUT
    from backend.sampling import DDIMCosineScheduler
    from models.expgest.checkpoint import load_denoiser
    from models.expgest.config import AudioOnlyConfig
    from models.expgest.features import resample_features

    reference = torch.load(fixtures_dir / "audio_only.small.stitch.pt")
    kwargs = json.loads((fixtures_dir / "audio_only.small.json").read_text())["constructor_kwargs"]
    network = load_denoiser(fixtures_dir / "audio_only.small.pt", AudioOnlyConfig.from_official_kwargs(kwargs))
    scheduler = DDIMCosineScheduler()
    seeds = []

    def sample_fn(index, seed):
        if seed is None:
            seed_body, seed_hand = torch.zeros(1, 451, 1, 8), torch.zeros(1, 690, 1, 8)
        else:
            seed_body, seed_hand = AUDIO_ONLY_LAYOUT.split(seed)
        seeds.append((seed_body, seed_hand))
        y = {"audio": resample_features(reference[f"w{index}_wavlm_raw"].float(), 88),
             "style": reference["y_style"], "seed_body": seed_body, "seed_hand": seed_hand,
             "text_latent_body": reference["y_text_latent_body"].float(),
             "text_latent_hand": reference["y_text_latent_hand"].float()}
        x_T = (reference[f"w{index}_xT_body"].float(), reference[f"w{index}_xT_hand"].float())
        return AUDIO_ONLY_LAYOUT.merge(*sample_ddim(ClassifierFreeGuidance(network, y, 3.0), scheduler, x_T))

    max_len = int(reference["max_len"])
    plan = S.plan_windows(max_len, S.AUDIO_ONLY_GEOMETRY, "faithful")
    assert plan.n_windows == int(reference["n_windows"])
    stitched = S.sample_windows(sample_fn, plan, "faithful", S.align_audio_only_root)
    for index, (seed_body, seed_hand) in enumerate(seeds):
        torch.testing.assert_close(seed_body, reference[f"w{index}_seed_body"], atol=1e-4, rtol=0)
        torch.testing.assert_close(seed_hand, reference[f"w{index}_seed_hand"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(stitched, reference["stitched_norm"][0].numpy(), atol=1e-4, rtol=0)
    out = D.smooth(S.fit_length(D.denormalise(stitched, reference["data_mean"].numpy(),
                                              reference["data_std"].numpy()), max_len), "faithful")
    np.testing.assert_allclose(out, reference["out_poses_sg"].numpy(), atol=1e-4, rtol=0)
