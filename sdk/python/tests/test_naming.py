"""Run paths, run ids, the storage root and media file names (docs/run-format.md, "Names")."""

import re
from pathlib import Path

import pytest

import runicorn as rn
from runicorn.naming import (check_run_id, media_file_name, new_run_id, normalize_run_path,
                             storage_root)


@pytest.mark.parametrize("given, expected", [
    (None, "default"),
    ("", ""),
    ("/", ""),
    ("cv", "cv"),
    ("cv/resnet/ablation-1_b", "cv/resnet/ablation-1_b"),
    ("/cv/resnet/", "cv/resnet"),
    ("cv\\resnet", "cv/resnet"),
    ("a" * 200, "a" * 200),
])
def test_valid_paths(given, expected):
    assert normalize_run_path(given) == expected


@pytest.mark.parametrize("bad", ["a/../b", "..", "a b", "a//b", "x/./y", "caf\u00e9", "a:b",
                                 "a" * 201, "a\x00b", "~/x", "a/b\n"])
def test_invalid_paths_raise(bad):
    with pytest.raises(ValueError):
        normalize_run_path(bad)


def test_init_rejects_bad_path_even_when_lenient(root):
    with pytest.raises(ValueError, match="invalid run path"):
        rn.init(path="../escape", storage=str(root))
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


def test_generated_run_id_format():
    for _ in range(50):
        assert re.match(r"^\d{8}_\d{6}_[0-9a-f]{6}$", new_run_id())


@pytest.mark.parametrize("good", ["abc", "run-1.2_x", "A" * 128, "20261126_122856_0e66f9"])
def test_given_run_ids(good):
    assert check_run_id(good) == good


@pytest.mark.parametrize("bad", ["", ".hidden", "..", "a/b", "a b", "A" * 129, "r\u00e9", "a\\b"])
def test_bad_run_ids(bad, root):
    with pytest.raises(ValueError):
        check_run_id(bad)
    with pytest.raises(ValueError):
        rn.init(storage=str(root), run_id=bad)


def test_storage_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNICORN_DIR", str(tmp_path / "from-env"))
    assert storage_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert storage_root(None) == tmp_path / "from-env"
    monkeypatch.delenv("RUNICORN_DIR")
    assert storage_root(None) == Path(str(tmp_path / "home")) / ".runicorn"


def test_relative_storage_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert storage_root("rel") == tmp_path / "rel"


def test_media_file_names_follow_the_rules():
    name = media_file_name("val/img 1", "PNG", 1795696136.316)
    assert re.match(r"^1795696136316_[0-9a-f]{6}_val_img_1\.png$", name)
    long = media_file_name("k" * 1000, "png", 1.0)
    assert len(long.encode()) <= 255 and re.match(r"^[A-Za-z0-9_.-]+$", long)
    with pytest.raises(ValueError):
        media_file_name("k", "p/ng", 1.0)
