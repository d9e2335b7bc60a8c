"""The command line's error contract (issue 13): every bad input ends as one ``error:`` line on
stderr and exit code 2, before any training starts, with nothing written or overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dgdm_lib.cli import _build, _config_from_args, build_parser, main

TINY = ["--dataset", "beetles", "--train-size", "96", "--val-size", "48", "--test-size", "48",
        "--batch-size", "32", "--epochs", "1", "--no-progress"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _cfg(argv: list[str], method: str | None = None) -> dict:
    args = build_parser().parse_args(argv)
    method = method or (args.methods[0] if getattr(args, "methods", None) else args.method)
    return _config_from_args(args, method, 0, Path("unused"))


# ---- item 1: typed --set values ------------------------------------------------------------------
@pytest.mark.parametrize("word,expected", [("false", False), ("no", False), ("0", False), ("Off", False),
                                           ("TRUE", True), ("yes", True), ("1", True), ("on", True)])
def test_set_parses_booleans_strictly(word: str, expected: bool) -> None:
    cfg = _cfg(["train", "--method", "dgdm", "--set", f"use_cagd={word}", "--set", f"per_sample={word}"])
    assert cfg.to_json()["module_args"] == [["use_cagd", expected], ["per_sample", expected]]
    model = _build(cfg, 8)
    found = [m for m in model.modules() if type(m).__name__ == "DGDM"]
    assert found and all(m.use_cagd is expected and m.per_sample is expected for m in found)


def test_set_types_ints_floats_and_block_size() -> None:
    cfg = _cfg(["train", "--method", "dgdm", "--set", "delta_h=0.7", "--set", "block_size=adaptive",
                "--set", "beta=3", "--set", "keep_ratio=none"])
    assert cfg.to_json()["module_args"] == [["delta_h", 0.7], ["block_size", "adaptive"], ["beta", 3.0], ["keep_ratio", None]]
    assert _cfg(["train", "--method", "sagd", "--set", "block_size=5"]).to_json()["module_args"] == [["block_size", 5]]


@pytest.mark.parametrize("pair,accepted", [("use_cagd=maybe", "true/false"), ("block_size=2.5", "'adaptive'"),
                                           ("beta=inf", "finite"), ("delta_h=high", "finite")])
def test_a_badly_typed_set_value_is_one_error_line(pair: str, accepted: str, tmp_path, capsys) -> None:
    assert main(["train", "--method", "dgdm", "--set", pair, "--out", str(tmp_path / "r"), *TINY]) == 2
    err = _one_error_line(capsys)
    assert pair in err and accepted in err
    assert not (tmp_path / "r").exists()


# ---- item 4: an existing run folder is not overwritten silently -----------------------------------
@pytest.mark.parametrize("name", ["config.json", "checkpoint.pt", "metrics.json"])
def test_train_refuses_a_folder_that_holds_a_run(name: str, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_text("earlier run")
    assert main(["train", "--out", str(run), *TINY]) == 2
    err = _one_error_line(capsys)
    assert str(run) in err and name in err and "--overwrite" in err and "--resume" in err
    assert [p.name for p in run.iterdir()] == [name] and (run / name).read_text() == "earlier run"


def test_compare_refuses_when_one_method_folder_holds_a_run(tmp_path, capsys) -> None:
    (tmp_path / "cmp" / "dgdm-s0").mkdir(parents=True)
    (tmp_path / "cmp" / "dgdm-s0" / "metrics.json").write_text("{}")
    assert main(["compare", "--methods", "cam,dgdm", "--out", str(tmp_path / "cmp"), *TINY]) == 2
    assert "dgdm-s0" in _one_error_line(capsys)
    assert not (tmp_path / "cmp" / "cam-s0").exists()


def test_resume_and_overwrite_exclude_each_other(tmp_path, capsys) -> None:
    assert main(["train", "--resume", "--overwrite", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "--resume and --overwrite" in _one_error_line(capsys)


@pytest.mark.slow
def test_overwrite_replaces_an_earlier_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "data"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("earlier run")
    assert main(["train", "--overwrite", "--no-eval", "--out", str(run), *TINY]) == 0
    assert json.loads((run / "config.json").read_text())["method"] == "cam"


# ---- item 12: --set goes to the chosen methods that take it ----------------------------------------
def test_compare_gives_each_set_key_only_to_the_methods_that_take_it() -> None:
    argv = ["compare", "--methods", "cam,adl,dgdm", "--set", "delta_h=0.7", "--set", "gamma=0.9"]
    assert _cfg(argv, "cam").to_json()["module_args"] == []
    assert _cfg(argv, "adl").to_json()["module_args"] == [["gamma", 0.9]]
    assert _cfg(argv, "dgdm").to_json()["module_args"] == [["delta_h", 0.7]]


@pytest.mark.parametrize("argv", [["train", "--method", "cam", "--set", "delta_h=0.7"],
                                  ["compare", "--methods", "cam,adl", "--set", "delta_h=0.7"],
                                  ["train", "--methods", "adl,sagd", "--set", "nonsense=1"]])
def test_a_set_key_no_chosen_method_takes_is_one_error_line(argv: list[str], tmp_path, capsys) -> None:
    assert main([*argv, "--out", str(tmp_path / "r"), *TINY]) == 2
    err = _one_error_line(capsys)
    assert "no chosen method" in err and argv[-1].split("=")[0] in err
    assert not (tmp_path / "r").exists()


# ---- item 5 (and 11's numbers): counts, sizes, rates, seeds, combinations ------------------------
@pytest.mark.parametrize("extra,words", [
    (["--epochs", "0"], "--epochs 0"), (["--epochs", "-2"], "--epochs -2"),
    (["--train-size", "0"], "--train-size 0"), (["--train-size", "-5"], "--train-size -5"),
    (["--test-size", "0"], "--test-size 0"), (["--val-size", "-1"], "--val-size -1"),
    (["--threads", "0"], "--threads 0"), (["--image-size", "0"], "--image-size 0"),
    (["--batch-size", "0"], "--batch-size 0"), (["--eval-batch-size", "-3"], "--eval-batch-size -3"),
    (["--lr", "0"], "--lr 0"), (["--lr=-1e-3"], "--lr -0.001"), (["--lr", "nan"], "--lr nan"),
    (["--lr", "inf"], "--lr inf"), (["--tau", "1.5"], "--tau 1.5"), (["--tau=-0.1"], "--tau -0.1"),
    (["--seed", "-1"], "seeds must be >= 0"), (["--workers", "-1"], "--workers -1"),
    (["--method", "dgdm", "--positions", ","], "--positions"),
    (["--method", "dgdm", "--methods", "cam,adl"], "--method dgdm and --methods"),
    (["--seeds", "0,1"], "--seeds goes with --methods"),
    (["--methods", "cam,adl", "--seeds", "0,-1"], "seeds must be >= 0"),
    (["--method", "dgdm", "--set", "beta=inf"], "beta=inf"),
    (["--method", "dgdm", "--set", "block_size=1000"], "larger than the"),
    (["--method", "sagd", "--set", "delta_h=2"], "delta_h"),
    (["--method", "adl", "--set", "gamma=-1"], "gamma"),
])
def test_a_bad_option_is_one_error_line_before_training(extra: list[str], words: str, tmp_path, capsys) -> None:
    run = tmp_path / "r"
    assert main(["train", "--out", str(run), *TINY, *extra]) == 2
    err = _one_error_line(capsys)
    assert words in err
    assert not run.exists()


def test_block_size_is_checked_against_the_map_it_is_applied_to(tmp_path, capsys) -> None:
    assert main(["train", "--method", "dgdm", "--set", "block_size=1000", "--out", str(tmp_path / "r"), *TINY]) == 2
    err = _one_error_line(capsys)
    assert "block_size=1000" in err and "feature map at" in err and "'adaptive'" in err


# ---- item 2: --resume refuses a checkpoint of another run -------------------------------------------
@pytest.mark.slow
def test_resume_refuses_another_method_or_other_data_naming_the_field(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "data"))
    run = tmp_path / "run"
    assert main(["train", "--method", "cam", "--no-eval", "--out", str(run), *TINY]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    for extra, words in ((["--method", "dgdm"], "method was 'cam' in that run, now 'dgdm'"),
                         (["--pattern-contrast", "0.12"], "pattern_contrast was 0.09 in that run, now 0.12"),
                         (["--arch", "vgg16", "--pretrained", "none"], "arch was 'small'")):
        assert main(["train", "--resume", "--no-eval", "--out", str(run), *TINY, *extra]) == 2
        err = _one_error_line(capsys)
        assert words in err and "checkpoint.pt" in err
    assert (run / "checkpoint.pt").read_bytes() == before
    assert main(["train", "--resume", "--no-eval", "--out", str(run), *TINY]) == 0


# ---- item 11: device, out folder, evaluate ---------------------------------------------------------
def test_an_unavailable_device_is_one_error_line(tmp_path, capsys, monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--device", "cuda", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "--device cuda" in _one_error_line(capsys)
    assert main(["train", "--device", "gpu7", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "--device gpu7" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_an_impossible_out_folder_is_one_error_line(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert main(["train", "--out", str(tmp_path / "file" / "run"), *TINY]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys)


def test_a_read_only_out_folder_is_one_error_line(tmp_path, capsys, monkeypatch) -> None:
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert main(["train", "--out", str(tmp_path / "ro" / "run"), *TINY]) == 2
    assert "cannot write in" in _one_error_line(capsys)
    assert not (tmp_path / "ro").exists()


def test_a_class_choice_the_dataset_refuses_is_one_error_line(tmp_path, capsys) -> None:
    from test_cli import _tiny_cub

    _tiny_cub(tmp_path / "CUB_200_2011")
    assert main(["train", "--dataset", "cub", "--data-root", str(tmp_path / "CUB_200_2011"), "--classes", "9",
                 "--image-size", "32", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "classes=9" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


# ---- item 9: problems of the val/test splits are found before training ---------------------------
def test_a_missing_test_image_stops_before_training(tmp_path, capsys) -> None:
    from test_cli import _tiny_cub

    root = tmp_path / "CUB_200_2011"
    _tiny_cub(root)
    (root / "images" / "001.A" / "img6.jpg").unlink()  # image 6: a test image (ids 5, 6 are test)
    run = tmp_path / "r"
    assert main(["train", "--dataset", "cub", "--data-root", str(root), "--image-size", "32", "--batch-size", "2",
                 "--epochs", "1", "--no-progress", "--val-per-class", "1", "--out", str(run)]) == 2
    err = _one_error_line(capsys)
    assert "img6.jpg" in err and "file not found" in err
    assert not run.exists()


def _tiny_wsol(tmp_path):
    from PIL import Image

    images, meta = tmp_path / "images", tmp_path / "meta"
    for split, names in (("train", ["a.png", "b.png"]), ("val", ["c.png"]), ("test", ["d.png"])):
        (meta / split).mkdir(parents=True)
        for name in names:
            images.mkdir(exist_ok=True)
            Image.new("RGB", (32, 32), (90, 100, 200)).save(images / name)
        (meta / split / "image_ids.txt").write_text("".join(f"{n}\n" for n in names))
        (meta / split / "class_labels.txt").write_text("".join(f"{n},{i % 2}\n" for i, n in enumerate(names)))
        if split != "train":
            (meta / split / "localization.txt").write_text("".join(f"{n},2,2,20,20\n" for n in names))
    return images, meta


def test_a_wsol_test_split_without_boxes_or_with_an_unknown_label_stops_before_training(tmp_path, capsys) -> None:
    images, meta = _tiny_wsol(tmp_path)
    argv = ["train", "--dataset", "wsol", "--data-root", str(images), "--metadata-root", str(meta),
            "--image-size", "32", "--batch-size", "2", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")]
    (meta / "test" / "class_labels.txt").write_text("d.png,5\n")
    assert main(argv) == 2
    assert "label 5 is not a class of the training split" in _one_error_line(capsys)
    (meta / "test" / "class_labels.txt").write_text("d.png,0\n")
    (meta / "test" / "localization.txt").unlink()
    assert main(argv) == 2
    assert "localization.txt" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


# ---- item 10: data errors raised in DataLoader workers keep their one-line message ----------------
@pytest.mark.slow
def test_a_broken_test_image_read_by_a_worker_is_one_error_line(tmp_path, capsys) -> None:
    from test_cli import _tiny_cub

    root = tmp_path / "CUB_200_2011"
    _tiny_cub(root)
    (root / "images" / "001.A" / "img6.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    code = main(["train", "--dataset", "cub", "--data-root", str(root), "--image-size", "32", "--batch-size", "2",
                 "--epochs", "1", "--no-progress", "--val-per-class", "1", "--workers", "1",
                 "--out", str(tmp_path / "r")])
    assert code == 2
    err = _one_error_line(capsys)
    assert err.startswith("error: cannot read image 6 (001.A/img6.jpg)") and "DataLoader" not in err


# ---- the library refuses the same values -----------------------------------------------------------
def test_modules_refuse_non_finite_hyperparameters() -> None:
    import math

    from dgdm_lib.modules import CAGD, DGDM

    with pytest.raises(ValueError, match="beta must be a finite number"):
        CAGD(beta=math.inf)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        DGDM(alpha=math.nan)


@pytest.mark.parametrize("kwargs,words", [({"epochs": 0}, "epochs"), ({"epochs": 1, "lr": 0.0}, "lr"),
                                          ({"epochs": 1, "lr": float("nan")}, "lr"),
                                          ({"epochs": 1, "momentum": -1.0}, "momentum"),
                                          ({"epochs": 1, "seed": -3}, "seed")])
def test_train_refuses_bad_arguments_before_touching_the_model(kwargs: dict, words: str) -> None:
    from dgdm_lib.models import build_model
    from dgdm_lib.training import train

    with pytest.raises(ValueError, match=words):
        train(build_model("small", "cam"), [], progress=False, **kwargs)
