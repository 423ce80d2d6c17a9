"""Data sets read from files (image folder, npz, CSV), the data folder they live in, the fixed
split every run and stage honours, and the message of every bad input.

Fixtures are written into ``tmp_path``, which ``QML_ROBUSTNESS_DATA`` makes the data folder.
"""
import os
import shutil

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from helpers.config import load_config, parse_config
from helpers.data import configured_dataset, load_dataset, run_seeds, run_split, split_arrays
from helpers.data.files import DATA_ENV, data_folder
from helpers.params import ConfigError
from helpers.store.layout import Layout
from helpers.store.provenance import StaleResultsError

# Every attack that works with two classes, so configs of two-class fixtures pass the config check.
TWO_CLASS_ATTACK = {"methods": ["fgsm", "pgd"], "escalation": [], "transfer_from": None}


@pytest.fixture
def data(tmp_path, monkeypatch):
    """The data folder (``tmp_path/data``), set through the environment as a user would."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv(DATA_ENV, str(folder))
    return folder


def png(path, pixels, mode=None):
    """Write ``pixels`` (uint8, (H, W) or (H, W, 3)) as a PNG at ``path``; return the array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(pixels, dtype=np.uint8)
    Image.fromarray(pixels, mode).save(path)
    return pixels


def image_folder(root, classes=("cat", "dog"), per_class=3, split=False, size=(6, 6), seed=0):
    """Random greyscale PNGs: ``root/<class>/i.png`` or, with ``split``, under train/ and test/
    (``per_class`` in train/, two in test/). Returns {path: pixels}."""
    rng, written = np.random.default_rng(seed), {}
    parts = [("train", per_class), ("test", 2)] if split else [("", per_class)]
    for part, n in parts:
        for name in classes:
            for i in range(n):
                path = root / part / name / f"{i}.png"
                written[path] = png(path, rng.integers(0, 256, size))
    return written


def dataset_config(name, options, **section):
    return {"dataset": {"name": name, "classes": None, "options": options, **section},
            "models": {"mlp": {"type": "mlp", "hidden": [4]}}, "attack": TWO_CLASS_ATTACK,
            "n_runs": 2, "workers": 1, "device": "cpu", "training": {"epochs": 1, "batch_size": 8}}


# ---------------------------------------------------------------- image folders

def test_image_folder_loads_pixels_in_unit_range_with_classes_from_folder_names(data):
    written = image_folder(data / "pets", classes=("dog", "cat", "bird"))
    ds = load_dataset("image_folder", path="pets")
    assert ds.X.shape == (9, 1, 6, 6) and ds.X.dtype == np.float32 and ds.is_test is None
    assert ds.class_names == ("bird", "cat", "dog")  # sorted folder names, numbered 0..k-1
    for i, (path, pixels) in enumerate(sorted(written.items(), key=lambda kv: (kv[0].parent.name, kv[0].name))):
        assert ds.class_names[ds.y[i]] == path.parent.name
        assert np.array_equal(ds.X[i, 0], pixels / np.float32(255))  # 0..255 scaled into [0, 1]
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0


def test_image_folder_numbers_integer_folder_names_in_numeric_order(data):
    image_folder(data / "digits", classes=("10", "2", "0"))
    assert load_dataset("image_folder", path="digits").class_names == ("0", "2", "10")
    ds = load_dataset("image_folder", [2, 1], path="digits")  # classes pick by number, relabelled in this order
    assert ds.class_names == ("10", "2") and list(np.bincount(ds.y)) == [3, 3]


def test_image_folder_converts_to_rgb_or_greyscale(data):
    red = np.zeros((5, 7, 3), np.uint8)
    red[..., 0] = 255
    for name in ("a", "b"):
        for i in range(2):
            png(data / "colour" / name / f"{i}.png", red)
    rgb = load_dataset("image_folder", path="colour", mode="RGB")
    assert rgb.X.shape == (4, 3, 5, 7)
    assert (rgb.X[:, 0] == 1).all() and (rgb.X[:, 1:] == 0).all()
    grey = load_dataset("image_folder", path="colour")  # mode L: Pillow's luma, 299/1000 of red
    assert grey.X.shape == (4, 1, 5, 7) and np.allclose(grey.X, 76 / 255)


def test_image_folder_resizes_or_crops_images_of_mixed_sizes(data):
    for name, shape in (("a", (8, 10)), ("b", (6, 6))):
        for i in range(2):
            png(data / "mixed" / name / f"{i}.png", np.full(shape, 100 + i))
    resized = load_dataset("image_folder", path="mixed", size=[4, 4])
    assert resized.X.shape == (4, 1, 4, 4)
    assert np.allclose(resized.X[:, 0, 0, 0], np.array([100, 101, 100, 101]) / 255)  # a constant image stays so
    gradient = np.arange(8 * 10).reshape(8, 10) % 256
    png(data / "crop" / "a" / "0.png", gradient)
    png(data / "crop" / "a" / "1.png", gradient)
    png(data / "crop" / "b" / "0.png", gradient)
    png(data / "crop" / "b" / "1.png", gradient)
    cropped = load_dataset("image_folder", path="crop", size=[4, 6], fit="crop")
    assert np.array_equal(cropped.X[0, 0], gradient[2:6, 2:8].astype(np.float32) / 255)  # the centre, pixel for pixel


def test_input_shape_is_known_from_options_or_one_image(data):
    image_folder(data / "pets", size=(5, 7))
    cfg = parse_config(dataset_config("image_folder", {"path": "pets"}, split="random"))
    assert cfg.dataset.input_shape == (1, 5, 7) and cfg.dataset.classes == (0, 1)
    cfg = parse_config(dataset_config("image_folder", {"path": "pets", "mode": "RGB", "size": [3, 4]}, split="random"))
    assert cfg.dataset.input_shape == (3, 3, 4)


# ---------------------------------------------------------------- the fixed split

def test_train_and_test_subfolders_fix_the_split_of_every_run(data):
    written = image_folder(data / "published", split=True, per_class=4)
    cfg = parse_config(dataset_config("image_folder", {"path": "published"}, split="fixed"))
    ds = configured_dataset(cfg.dataset)
    assert ds.X.shape == (12, 1, 6, 6) and ds.is_test.sum() == 4
    test_files = sorted(p for p in written if p.parts[-3] == "test")
    expected = np.stack([written[p] / np.float32(255) for p in test_files])
    for seeds in (run_seeds(0, 2), run_seeds(99, 5)):  # any base seed, any run
        for run in range(len(seeds)):
            train_idx, test_idx = run_split(ds, cfg.dataset, run, seeds)
            assert np.array_equal(np.sort(np.concatenate([train_idx, test_idx])), np.arange(12))
            assert not ds.is_test[train_idx].any() and ds.is_test[test_idx].all()
            x_train, _, x_test, _ = split_arrays(ds, train_idx, test_idx)
            assert {tuple(x.ravel()) for x in x_test} == {tuple(x.ravel()) for x in expected}


def test_test_subset_is_stratified_and_the_same_in_every_run(data, tmp_path):
    image_folder(data / "published", classes=("a", "b", "c"), split=True)  # 2 test images per class
    cfg = parse_config(dataset_config("image_folder", {"path": "published"}, split="fixed", test_subset=3))
    ds = configured_dataset(cfg.dataset)
    seeds = run_seeds(cfg.seed, cfg.n_runs)
    splits = [run_split(ds, cfg.dataset, run, seeds) for run in range(cfg.n_runs)]
    _, test_idx = splits[0]
    assert len(test_idx) == 3 and sorted(ds.y[test_idx]) == [0, 1, 2] and ds.is_test[test_idx].all()
    assert all(np.array_equal(s[1], test_idx) for s in splits)
    # The subset depends on the base seed alone, not on how many runs there are.
    more = parse_config({**dataset_config("image_folder", {"path": "published"}, split="fixed", test_subset=3),
                         "n_runs": 5})
    assert np.array_equal(run_split(ds, more.dataset, 4, run_seeds(more.seed, 5))[1], test_idx)


def test_every_stage_reads_the_fixed_split_the_train_stage_used(data, tmp_path):
    """The train stage saves each run's split; the attack and interpret stages read it back
    (``load_test_split``): both runs see exactly the images of test/, and the models table
    counts them."""
    from helpers.stages import train
    from helpers.stages.inputs import load_test_split

    written = image_folder(data / "published", split=True)
    config = tmp_path / "fixed.yaml"
    config.write_text(yaml.safe_dump(dataset_config("image_folder", {"path": "published"}, split="fixed")))
    cfg = load_config(config, results_root=tmp_path / "results")
    _, models = train.run(cfg, log=lambda message: None)
    assert list(models["n_test"]) == [4, 4] and list(models["n_train"]) == [6, 6]
    expected = {tuple((pixels / np.float32(255)).ravel()) for p, pixels in written.items() if p.parts[-3] == "test"}
    for run in range(cfg.n_runs):
        x_test, y_test = load_test_split(cfg, run, "cpu")
        assert {tuple(x.ravel().tolist()) for x in x_test.numpy()} == expected
        assert torch.equal(torch.bincount(y_test), torch.tensor([2, 2]))
    # An image added after training shifts the listing the saved split indexes: refused, nothing deleted.
    png(data / "published" / "test" / "cat" / "0a.png", np.zeros((6, 6), np.uint8))
    with pytest.raises(StaleResultsError, match="data files of 'image_folder' changed since run 0 was trained"):
        load_test_split(cfg, 0, "cpu")
    assert Layout(cfg.results_dir).split(0).is_file()


def test_edited_data_changes_the_key_of_the_models_trained_on_it(data):
    from helpers.stages.train import train_key

    written = image_folder(data / "pets")
    cfg = parse_config(dataset_config("image_folder", {"path": "pets"}, split="random"))
    before = train_key(cfg, "mlp", 0, 1)
    assert train_key(cfg, "mlp", 0, 1) == before
    path = next(iter(written))
    png(path, 255 - written[path])
    later(path)
    edited = train_key(cfg, "mlp", 0, 1)
    assert edited != before
    path.rename(data / "pets" / "dog" / "moved.png")  # the same bytes, another class
    assert train_key(cfg, "mlp", 0, 1) != edited
    (data / "t.csv").write_text("f,y\n0.1,0\n0.2,0\n0.3,1\n0.4,1\n")
    cfg = parse_config(dataset_config("csv", {"path": "t.csv", "label_column": "y"}, split="random"))
    before = train_key(cfg, "mlp", 0, 1)
    (data / "t.csv").write_text("f,y\n0.1,0\n0.2,0\n0.3,1\n0.5,1\n")
    later(data / "t.csv")
    assert train_key(cfg, "mlp", 0, 1) != before


def later(path):
    """Date ``path`` a second later: an edit made within one tick of the file system's clock
    (a few ms) can keep size and modification time, which the file caches key on."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_the_split_key_must_match_the_data(data):
    image_folder(data / "published", split=True)
    image_folder(data / "flat")
    with pytest.raises(ConfigError, match=r"dataset.split: kfold, but data set 'image_folder' comes with its own "
                                          r"train/test split .* set dataset.split: fixed"):
        parse_config(dataset_config("image_folder", {"path": "published"}))
    with pytest.raises(ConfigError, match=r"dataset.split: fixed needs a data set that comes with its own "
                                          r"train/test split; 'image_folder' with these options does not"):
        parse_config(dataset_config("image_folder", {"path": "flat"}, split="fixed"))
    with pytest.raises(ConfigError, match="dataset.split: fixed needs .* 'digits'"):
        parse_config({"dataset": {"name": "digits", "split": "fixed"}})
    with pytest.raises(ConfigError, match=r"dataset.test_subset does not apply to dataset.split: kfold"):
        parse_config({"dataset": {"name": "digits", "test_subset": 10}})


# ---------------------------------------------------------------- npz and CSV

def test_npz_images_tables_and_fixed_split(data):
    rng = np.random.default_rng(0)
    np.savez(data / "images.npz", x=rng.random((6, 4, 5)), y=np.array([0, 0, 0, 1, 1, 1]))
    images = load_dataset("npz", path="images.npz")
    assert images.X.shape == (6, 1, 4, 5) and images.X.dtype == np.float32 and images.scaling is None
    np.savez(data / "split.npz", x=rng.random((4, 3)), y=[5, 7, 5, 7], x_test=rng.random((2, 3)), y_test=[7, 5])
    cfg = parse_config(dataset_config("npz", {"path": "split.npz"}, split="fixed"))
    assert cfg.dataset.classes == (5, 7) and cfg.dataset.input_shape == (3,)
    ds = configured_dataset(cfg.dataset)
    assert list(ds.y) == [0, 1, 0, 1, 1, 0] and list(ds.is_test) == [False] * 4 + [True] * 2


def test_npz_minmax_scales_on_the_training_split(data):
    x, x_test = np.array([[10.0, -1.0], [20.0, 1.0], [30.0, 0.0]]), np.array([[40.0, 0.5], [15.0, -3.0]])
    np.savez(data / "raw.npz", x=x, y=[0, 1, 0], x_test=x_test, y_test=[1, 0])
    with pytest.raises(ConfigError, match=r"raw.npz: values lie in \[-3, 40\], not in \[0, 1\].*scaling: minmax"):
        parse_config(dataset_config("npz", {"path": "raw.npz"}, split="fixed"))
    cfg = parse_config(dataset_config("npz", {"path": "raw.npz", "scaling": "minmax"}, split="fixed"))
    ds = configured_dataset(cfg.dataset)
    x_train, _, x_te, _ = split_arrays(ds, *run_split(ds, cfg.dataset, 0, run_seeds(0, 1)))
    assert np.allclose(x_train, [[0, 0], [0.5, 1], [1, 0.5]])
    assert np.allclose(x_te, [[1, 0.75], [0.25, 0]])  # the training range, clipped


def test_csv_features_scaled_on_the_training_split_and_a_split_column(data):
    (data / "table.csv").write_text("a,label,b,part\n0,1,10,train\n2,0,30,train\n4,1,20,test\n1,0,10,train\n"
                                    "3,1,50, Test\n")
    cfg = parse_config(dataset_config("csv", {"path": "table.csv", "label_column": "label", "split_column": "part"},
                                      split="fixed"))
    assert cfg.dataset.input_shape == (2,) and cfg.dataset.classes == (0, 1)
    ds = configured_dataset(cfg.dataset)
    assert ds.scaling == "minmax" and list(ds.is_test) == [False, False, True, False, True]
    x_train, y_train, x_test, _ = split_arrays(ds, *run_split(ds, cfg.dataset, 0, run_seeds(0, 1)))
    assert np.allclose(x_train, [[0, 0], [1, 1], [0.5, 0]]) and list(y_train) == [1, 0, 0]
    assert np.allclose(x_test, [[1, 0.5], [1, 1]])
    only_a = load_dataset("csv", path="table.csv", label_column="label", features=["a"])
    assert only_a.X.shape == (5, 1)


# ---------------------------------------------------------------- every bad input names the problem

def bad(config_or_call, pattern):
    """The config check (a config mapping) or the call refuses with a message matching ``pattern``."""
    with pytest.raises((ConfigError, ValueError), match=pattern):
        config_or_call() if callable(config_or_call) else parse_config(config_or_call)


def test_image_folder_errors_name_the_folder_or_file(data):
    (data / "empty").mkdir()
    bad(dataset_config("image_folder", {"path": "empty"}), r"dataset.options.path: image folder .*empty is empty")
    image_folder(data / "hollow")
    (data / "hollow" / "fish").mkdir()
    bad(dataset_config("image_folder", {"path": "hollow"}), r"class folder .*hollow/fish holds no images")
    image_folder(data / "lonely", per_class=2)
    for extra in ("a", "b"):
        png(data / "lonely" / "owl" / f"{extra}.png", np.zeros((6, 6)))
    (data / "lonely" / "owl" / "b.png").unlink()
    bad(dataset_config("image_folder", {"path": "lonely"}), r"class folder .*lonely/owl holds one image only")
    image_folder(data / "mixed")
    png(data / "mixed" / "cat" / "9.png", np.zeros((8, 6)))
    bad(dataset_config("image_folder", {"path": "mixed"}),
        r"images differ in size: .*mixed/cat/0.png is 6x6, .*mixed/cat/9.png is 8x6 .*set dataset.options.size")
    bad(dataset_config("image_folder", {"path": "mixed", "size": [7, 7], "fit": "crop"}),
        r"image .*0.png is 6x6, smaller than size \[7, 7\]")
    image_folder(data / "junk")
    (data / "junk" / "dog" / "notes.txt").write_text("not an image")
    bad(dataset_config("image_folder", {"path": "junk"}), r"class folder .*junk/dog holds \['notes.txt'\], which are not")
    image_folder(data / "half", split=True)
    os.rename(data / "half" / "test", data / "half" / "other")
    bad(dataset_config("image_folder", {"path": "half"}), r"has \['train'\] beside \['other'\]")
    image_folder(data / "uneven", split=True)
    os.rename(data / "uneven" / "test" / "dog", data / "uneven" / "test" / "wolf")
    bad(dataset_config("image_folder", {"path": "uneven"}, split="fixed"),
        r"only in train/: \['dog'\], only in test/: \['wolf'\]")


def test_unreadable_images_are_named(data):
    image_folder(data / "broken")
    (data / "broken" / "cat" / "7.png").write_bytes(b"these bytes are no PNG")
    bad(dataset_config("image_folder", {"path": "broken"}), r"image .*broken/cat/7.png cannot be read")
    image_folder(data / "truncated")
    path = data / "truncated" / "dog" / "1.png"
    png(path, np.random.default_rng(1).integers(0, 256, (6, 6)))
    path.write_bytes(path.read_bytes()[:-30])  # the header reads, the pixels do not
    bad(lambda: load_dataset("image_folder", path="truncated"), r"image .*truncated/dog/1.png cannot be read")


def test_labels_that_are_not_integers_are_refused(data):
    np.savez(data / "fractions.npz", x=np.zeros((4, 2)), y=[0, 0.5, 1, 1])
    bad(dataset_config("npz", {"path": "fractions.npz"}), r"labels 'y' must be integers; found 1 that are not, e\.g\. 0\.5")
    np.savez(data / "names.npz", x=np.zeros((4, 2)), y=np.array(["cat", "cat", "dog", "dog"]))
    bad(dataset_config("npz", {"path": "names.npz"}), r"labels 'y' must be integers; found 4 .*'cat', 'dog'")
    (data / "names.csv").write_text("f,label\n0.1,cat\n0.2,dog\n0.3,cat\n0.4,dog\n")
    bad(dataset_config("csv", {"path": "names.csv", "label_column": "label"}),
        r"labels in column 'label' must be integers; found 4 .*'cat', 'dog'")


def test_table_errors_name_the_column_or_array(data):
    (data / "t.csv").write_text("f,g,y\n0.1,a,0\n0.2,b,1\n0.3,c,0\n0.4,,1\n")
    bad(dataset_config("csv", {"path": "t.csv", "label_column": "target"}),
        r"t.csv has no column label_column 'target'; its columns: \['f', 'g', 'y'\]")
    bad(dataset_config("csv", {"path": "t.csv"}), r"dataset.options.label_column: the option label_column is needed")
    bad(dataset_config("csv", {"path": "t.csv", "label_column": "y"}), r"feature columns \['g'\] hold values that are not numbers")
    bad(dataset_config("csv", {"path": "t.csv", "label_column": "y", "features": ["f", "g"]}),
        r"feature columns \['g'\] hold values that are not numbers \(e.g. 'a' in 'g'\)")
    (data / "gaps.csv").write_text("f,y,part\n0.1,0,train\n,1,validation\n0.3,0,test\n0.4,1,train\n")
    bad(dataset_config("csv", {"path": "gaps.csv", "label_column": "y", "features": ["f"]}),
        r"feature columns have missing values \(column: count\) \{'f': 1\}")
    (data / "parts.csv").write_text("f,y,part\n0.1,0,train\n0.2,1,validation\n0.3,0,test\n0.4,1,train\n")
    bad(dataset_config("csv", {"path": "parts.csv", "label_column": "y", "split_column": "part"}, split="fixed"),
        r"split column 'part' must hold \['train', 'test'\] in every row, found \['validation'\]")
    bad(dataset_config("csv", {"path": "parts.csv", "label_column": "y", "features": ["f", "y"]}),
        r"features must not include the label column 'y'")
    (data / "one.csv").write_text("f,y\n0.1,0\n0.2,0\n0.3,1\n")
    bad(dataset_config("csv", {"path": "one.csv", "label_column": "y"}), r"label \[1\] has one example only")
    np.savez(data / "partial.npz", x=np.zeros((4, 2)), y=[0, 0, 1, 1], x_test=np.zeros((2, 2)))
    bad(dataset_config("npz", {"path": "partial.npz"}), r"for a fixed split both 'x_test' and 'y_test'")
    np.savez(data / "short.npz", x=np.zeros((4, 2)), y=[0, 1, 1])
    bad(dataset_config("npz", {"path": "short.npz"}), r"'y' must hold one label per row of 'x'")


def test_paths_outside_the_data_folder_and_missing_files_are_refused(data, tmp_path):
    image_folder(tmp_path / "elsewhere")
    np.savez(tmp_path / "outside.npz", x=np.zeros((4, 2)), y=[0, 0, 1, 1])
    (data / "link").symlink_to(tmp_path / "elsewhere")
    folder = str(data_folder())
    for options in ({"path": "../elsewhere"}, {"path": str(tmp_path / "elsewhere")}, {"path": "link"}):
        bad(dataset_config("image_folder", options), rf"dataset.options.path: '{options['path']}' resolves to "
                                                      rf".*elsewhere, outside the data folder {folder}")
    bad(dataset_config("npz", {"path": "../outside.npz"}), r"outside the data folder")
    bad(dataset_config("npz", {"path": "absent.npz"}),
        rf"dataset.options.path: file 'absent.npz' does not exist in the data folder {folder}")
    bad(dataset_config("image_folder", {"path": "absent"}), r"folder 'absent' does not exist in the data folder")
    bad(dataset_config("image_folder", {}), r"dataset.options.path: the option path is needed")
    # A class folder inside the data set's folder that is a link leading out of the data folder.
    image_folder(data / "pets")
    shutil.rmtree(data / "pets" / "cat")
    (data / "pets" / "cat").symlink_to(tmp_path / "elsewhere" / "cat")
    bad(dataset_config("image_folder", {"path": "pets"}), r"pets/cat is a link to .*elsewhere/cat, outside the data folder")


def test_the_data_folder_is_the_repository_data_unless_the_environment_says(monkeypatch):
    from helpers.data.base import PROJECT_ROOT

    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_folder() == (PROJECT_ROOT / "data").resolve()
    monkeypatch.setenv(DATA_ENV, "shared/sets")
    assert data_folder() == (PROJECT_ROOT / "shared" / "sets").resolve()


def test_the_example_config_of_the_data_docs_is_valid(data):
    """docs/data.md's example, on a published-style folder of 6x6 PNGs in three classes."""
    from helpers.store.files import project_root

    text = (project_root() / "docs" / "data.md").read_text()
    example = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    image_folder(data / "shapes", classes=("circle", "square", "triangle"), split=True)
    cfg = parse_config(example)
    assert cfg.dataset.classes == (0, 1, 2) and cfg.dataset.input_shape == (1, 8, 8)
    assert cfg.dataset.class_names == ("circle", "square", "triangle")
    ds = configured_dataset(cfg.dataset)
    assert ds.class_names == ("circle", "square", "triangle") and ds.X.shape == (15, 1, 8, 8)
