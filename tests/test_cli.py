"""The command line: documented options, run folders, evaluate, compare, actionable errors."""

from __future__ import annotations

import argparse
import json

import pytest

from dgdm_lib.cli import build_parser, format_table, main

TINY = ["--dataset", "beetles", "--train-size", "96", "--val-size", "48", "--test-size", "48",
        "--batch-size", "32", "--epochs", "1", "--no-progress"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["train", "compare", "evaluate"])
def test_help_documents_every_option(command: str) -> None:
    parser = _subparsers(build_parser())[command]
    undocumented = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert undocumented == []
    text = parser.format_help()
    for option in ("--out",) + (("--arch", "--pretrained", "--bn-recalibrate", "--data-root") if command != "evaluate" else ("--run",)):
        assert option in text


def test_unknown_method_is_rejected_with_the_list_of_methods(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--method", "gradcam"])
    assert "invalid choice: 'gradcam'" in capsys.readouterr().err
    assert main(["compare", "--methods", "cam,gradcam"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown method") and "choose from cam, adl" in err and err.count("\n") == 1


def test_missing_pretrained_weights_stop_before_training_with_what_to_do(tmp_path, monkeypatch, capsys) -> None:
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert main(["train", "--arch", "vgg16", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "vgg16-" in err and "--pretrained none" in err and "never downloads" in err
    assert not (tmp_path / "run").exists()


def test_method_hyperparameters_are_kept_as_text_until_typed_per_method() -> None:
    args = build_parser().parse_args(["train", "--set", "delta_h=0.7", "--set", "block_size=adaptive",
                                      "--set", "per_sample=True"])
    assert args.module_args == [("delta_h", "0.7"), ("block_size", "adaptive"), ("per_sample", "True")]


def test_format_table_shows_missing_metrics_as_dashes() -> None:
    table = format_table([{"method": "cam", "top1_clas": 99.0, "gt_known_loc@0.2": 17.25, "train_seconds": 21.0},
                          {"method": "adl", "top1_clas": 97.5}])
    lines = table.splitlines()
    assert lines[0] == "| method | Top-1 Clas | GT-k@0.2 | train s |"
    assert lines[2] == "| cam | 99.0 | 17.2 | 21.0 |" and lines[3] == "| adl | 97.5 | - | - |"


@pytest.mark.slow
def test_train_then_evaluate_writes_a_complete_run_folder(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "data"))
    run = tmp_path / "run"
    assert main(["train", "--arch", "small", "--method", "dgdm", "--seed", "1", "--out", str(run), *TINY]) == 0
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.json", "checkpoint.pt", "cams.png"}
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert config["method"] == "dgdm" and config["seed"] == 1 and config["model"]["arch"] == "small"
    assert len(metrics["train"]["history"]) == 1
    result = metrics["metrics"]
    for key in ("top1_clas", "gt_known_loc@0.2", "gt_known_loc@tau_val", "gt_known_loc@best", "maxboxacc",
                "maxboxacc_v2", "pxap", "head_share", "body_share", "background_share"):
        assert 0.0 <= result[key] <= 100.0, key
    assert result["tau_chosen_on"] == "val"
    assert metrics["protocol"] == {"upsample": "bilinear", "boxes": "edges"}
    assert "| dgdm |" in capsys.readouterr().out

    assert main(["evaluate", "--run", str(run)]) == 0
    again = json.loads((run / "evaluation.json").read_text())["metrics"]
    assert again["gt_known_loc@tau_val"] == result["gt_known_loc@tau_val"]
    assert again["top1_clas"] == result["top1_clas"]


@pytest.mark.slow
def test_compare_trains_each_method_and_prints_one_table(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "data"))
    out = tmp_path / "cmp"
    assert main(["train", "--methods", "cam,sagd", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "| cam |" in printed and "| sagd |" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert [row["method"] for row in summary["rows"]] == ["cam", "sagd"]
    assert (out / "cams.png").is_file() and (out / "summary.md").is_file()
    assert (out / "cam-s0" / "checkpoint.pt").is_file() and (out / "sagd-s0" / "metrics.json").is_file()


def _tiny_cub(root) -> None:
    """A CUB-200-2011 layout with 6 images of 2 classes (4 train, 2 test)."""
    from PIL import Image

    (root / "images" / "001.A").mkdir(parents=True)
    (root / "images" / "002.B").mkdir(parents=True)
    rows = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": [], "bounding_boxes.txt": []}
    for i in range(1, 7):
        label = 1 + i % 2
        path = f"00{label}.{'AB'[label - 1]}/img{i}.jpg"
        Image.new("RGB", (40, 30), (200 * (label == 1), 90, 200 * (label == 2))).save(root / "images" / path)
        rows["images.txt"].append(f"{i} {path}")
        rows["image_class_labels.txt"].append(f"{i} {label}")
        rows["train_test_split.txt"].append(f"{i} {int(i <= 4)}")
        rows["bounding_boxes.txt"].append(f"{i} 5.0 4.0 20.0 15.0")
    for name, lines in rows.items():
        (root / name).write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("1 001.A\n2 002.B\n")


@pytest.mark.slow
def test_train_on_a_cub_layout_chooses_tau_on_images_carved_from_train(tmp_path) -> None:
    _tiny_cub(tmp_path / "CUB_200_2011")
    run = tmp_path / "run"
    code = main(["train", "--dataset", "cub", "--data-root", str(tmp_path / "CUB_200_2011"), "--arch", "small",
                 "--image-size", "32", "--batch-size", "2", "--epochs", "1", "--no-progress", "--out", str(run),
                 "--val-per-class", "1"])
    assert code == 0
    written = json.loads((run / "metrics.json").read_text())
    metrics = written["metrics"]
    assert written["protocol"] == {"upsample": "bicubic", "boxes": "reference"}
    assert metrics["tau_chosen_on"] == "val" and metrics["n_images"] == 2 and metrics["val/n_images"] == 2
    assert "pxap" not in metrics  # CUB boxes only, no masks


@pytest.mark.slow
def test_cub_without_a_validation_carve_chooses_tau_on_test_and_says_so(tmp_path, capsys) -> None:
    _tiny_cub(tmp_path / "CUB_200_2011")
    run = tmp_path / "run"
    code = main(["train", "--dataset", "cub", "--data-root", str(tmp_path / "CUB_200_2011"), "--arch", "small",
                 "--image-size", "32", "--batch-size", "2", "--epochs", "1", "--no-progress", "--out", str(run),
                 "--val-per-class", "0", "--classes", "1"])
    assert code == 0
    assert "tau is chosen on test" in capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())
    assert saved["num_classes"] == 1 and saved["classes"] == 1
    assert json.loads((run / "metrics.json").read_text())["metrics"]["tau_chosen_on"] == "test"


def test_a_missing_dataset_is_reported_without_a_traceback(tmp_path, capsys) -> None:
    code = main(["train", "--dataset", "cub", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "images.txt" in err and "Traceback" not in err


@pytest.mark.slow
def test_lite0_on_a_cub_layout_fine_tunes_with_its_recipe_and_writes_the_run_folder(tmp_path) -> None:
    _tiny_cub(tmp_path / "CUB_200_2011")
    run = tmp_path / "run"
    code = main(["train", "--dataset", "cub", "--data-root", str(tmp_path / "CUB_200_2011"), "--arch", "lite0",
                 "--method", "dgdm", "--image-size", "64", "--epochs", "1", "--seed", "0", "--no-progress",
                 "--val-per-class", "1", "--out", str(run)])
    assert code == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["optimizer"], saved["lr"], saved["model"]["freeze"]) == ("sgd", 0.01, "stage3")
    assert saved["model"]["num_classes"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"]["tau_chosen_on"] == "val" and (run / "cams.png").is_file()


def test_the_data_command_reports_a_missing_archive_in_one_line(tmp_path, capsys) -> None:
    code = main(["data", "cub", "--root", str(tmp_path), "--archive", str(tmp_path / "missing.tgz")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing.tgz" in err
    assert not (tmp_path / "CUB_200_2011").exists()
