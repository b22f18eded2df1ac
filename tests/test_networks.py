"""The Conv4 variant and the Glyphs image size as run options (``network``, ``image_size``)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from meta import evaluation
from meta.config import TrainConfig, get_preset
from meta.evaluation import evaluate, load_run
from meta.models import build_model
from meta.training import train


def test_fields_are_validated_with_clear_errors():
    with pytest.raises(ValueError, match="network: expected null or one of"):
        TrainConfig(network="resnet")
    for bad in (8, 56.0, True):
        with pytest.raises(ValueError, match="image_size: expected null or an int >= 16"):
            TrainConfig(image_size=bad)
    assert TrainConfig().resolved_network == "omniglot"
    assert TrainConfig(dataset="miniimagenet").resolved_network == "miniimagenet"
    assert TrainConfig(network="miniimagenet").resolved_network == "miniimagenet"
    assert TrainConfig().dataset_options() == {}
    assert TrainConfig(image_size=56).dataset_options() == {"image_size": 56}


def test_build_model_follows_the_network_field():
    torch.manual_seed(0)
    plain = build_model(TrainConfig(), (1, 28, 28), 5)
    assert (plain.pool, plain.feature_dim, plain.conv1[0].out_channels) == (False, 64, 64)
    assert plain.head.weight.std() > 0.8                    # the Omniglot head: standard normal
    pooled = build_model(TrainConfig(network="miniimagenet", image_size=56), (1, 56, 56), 5)
    # 56 -> 28 -> 14 -> 7 -> 3 after four 2x2 max-pools: 32 filters x 3 x 3
    assert (pooled.pool, pooled.feature_dim, pooled.conv1[0].out_channels) == (True, 288, 32)
    bound = math.sqrt(6 / (288 + 5))                        # Glorot-uniform, MiniImageNet's head
    assert pooled.head.weight.abs().max() <= bound
    assert pooled(torch.rand(4, 1, 56, 56)).shape == (4, 5)


def test_glyphs_miniimagenet_preset_is_the_miniimagenet_protocol_at_a_smaller_budget():
    mini, glyphs = get_preset("miniimagenet-5w1s"), get_preset("glyphs-miniimagenet-quick")
    budget = {"dataset", "network", "image_size", "query", "iterations", "checkpoints",
              "save_every", "val_every", "val_tasks"}
    differ = {f.name for f in dataclasses.fields(TrainConfig)
              if getattr(mini, f.name) != getattr(glyphs, f.name)}
    assert differ <= budget, differ - budget
    assert (glyphs.resolved_network, glyphs.image_size, glyphs.inner_steps, glyphs.inner_lr,
            glyphs.inner_steps_test, glyphs.grad_clip) == ("miniimagenet", 56, 5, 0.01, 10, 10.0)


def test_train_and_evaluate_at_another_image_size(tmp_path):
    small = get_preset("tiny").replace(network="miniimagenet", image_size=32, iterations=2,
                                       checkpoints=(2,), val_every=2, save_every=2)
    run = train(small, tmp_path / "pooled", progress=False)
    cfg, model, _ = load_run(run)
    assert (cfg.image_size, model.pool, model.feature_dim) == (32, True, 8 * 2 * 2)
    plain = train(get_preset("tiny").replace(iterations=2, checkpoints=(2,), val_every=2,
                                             save_every=2), tmp_path / "plain", progress=False)
    evaluation._dataset.cache_clear()
    # one process, two image sizes of the same split: each evaluation gets its own images
    plain_first, pooled = evaluate(plain, tasks=3), evaluate(run, tasks=3)
    plain_again = evaluate(plain, tasks=3)
    evaluation._dataset.cache_clear()
    pooled_alone = evaluate(run, tasks=3)
    evaluation._dataset.cache_clear()
    same = [({**a, "seconds": 0}, {**b, "seconds": 0})
            for a, b in ((pooled, pooled_alone), (plain_first, plain_again))]
    assert all(a == b for a, b in same)


def test_image_size_reaches_every_loader(tmp_path, cache_dir):
    rng = np.random.default_rng(0)
    for split in ("background", "evaluation"):
        paper = rng.random((4, 3, 21, 21)) > 0.2                        # True = white paper
        np.savez_compressed(tmp_path / f"images_{split}.npz", images=paper,
                            labels=np.repeat(np.arange(4)[:, None], 3, 1))
    for size, expected in ((None, 28), (16, 16), (56, 56)):
        cfg = TrainConfig(dataset="omniglot", data_root=str(tmp_path), image_size=size)
        images = cfg.load_split("background").images
        assert images.shape == (4, 3, 1, expected, expected)
