import dataclasses

import pytest

from robolearn.core.config import from_dict, load_yaml, save_yaml
from robolearn.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 8
    rates: tuple[float, ...] = (1.0, 2.0)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    lr: float = 1e-3
    steps: int | None = None
    inner: Inner = Inner()


def test_round_trip_through_yaml(tmp_path):
    cfg = Outer(name="drawer", lr=3e-4, steps=10, inner=Inner(width=16, rates=(0.5,)))
    save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(Outer, tmp_path / "c.yaml") == cfg


def test_unknown_key_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'wdith'.*valid keys: rates, width"):
        from_dict(Outer, {"inner": {"wdith": 3}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"config\.steps: expected int, got str"):
        from_dict(Outer, {"steps": "ten"})
    with pytest.raises(ConfigError, match=r"config\.lr: expected float"):
        from_dict(Outer, {"lr": True})


def test_ints_are_accepted_for_floats_and_none_for_optionals():
    cfg = from_dict(Outer, {"lr": 1, "steps": None})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.steps is None


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(Outer, tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(Outer, tmp_path / "bad.yaml")


def test_a_nested_mapping_keeps_the_fields_own_default_instance():
    """Keys a nested mapping leaves out keep the parent field's default instance's values (a
    `--utd 2` once reset finetune's sac.init_temperature 1e-4 to SACConfig's class default)."""
    from robolearn.runs.finetune import FinetuneConfig

    cfg = from_dict(FinetuneConfig, {"task": "drawer", "sac": {"utd": 2}})
    assert cfg.sac.utd == 2 and cfg.sac.init_temperature == 1e-4
    from robolearn.policies.sac.config import SACConfig

    assert SACConfig().init_temperature == 0.1  # the class default it used to fall back to
    cfg = from_dict(FinetuneConfig, {"task": "drawer", "sac": {"actor_optim": {"grad_clip": 0.5}}})
    assert cfg.sac.actor_optim.learning_rate == 1e-4 and cfg.sac.actor_optim.grad_clip == 0.5
    assert cfg.sac.init_temperature == 1e-4
    from robolearn.runs.refine import RefineConfig

    cfg = from_dict(
        RefineConfig, {"task": "drawer", "ppo": {"actor_optim": {"learning_rate": 3e-5}}}
    )
    assert cfg.ppo.actor_optim.grad_clip == 0.5  # PPOConfig's own default, not OptimConfig's
