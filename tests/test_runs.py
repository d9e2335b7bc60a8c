"""A run's configuration (dgdm_lib.runs.RunConfig): what config.json holds and reads back."""

import json

import pytest

from dgdm_lib.cli import _config_from_args, build_parser
from dgdm_lib.runs import RunConfig
from dgdm_lib.training import Recipe


def test_a_configuration_survives_config_json_and_stays_hashable(tmp_path) -> None:
    args = build_parser().parse_args(["train", "--method", "dgdm", "--set", "delta_h=0.7", "--positions",
                                      "block4,block5", "--lr", "0.003", "--data-root", str(tmp_path)])
    cfg = _config_from_args(args, "dgdm", 2, tmp_path / "run")
    again = RunConfig.from_mapping(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg and hash(again) == hash(cfg)
    assert cfg.module_args == (("delta_h", 0.7),) and cfg.positions == ("block4", "block5")
    assert cfg.recipe == Recipe(lr=0.003) and (cfg.seed, cfg.out) == (2, str(tmp_path / "run"))


def test_an_older_config_json_reads_with_defaults_and_ignores_what_is_not_a_setting() -> None:
    old = {"method": "adl", "arch": "small", "module_args": [["gamma", 0.9]], "dataset": "beetles",
           "num_classes": 8, "model": {"arch": "small"}, "environment": {"torch": "x"}, "world_size": 1}
    cfg = RunConfig.from_mapping(old)
    assert cfg.method == "adl" and cfg.module_args == (("gamma", 0.9),)
    assert (cfg.upsample, cfg.boxes) == ("bilinear", "edges") and cfg.recipe == Recipe()  # "auto" on beetles


def test_the_command_line_resolves_each_architectures_optimiser_defaults() -> None:
    parse = build_parser().parse_args
    lite0 = _config_from_args(parse(["train", "--arch", "lite0", "--dataset", "cub"]), "cam", 0, "x")
    small = _config_from_args(parse(["train"]), "cam", 0, "x")
    assert (lite0.recipe.optimizer, lite0.recipe.lr, lite0.upsample, lite0.boxes) == ("sgd", 0.01, "bicubic", "reference")
    assert (small.recipe.optimizer, small.recipe.lr, small.upsample, small.boxes) == ("adamw", 2e-3, "bilinear", "edges")


def test_run_configs_lists_the_runs_of_a_compare_command_in_their_folders(tmp_path) -> None:
    from dgdm_lib.cli import run_configs

    configs = run_configs(["compare", "--methods", "cam,dgdm", "--seeds", "0,1", "--out", str(tmp_path),
                           "--dataset", "cub", "--data-root", str(tmp_path)])
    assert [(c.method, c.seed) for c in configs] == [("cam", 0), ("dgdm", 0), ("cam", 1), ("dgdm", 1)]
    assert configs[1].out == str(tmp_path / "dgdm-s0") and configs[1].boxes == "reference"
    assert RunConfig(dataset="cub").upsample == "bicubic" and RunConfig().upsample == "bilinear"
    with pytest.raises(ValueError, match="exact pixel boxes"):
        RunConfig(boxes="reference")  # the beetles carry no annotation to convert


def test_a_recipe_field_given_to_replace_changes_the_recipe() -> None:
    cfg = RunConfig().replace(lr=0.05, batch_size=16, workers=2)
    assert cfg.recipe == Recipe(lr=0.05, batch_size=16) and cfg.workers == 2
    assert RunConfig.from_mapping(cfg.to_json()) == cfg
