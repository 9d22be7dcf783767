"""The vision, keypoint and pose stand-in trainers (harness.pretrain.vision / keypoints / pose).

Each kind trains on a tiny synthetic training split, saves ``model.safetensors`` +
``config.json``, and the file loads strictly into a freshly built part; the objective was
really learnt: frozen features probed linearly (ridge, fitted on training frames) predict the
*dev* split's keypoints better than a randomly initialised part's with the same probe, and the
pose stand-in's dev error is below a random backbone whose output heads are fitted by least
squares. A file that does not match the part fails with a clear error.
"""

from __future__ import annotations

import json

import pytest
import torch

from baselines.common.weights import load_weights
from harness.data import load_dataset
from harness.data.synthetic.poses import POSE_FORMATS
from harness.method import STANDIN_KINDS, StandIn
from harness.pretrain import keypoints as kp_mod
from harness.pretrain import pose as pose_mod
from harness.pretrain import vision
from harness.pretrain.parts import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    StandInConfigError,
    build_part,
    sample_frames,
    sample_windows,
    standardise,
)
from harness.pretrain.probe import frame_features, linear_probe, ridge_fit, ridge_predict
from harness.pretrain.types import PretrainData, Recipe

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
RESNET = {"module": "baselines.common.resnet:ResNet",
          "kwargs": {"layers": [1, 1, 1, 1], "block": "bottleneck", "base_width": 4},
          "stream": "frames", "resolution": 16, "normalize": IMAGENET, "call": "forward"}
VIT = {"module": "baselines.common.vit:VisionTransformer",
       "kwargs": {"img_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2,
                  "init_values": 1.0},
       "stream": "frames", "resolution": 16, "normalize": IMAGENET, "call": "forward_features",
       "readouts": ["cls"]}
KEYPOINT = {"module": "baselines.common.encoders:KeypointEncoder",
            "kwargs": {"dim": 32, "joints": 75, "hidden": 64, "frame_stride": 2}}
VID2POSE = {"module": "baselines.signx.latent:Vid2Pose",
            "kwargs": {"formats": dict(POSE_FORMATS), "image_size": 16, "patch_size": 8,
                       "dim": 32, "depth": 1, "heads": 2, "temporal_layers": 1},
            "resolution": 16, "input": "clip", "targets": "poses"}


@pytest.fixture(scope="module")
def splits():
    train = load_dataset("synthetic", "train", size=48, resolution=16, lang="en", seed=0)
    dev = load_dataset("synthetic", "dev", size=16, resolution=16, lang="en", seed=0)
    return PretrainData(samples=train, lang="en", texts=[], resolution=16), dev


def _train(trainer, kind, config, splits, tmp_path_factory, recipe):
    out = tmp_path_factory.mktemp(kind)
    standin = StandIn(field=f"{kind}_init", kind=kind, config=config, paper="test")
    return out, trainer(standin, splits[0], out, recipe=recipe, progress=False)


@pytest.fixture(scope="module")
def resnet(splits, tmp_path_factory):
    recipe = Recipe(epochs=15, lr=1e-2, batch_size=32,
                    options={"frames": 384, "frames_per_video": 8})
    return _train(vision.train_resnet, "resnet", RESNET, splits, tmp_path_factory, recipe)


@pytest.fixture(scope="module")
def vit(splits, tmp_path_factory):
    recipe = Recipe(epochs=20, lr=2e-3, batch_size=32,
                    options={"frames": 384, "frames_per_video": 8})
    return _train(vision.train_vit, "vit", VIT, splits, tmp_path_factory, recipe)


def _fresh_loaded(config, out):
    part = build_part(config)
    load_weights(part, out / WEIGHTS_FILE, strict=True)
    return part


def _frame_probe(config, out, splits, readout_name):
    """Dev R² of the keypoints' x, y from frozen features: (pretrained, random init)."""
    train, dev = splits[0].samples, splits[1]
    tr, dv = sample_frames(train, "frames", 384, 8, seed=5), sample_frames(dev, "frames", 192,
                                                                           12, seed=6)
    targets = [vision._targets({"target": "keypoints"}, f, 0.5) for f in (tr, dv)]
    mean, std = standardise(*targets[0])
    (ytr, s_tr), (ydv, s_dv) = [((y - mean) / std, s) for y, s in targets]
    r2 = []
    for pretrained in (True, False):
        torch.manual_seed(1)
        part = _fresh_loaded(config, out) if pretrained else build_part(config)
        feats = [frame_features(part, config, torch.from_numpy(f["images"]), readout_name)
                 for f in (tr, dv)]
        r2.append(linear_probe(feats[0], ytr[:, :150], s_tr[:, :150], feats[1], ydv[:, :150],
                               s_dv[:, :150], alpha=0.01)["r2"])
    return r2


def test_trainers_cover_their_kinds():
    kinds = {**vision.TRAINERS, **kp_mod.TRAINERS, **pose_mod.TRAINERS}
    assert set(kinds) == {"resnet", "vit", "keypoint", "pose"} <= set(STANDIN_KINDS)
    assert set(vision.RECIPES) | set(kp_mod.RECIPES) | set(pose_mod.RECIPES) == set(kinds)


def test_resnet_saves_its_state_dict_and_learns_keypoints(resnet, splits):
    out, report = resnet
    assert sorted(p.name for p in out.iterdir()) == sorted([WEIGHTS_FILE, CONFIG_FILE])
    assert report.epoch_losses[-1] < 0.8 * report.epoch_losses[0]
    part = _fresh_loaded(RESNET, out)  # strict: exactly the part's keys, timm names, no head
    assert "layer1.0.conv1.weight" in part.state_dict() and "fc.weight" not in part.state_dict()
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert meta["config"]["kwargs"] == RESNET["kwargs"] and meta["kind"] == "resnet"
    assert meta["pretrained_cfg"]["mean"] == IMAGENET["mean"]
    assert report.parameters == sum(p.numel() for p in part.parameters())
    pretrained, random = _frame_probe(RESNET, out, splits, "pool")
    print("dev keypoint R² (pretrained, random):", pretrained, random)
    assert pretrained > random + 0.1, (pretrained, random)


def test_vit_cls_learns_keypoints(vit, splits):
    out, report = vit
    assert report.epoch_losses[-1] < 0.8 * report.epoch_losses[0]
    pretrained, random = _frame_probe(VIT, out, splits, "cls")
    print("dev keypoint R² (pretrained, random):", pretrained, random)
    assert pretrained > random + 0.1, (pretrained, random)


def test_lip_encoder_trains_on_mouth_shape(splits, tmp_path):
    config = {**VIT, "stream": "lips", "resolution": 8, "readouts": ["cls", "patches"],
              "kwargs": {**VIT["kwargs"], "img_size": 8, "patch_size": 4, "embed_dim": 16}}
    recipe = Recipe(epochs=3, lr=2e-3, batch_size=32, options={"frames": 64, "ssl_weight": 0.5})
    report = vision.train_vit(StandIn("lip_encoder_init", "vit", config), splits[0], tmp_path,
                              recipe=recipe, progress=False)
    assert report.extra["target"] == "mouth" and report.extra["target_dim"] == 16
    _fresh_loaded(config, tmp_path)


def test_a_file_that_does_not_match_the_part_fails_clearly(resnet):
    out, _ = resnet
    wider = {**RESNET, "kwargs": {**RESNET["kwargs"], "base_width": 8}}
    with pytest.raises(ValueError, match="shape mismatch loading into ResNet"):
        load_weights(build_part(wider), out / WEIGHTS_FILE, strict=True)
    with pytest.raises(ValueError, match=r"does not match VisionTransformer.*missing key"):
        load_weights(build_part(VIT), out / WEIGHTS_FILE, strict=True)


def test_config_errors_name_the_key(splits, tmp_path):
    recipe = Recipe(epochs=1, lr=1e-3, batch_size=8)
    bad = [({**RESNET, "colour": 1}, "unknown config key"),
           ({**RESNET, "module": "baselines.common.resnet:Nope"}, "cannot be imported"),
           ({**RESNET, "resolution": None}, "'resolution'"),
           ({**RESNET, "target": "gloss"}, "'target' must be one of")]
    for config, message in bad:
        with pytest.raises(StandInConfigError, match=message):
            vision.train_resnet(StandIn("resnet_init", "resnet", config), splits[0], tmp_path,
                                recipe=recipe, progress=False)
    with pytest.raises(ValueError, match="unknown recipe option"):
        vision.train_resnet(StandIn("resnet_init", "resnet", RESNET), splits[0], tmp_path,
                            recipe=Recipe(epochs=1, lr=1e-3, batch_size=8,
                                          options={"frame": 3}), progress=False)


def _keypoint_probe(config, out, splits):
    """Dev R² of the hidden frames' keypoints from frozen features of the masked windows."""
    def prep(samples, seed):
        kp, mask = kp_mod.windows_tensor(sample_windows(samples, ("keypoints",), 48, 16, seed), 16)
        y, seen = kp_mod.window_targets(kp, mask, 0.5)
        inp, hidden = kp_mod.hide(kp, mask, 0.3, 4, 0.0, torch.Generator().manual_seed(seed))
        return inp, mask, y, seen * hidden[..., :1].float()

    tr, dv = prep(splits[0].samples, 3), prep(splits[1], 4)
    mean, std = standardise(tr[2].flatten(0, 1), tr[3].flatten(0, 1))
    r2 = []
    for pretrained in (True, False):
        torch.manual_seed(1)
        part = (_fresh_loaded(config, out) if pretrained else build_part(config)).eval()
        rows = []
        for inp, mask, y, w in (tr, dv):
            with torch.no_grad():
                f = kp_mod.sequence_features(part, "forward", inp, mask)
            s = 16 // f.shape[1]
            rows.append((f.flatten(0, 1), ((y - mean) / std).reshape(-1, s * y.shape[-1]),
                         w.reshape(-1, s * y.shape[-1])))
        (ftr, ytr, wtr), (fdv, ydv, wdv) = rows
        r2.append(linear_probe(ftr, ytr, wtr, fdv, ydv, wdv, alpha=0.01)["r2"])
    return r2


def test_keypoint_encoder_reconstructs_hidden_frames(splits, tmp_path):
    recipe = Recipe(epochs=30, lr=2e-3, batch_size=16, options={"clips": 96, "clip_len": 16})
    report = kp_mod.train_keypoint(StandIn("keypoint_init", "keypoint", KEYPOINT), splits[0],
                                   tmp_path, recipe=recipe, progress=False)
    assert report.extra["stride"] == 4 and report.epoch_losses[-1] < report.epoch_losses[0]
    pretrained, random = _keypoint_probe(KEYPOINT, tmp_path, splits)
    print("dev hidden-frame R² (pretrained, random):", pretrained, random)
    assert pretrained > random + 0.05, (pretrained, random)


def test_training_is_deterministic(splits, tmp_path):
    recipe = Recipe(epochs=1, lr=2e-3, batch_size=8, options={"clips": 16, "clip_len": 16})
    standin = StandIn("keypoint_init", "keypoint", KEYPOINT)
    runs = [kp_mod.train_keypoint(standin, splits[0], tmp_path / str(i), recipe=recipe,
                                  progress=False) for i in range(2)]
    assert runs[0].step_losses == runs[1].step_losses
    assert (tmp_path / "0" / WEIGHTS_FILE).read_bytes() == (tmp_path / "1" / WEIGHTS_FILE
                                                            ).read_bytes()


def test_pose_estimator_beats_a_random_backbone_with_fitted_heads(splits, tmp_path):
    recipe = Recipe(epochs=25, lr=5e-3, batch_size=8, options={"clips": 144, "clip_len": 8})
    report = pose_mod.train_pose(StandIn("vid2pose_init", "pose", VID2POSE), splits[0],
                                 tmp_path, recipe=recipe, progress=False)
    assert report.extra["targets"] == sorted(POSE_FORMATS)
    opts = {"clips": 48, "clip_len": 8}
    data = [pose_mod._data(VID2POSE, PretrainData(samples=s, lang="en", texts=[]), opts, seed,
                           "x") for s, seed in ((splits[0].samples, 7), (splits[1], 8))]
    ok = [pose_mod.detected(k, 0.5, 0.5) & m for _, m, _, k in data]
    (x_tr, m_tr, p_tr, _), (x_dv, m_dv, p_dv, _) = data
    errors = []
    for pretrained in (True, False):
        torch.manual_seed(1)
        part = (_fresh_loaded(VID2POSE, tmp_path) if pretrained
                else build_part(VID2POSE)).eval()
        with torch.no_grad():
            (_, v_tr), (pred, v_dv) = part(x_tr, m_tr), part(x_dv, m_dv)
        err = []
        for name in POSE_FORMATS:
            scale = p_tr[name][ok[0]].std(0).clamp_min(1e-4)
            p = pred[name][ok[1]] if pretrained else ridge_predict(
                ridge_fit(v_tr[ok[0]], p_tr[name][ok[0]], 1e-2), v_dv[ok[1]]).float()
            err.append((((p - p_dv[name][ok[1]]) / scale) ** 2).mean())
        errors.append(float(torch.stack(err).mean()))
    mean_only = float(torch.stack([(((p_tr[n][ok[0]].mean(0) - p_dv[n][ok[1]])
                                     / p_tr[n][ok[0]].std(0).clamp_min(1e-4)) ** 2).mean()
                                   for n in POSE_FORMATS]).mean())
    print("pose dev error (pretrained, random + fitted heads, train mean):", errors, mean_only)
    assert errors[0] < 0.9 * min(errors[1], mean_only), (errors, mean_only)


def test_frame_pose_estimator_outputs_keypoints(splits, tmp_path):
    config = {**RESNET, "kwargs": {**RESNET["kwargs"], "num_classes": 150}}
    recipe = Recipe(epochs=2, lr=3e-3, batch_size=16, options={"frames": 64})
    report = pose_mod.train_pose(StandIn("pose_init", "pose", config), splits[0], tmp_path,
                                 recipe=recipe, progress=False)
    assert report.extra["targets"] == ["keypoints"] and report.extra["input"] == "frame"
    assert "fc.weight" in _fresh_loaded(config, tmp_path).state_dict()  # the estimator's head


HALF = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
#: SignBind-LLM's tiny-profile encoders, as docs/pretrain.md's example configs (HFA's
#: ``vit_init`` and SignFuse's ``resnet_init`` go through the same strict ``load_weights``; their
#: methods take ~10 s to build here, so they are not built in this module)
_METHOD_VITS = {
    ("signbind", "frame_encoder_init"): ({"img_size": 32, "patch_size": 8, "embed_dim": 64,
                                          "depth": 2, "num_heads": 2, "init_values": 0.1},
                                         "frames", 32, HALF),
    ("signbind", "lip_encoder_init"): ({"img_size": 8, "patch_size": 4, "embed_dim": 32,
                                        "depth": 1, "num_heads": 2, "init_values": 0.1},
                                       "lips", 8, HALF),
}


@pytest.mark.parametrize("method, field", sorted(_METHOD_VITS))
def test_methods_load_the_stand_in_through_their_option(method, field, splits, tmp_path):
    import baselines

    kwargs, stream, resolution, norm = _METHOD_VITS[(method, field)]
    config = {"module": VIT["module"], "kwargs": kwargs, "stream": stream,
              "resolution": resolution, "normalize": norm, "call": "forward_features"}
    vision.train_vit(StandIn(field, "vit", config), splits[0], tmp_path, progress=False,
                     recipe=Recipe(epochs=1, lr=1e-3, batch_size=16, options={"frames": 32}))
    model = baselines.get_method(method, "tiny", **{field: str(tmp_path)})
    part = {"frame_encoder_init": "frame_encoder", "lip_encoder_init": "lip_encoder"}[field]
    own = getattr(model, part).state_dict()
    saved = build_part(config)
    load_weights(saved, tmp_path / WEIGHTS_FILE, strict=True)
    assert all(torch.equal(v, own[k]) for k, v in saved.state_dict().items())
