"""meta.data: datasets, loaders (every layout), task sampling, Glyphs."""
from __future__ import annotations

import csv
import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from meta.data.splits import shuffled_split
from meta.data import (
    FewShotDataset, Glyphs, MiniImageNet, Omniglot, Task, TaskSampler, load_dataset,
)
from meta.data import glyphs as glyphs_module


# ----------------------------------------------------------------------------- helpers


def _id_dataset(n_classes=7, per=6, size=3):
    """Every image encodes (class, index) in two pixels; the rest is class-specific noise."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_classes, per, 1, size, size), generator=g, dtype=torch.uint8)
    x[:, :, 0, 0, 0] = torch.arange(n_classes, dtype=torch.uint8)[:, None]
    x[:, :, 0, 0, 1] = torch.arange(per, dtype=torch.uint8)[None, :]
    return FewShotDataset(x, name="ids", split="test")


def _ids(x):
    """(n, 1, H, W) float in [0, 1] -> list of (class, index) read back from the pixels."""
    px = (x[:, 0, 0, :2] * 255).round().long()
    return [tuple(p) for p in px.tolist()]


def _area_resize(ink, size):
    """Independent area averaging (adaptive average pooling) of (H, W) bool, in float64."""
    h = ink.shape[0]
    edges = [(int(np.floor(i * h / size)), int(np.ceil((i + 1) * h / size))) for i in range(size)]
    out = np.empty((size, size))
    for i, (r0, r1) in enumerate(edges):
        for j, (c0, c1) in enumerate(edges):
            out[i, j] = ink[r0:r1, c0:c1].mean()
    return np.round(out * 255).astype(np.uint8)


def _omniglot_fixture(root, rng, *, n_alpha=2, n_char=2, n_draw=3, size=21):
    """Official-layout PNGs and the equivalent npz archives; returns the paper arrays."""
    papers = {}
    number = 1
    for split in ("background", "evaluation"):
        paper = rng.random((n_alpha * n_char, n_draw, size, size)) > 0.2   # True = white paper
        papers[split] = paper
        # Alphabet names sort opposite to the official numbers: order must follow the numbers.
        for a in range(n_alpha):
            for c in range(n_char):
                k = a * n_char + c
                folder = root / f"images_{split}" / f"{chr(ord('Z') - a)}_alphabet" / f"character{c + 1:02d}"
                folder.mkdir(parents=True)
                for d in range(n_draw):
                    Image.fromarray(paper[k, d]).save(folder / f"{number + k:04d}_{d + 1:02d}.png")
        number += len(paper)
    return papers


# ----------------------------------------------------------------------------- FewShotDataset


def test_dataset_basics_and_subset():
    ds = _id_dataset()
    assert (len(ds), ds.n_per_class, ds.image_shape) == (7, 6, (1, 3, 3))
    sub = ds.subset([4, 1])
    assert sub.class_names == ["4", "1"]
    torch.testing.assert_close(sub.images, ds.images[[4, 1]])
    with pytest.raises(ValueError, match=r"indices in \[0, 6\].*max 7"):
        ds.subset([7])
    with pytest.raises(ValueError, match="uint8 tensor.*float32"):
        FewShotDataset(torch.zeros(2, 2, 1, 3, 3), name="x", split="y")


def test_with_rotations_is_exact_rot90():
    ds = _id_dataset(n_classes=3, per=2, size=4)
    rot = ds.with_rotations()
    assert len(rot) == 12 and rot.n_per_class == 2
    for a in range(4):
        for c in range(3):
            expected = np.rot90(ds.images[c].numpy(), k=a, axes=(-2, -1))
            np.testing.assert_array_equal(rot.images[a * 3 + c].numpy(), expected)
    assert rot.class_names[3 + 1] == "1@rot90"
    with pytest.raises(ValueError, match="multiples of 90"):
        ds.with_rotations((0, 45))


# ----------------------------------------------------------------------------- Omniglot


def test_omniglot_folders_and_npz_agree_with_area_average(tmp_path, cache_dir, monkeypatch):
    rng = np.random.default_rng(0)
    folders, archives = tmp_path / "folders", tmp_path / "archives"
    papers = _omniglot_fixture(folders, rng)
    archives.mkdir()
    for split, paper in papers.items():
        np.savez_compressed(archives / f"images_{split}.npz", images=paper,
                            labels=np.repeat(np.arange(len(paper))[:, None], paper.shape[1], 1))
    for split, paper in papers.items():
        a = Omniglot(folders, split, image_size=8)
        b = Omniglot(archives, split, image_size=8)
        assert a.images.shape == (4, 3, 1, 8, 8) and a.images.dtype == torch.uint8
        torch.testing.assert_close(a.images, b.images, rtol=0, atol=0)
        expected = np.stack([[_area_resize(~p, 8) for p in ch] for ch in paper])
        np.testing.assert_array_equal(a.images[:, :, 0].numpy(), expected)
        # Ordered by official number although the alphabet folders sort the other way.
        assert a.class_names[0] == "Z_alphabet/character01"
    # MAML splits of a small copy keep the proportions (1100/100/423 of 1623): "*-ordered" in
    # official order, the reference's "train"/"val"/"test" a seeded shuffle of the characters.
    allc = torch.cat([Omniglot(archives, s, image_size=8).images for s in ("background", "evaluation")])
    ordered = [Omniglot(archives, s + "-ordered", image_size=8) for s in ("train", "val", "test")]
    torch.testing.assert_close(torch.cat([d.images for d in ordered]), allc)
    shuffled = [Omniglot(archives, s, image_size=8) for s in ("train", "val", "test")]
    assert [len(d) for d in shuffled] == [len(d) for d in ordered]
    picks = [shuffled_split(8, s) for s in ("train", "val", "test")]
    assert sorted(np.concatenate(picks).tolist()) == list(range(8))
    for d, pick in zip(shuffled, picks):
        torch.testing.assert_close(d.images, allc[torch.from_numpy(pick)])
    # Root from $REPSIM_OMNIGLOT when no argument is given; load_dataset passes root through.
    monkeypatch.setenv("REPSIM_OMNIGLOT", str(folders))
    torch.testing.assert_close(Omniglot(split="evaluation", image_size=8).images,
                               load_dataset("omniglot", "evaluation", root=archives,
                                            image_size=8).images)
    # The second load comes from the cache and is identical.
    torch.testing.assert_close(Omniglot(folders, "background", image_size=8).images,
                               Omniglot(archives, "background", image_size=8).images)


def test_omniglot_errors(tmp_path, cache_dir):
    with pytest.raises(ValueError, match=r"images_background.*images_background\.npz"):
        Omniglot(tmp_path / "nowhere", "background")
    root = tmp_path / "omni"
    _omniglot_fixture(root, np.random.default_rng(1))
    # Incomplete: one character loses a drawing.
    victim = next((root / "images_evaluation").glob("*/character01/*_02.png"))
    victim.unlink()
    with pytest.raises(ValueError, match=r"incomplete Omniglot folder .*images_evaluation.*\[2, 3\]"):
        Omniglot(root, "evaluation")
    # Corrupt PNG: the message names the file.
    bad = next((root / "images_background").glob("*/character02/*_01.png"))
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ValueError, match=f"could not read Omniglot image .*{bad.name}"):
        Omniglot(root, "background")
    with pytest.raises(ValueError, match="split: expected one of"):
        Omniglot(root, "validation")


def test_real_omniglot(omniglot_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("omniglot-cache")
    bg = Omniglot(omniglot_root, "background", cache_dir=cache)
    ev = Omniglot(omniglot_root, "evaluation", cache_dir=cache)
    assert bg.images.shape == (964, 20, 1, 28, 28) and ev.images.shape == (659, 20, 1, 28, 28)
    for ds in (bg, ev):
        x = ds.images.double() / 255
        assert 0.03 < x.mean() < 0.2                       # ink high: mostly dark paper
        assert x[..., 0, 0].mean() < 0.01                  # corners are paper
        assert ds.images.max() == 255
    raw = np.load(omniglot_root / "images_background.npz")["images"][5, 7]
    np.testing.assert_array_equal(bg.images[5, 7, 0].numpy(), _area_resize(~raw, 28))
    for suffix in ("", "-ordered"):
        sizes = [len(Omniglot(omniglot_root, s + suffix, cache_dir=cache)) for s in ("train", "val", "test")]
        assert sizes == [1100, 100, 423]
    test = Omniglot(omniglot_root, "test-ordered", cache_dir=cache)
    torch.testing.assert_close(test.images, ev.images[659 - 423:])      # unseen alphabets only
    # The reference protocol: a character-level shuffle, so test characters come from both
    # official halves (alphabets seen in training).
    names = Omniglot(omniglot_root, "test", cache_dir=cache).class_names
    from_background = sum(int(n[len("character"):]) <= 964 for n in names)
    assert 0.4 * 423 < from_background < 0.8 * 423


# ----------------------------------------------------------------------------- MiniImageNet


def _mini_fixture(tmp_path, n_classes=3, per=4):
    rng = np.random.default_rng(0)
    wnids = [f"n0{i}123456" for i in (3, 1, 2)][:n_classes]         # unsorted on purpose
    jpegs = {}
    for w in wnids:
        for i in range(per):
            base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            im = Image.fromarray(base).resize((84, 84), Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=90)
            jpegs[(w, f"{w}{i:08d}.jpg")] = buf.getvalue()
    decoded = {k: np.asarray(Image.open(io.BytesIO(v)).convert("RGB")) for k, v in jpegs.items()}
    # (a) csv + images/
    a = tmp_path / "a"
    (a / "images").mkdir(parents=True)
    with open(a / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        for (w, name), data in jpegs.items():
            (a / "images" / name).write_bytes(data)
            writer.writerow([name, w])
    # (b) train/<wnid>/*.jpg
    b = tmp_path / "b"
    for (w, name), data in jpegs.items():
        (b / "train" / w).mkdir(parents=True, exist_ok=True)
        (b / "train" / w / name).write_bytes(data)
    # (c) pickle cache
    c = tmp_path / "c"
    c.mkdir()
    keys = list(jpegs)
    class_dict = {w: [i for i, k in enumerate(keys) if k[0] == w] for w in wnids}
    with open(c / "mini-imagenet-cache-train.pkl", "wb") as f:
        pickle.dump({"image_data": np.stack([decoded[k] for k in keys]), "class_dict": class_dict}, f)
    expected = np.stack([np.stack([decoded[k] for k in keys if k[0] == w]) for w in sorted(wnids)])
    return a, b, c, expected, sorted(wnids)


def test_miniimagenet_three_layouts_read_the_same_pixels(tmp_path, cache_dir):
    a, b, c, expected, wnids = _mini_fixture(tmp_path)
    sets = [MiniImageNet(r, "train") for r in (a, b, c)]
    for ds in sets:
        assert ds.images.shape == (3, 4, 3, 84, 84) and ds.images.dtype == torch.uint8
        assert ds.class_names == wnids
        np.testing.assert_array_equal(ds.images.permute(0, 1, 3, 4, 2).numpy(), expected)
    small = [MiniImageNet(r, "train", image_size=42).images for r in (a, b, c)]
    assert small[0].shape == (3, 4, 3, 42, 42)
    torch.testing.assert_close(small[0], small[1], rtol=0, atol=0)
    torch.testing.assert_close(small[0], small[2], rtol=0, atol=0)
    # via load_dataset, and from the cache on a second read
    torch.testing.assert_close(load_dataset("miniimagenet", "train", root=a).images, sets[2].images)


def test_miniimagenet_errors(tmp_path, cache_dir):
    with pytest.raises(ValueError, match=r"mini-imagenet-cache-val\.pkl.*val\.csv.*val/<wnid>"):
        MiniImageNet(tmp_path, "val")
    a, b, _, _, _ = _mini_fixture(tmp_path)
    bad = sorted((b / "train").glob("*/*.jpg"))[5]
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match=f"could not read MiniImageNet image .*{bad.name}"):
        MiniImageNet(b, "train")
    with pytest.raises(ValueError, match="expected root=... or"):
        load_dataset("miniimagenet", "train")


# ----------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("ways,shots,query", [(5, 1, 3), (7, 2, 4), (3, 5, 1)])
def test_task_shapes_labels_and_disjointness(ways, shots, query):
    ds = _id_dataset()
    sampler = TaskSampler(ds, ways, shots, query, seed=3)
    for task in sampler.batch(20):
        assert isinstance(task, Task)
        assert task.support_x.shape == (ways * shots, 1, 3, 3)
        assert task.query_x.shape == (ways * query, 1, 3, 3)
        assert task.support_x.dtype == torch.float32
        assert 0.0 <= float(task.support_x.min()) and float(task.query_x.max()) <= 1.0
        assert torch.equal(torch.bincount(task.support_y, minlength=ways), torch.full((ways,), shots))
        assert torch.equal(torch.bincount(task.query_y, minlength=ways), torch.full((ways,), query))
        s_ids, q_ids = _ids(task.support_x), _ids(task.query_x)
        assert not set(s_ids) & set(q_ids) and len(set(s_ids + q_ids)) == ways * (shots + query)
        # One class per label, different labels different classes.
        label_class = {}
        for (c, _), y in zip(s_ids + q_ids, task.support_y.tolist() + task.query_y.tolist()):
            assert label_class.setdefault(y, c) == c
        assert len(set(label_class.values())) == ways
        # The pixels are the dataset's, converted to [0, 1].
        c, i = s_ids[0]
        torch.testing.assert_close(task.support_x[0], ds.images[c, i].float() / 255)


def test_labels_are_in_random_class_order():
    ds = _id_dataset(n_classes=7)
    firsts = {_ids(t.support_x)[0][0] for t in TaskSampler(ds, 5, 1, 1, seed=0).batch(50)}
    assert len(firsts) == 7                       # label 0 is not always the same class


def test_fixed_tasks_are_reproducible_and_ignore_global_rng():
    ds = _id_dataset()
    torch.manual_seed(0)
    first = TaskSampler.fixed(ds, 5, 1, 2, 10, seed=7)
    torch.manual_seed(123)
    torch.rand(100)
    second = TaskSampler.fixed(ds, 5, 1, 2, 10, seed=7)
    other = TaskSampler.fixed(ds, 5, 1, 2, 10, seed=8)
    for t1, t2 in zip(first, second):
        for a, b in zip(t1, t2):
            assert torch.equal(a, b)
    assert any(not torch.equal(t1.support_x, t3.support_x) for t1, t3 in zip(first, other))


def test_sampler_rotation_augmentation_matches_with_rotations():
    ds = _id_dataset(n_classes=2, per=5, size=3)
    rotated = ds.with_rotations()
    flat = rotated.images.reshape(-1, 1, 3, 3)
    seen_turns = set()
    for task in TaskSampler(ds, 8, 1, 2, seed=0, augment_rotations=True).batch(5):
        x = torch.cat([task.support_x, task.query_x])
        y = torch.cat([task.support_y, task.query_y])
        u8 = (x * 255).round().to(torch.uint8)
        match = [(flat == im).flatten(1).all(1).nonzero().flatten().tolist() for im in u8]
        assert all(len(m) == 1 for m in match)   # every image is one rotated original
        classes = [m[0] // rotated.n_per_class for m in match]
        for label in range(8):
            assert len({c for c, l in zip(classes, y.tolist()) if l == label}) == 1
        seen_turns |= {c // len(ds) for c in classes}
    assert seen_turns == {0, 1, 2, 3}
    # On the fly is the same as sampling the pre-rotated dataset (same class numbering).
    on_the_fly = TaskSampler.fixed(ds, 6, 2, 3, 8, seed=4, augment_rotations=True)
    pre_rotated = TaskSampler.fixed(rotated, 6, 2, 3, 8, seed=4)
    for t1, t2 in zip(on_the_fly, pre_rotated):
        for a, b in zip(t1, t2):
            assert torch.equal(a, b)


def test_sampler_validation_messages():
    ds = _id_dataset(n_classes=7, per=6)
    with pytest.raises(ValueError, match=r"ways: expected at most 7 .*got 8"):
        TaskSampler(ds, 8, 1, 1)
    with pytest.raises(ValueError, match=r"shots \+ query: expected at most 6 .*got 2 \+ 5 = 7"):
        TaskSampler(ds, 5, 2, 5)
    with pytest.raises(ValueError, match=r"shots: expected a positive integer, got 0"):
        TaskSampler(ds, 5, 0, 1)
    with pytest.raises(ValueError, match=r"query: expected a positive integer, got -1"):
        TaskSampler(ds, 5, 1, -1)
    TaskSampler(ds, 28, 1, 1, augment_rotations=True)     # 4 * 7 classes with rotations
    with pytest.raises(ValueError, match="name: expected one of"):
        load_dataset("cifar", "train")


# ----------------------------------------------------------------------------- Glyphs


def test_glyphs_deterministic_by_seed(tmp_path):
    kw = dict(max_classes=4)
    a = Glyphs("background", seed=1, cache_dir=tmp_path / "c1", **kw)
    b = Glyphs("background", seed=1, cache_dir=tmp_path / "c2", **kw)
    c = Glyphs("background", seed=2, cache_dir=tmp_path / "c3", **kw)
    assert a.images.shape == (4, 20, 1, 28, 28) and a.images.dtype == torch.uint8
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes()
    assert a.class_names == c.class_names and not torch.equal(a.images, c.images)
    # From the cache: identical, and the cache file is keyed (one file per seed).
    again = Glyphs("background", seed=1, cache_dir=tmp_path / "c1", **kw)
    assert torch.equal(again.images, a.images)
    assert len(list((tmp_path / "c1").glob("glyphs-*.npz"))) == 1
    # Ink high: the borders are paper, strokes reach full ink.
    x = a.images.double() / 255
    assert x[..., 0, :].mean() < 0.02 and 0.02 < x.mean() < 0.3 and a.images.max() > 200
    # Examples of a class vary (augmentation), classes differ from each other.
    assert (a.images[:, 0] != a.images[:, 1]).any()
    ev = Glyphs("evaluation", seed=1, cache_dir=tmp_path / "c1", **kw)
    assert not set(ev.class_names) & set(a.class_names)


def test_glyph_splits_are_by_script_and_disjoint():
    classes = glyphs_module.glyph_classes()
    by_split = {s: {cp for _, sp, cp in classes if sp == s} for s in ("background", "evaluation")}
    assert not by_split["background"] & by_split["evaluation"]
    scripts = {s: {sc for sc, sp, _ in classes if sp == s} for s in by_split}
    assert not scripts["background"] & scripts["evaluation"]
    assert {"latin", "greek", "cyrillic"} <= scripts["background"]
    assert {"georgian", "hebrew", "arabic"} <= scripts["evaluation"]
    frac = len(by_split["background"]) / len(classes)
    assert 0.55 < frac < 0.7 and len(classes) > 1000
    assert len({cp for *_, cp in classes}) == len(classes)      # one class per character
    assert ord("A") in by_split["background"] and 0x00C0 not in by_split["background"]  # no À
