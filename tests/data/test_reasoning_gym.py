"""reasoning-gym generators as a data source, scored by their own ``score_answer``."""

import sys

import pytest

from rlx import config as rlx_config
from rlx.rewards import get_reward
from rlx.rewards.reasoning_gym import extract_final_answer, reasoning_gym_score
from rlx.rewards.testing import make_batch

rg = pytest.importorskip("reasoning_gym", reason="pip install 'rlx[tasks]'")

from rlx.data.reasoning_gym import (ReasoningGymSource, demonstration, generator_names,  # noqa: E402
                                    held_out_question)

ARITH = dict(min_terms=2, max_terms=3, min_digits=1, max_digits=1, operators=["+", "-"],
             allow_parentheses=False)
# Generators of different kinds: numbers, words, a partial-credit scorer, multi-line grids.
GENERATORS = ["basic_arithmetic", "spell_backward", "word_sequence_reversal", "gcd",
              "rotate_matrix", "countdown"]


def meta_of(ex):
  """The reward metadata of an example, as the RL loop builds it."""
  return {"answer": ex.answer, "task": ex.task, **ex.info}


def test_source_yields_the_generators_items_as_examples():
  src = ReasoningGymSource("basic_arithmetic", size=50, seed=3, config=ARITH)
  ds = rg.create_dataset("basic_arithmetic", size=50, seed=3, **ARITH)
  assert len(src) == 50
  for i in (0, 7, 49):
    ex, entry = src[i], ds[i]
    assert ex.prompt == entry["question"] and ex.answer == entry["answer"]
    assert ex.solution == f"Answer: {entry['answer']}"
    assert ex.task == "reasoning_gym/basic_arithmetic" and ex.pair_id.endswith(f"/3/{i}")
    assert ex.info["reasoning_gym"]["entry"] == entry
    assert ex.info["reasoning_gym"]["config"] == ARITH
  assert src[5] == ReasoningGymSource("basic_arithmetic", size=50, seed=3, config=ARITH)[5]
  with pytest.raises(IndexError):
    src[50]
  # A held-out source starts where the training items end: no item is shared.
  held = ReasoningGymSource("basic_arithmetic", size=10, seed=3, config=ARITH, start=50)
  assert held[0].info["reasoning_gym"]["entry"] == rg.create_dataset(
      "basic_arithmetic", size=60, seed=3, **ARITH)[50]


@pytest.mark.parametrize("name", GENERATORS)
def test_reward_equals_the_generators_score_answer(name):
  src = ReasoningGymSource(name, size=6, seed=0)
  ds = src.dataset
  reward = get_reward("reasoning_gym")
  for i in range(len(src)):
    ex = src[i]
    entry = ex.info["reasoning_gym"]["entry"]
    wrong = "zzz" if ex.answer != "zzz" else "yyy"
    partial = ex.answer[: max(1, len(ex.answer) // 2)]
    completions = [ex.solution, f"I think.\n<answer>{ex.answer}</answer>", f"Answer: {wrong}",
                   f"The answer is {partial}", "", ex.answer + " and more"]
    batch = make_batch([ex.prompt] * len(completions), completions,
                       metadata=[meta_of(ex)] * len(completions))
    scores = reward(batch).scores
    expected = [ds.score_answer(extract_final_answer(c), entry) for c in completions]
    assert list(scores) == pytest.approx(expected)
    if ex.answer:
      assert scores[0] == 1.0 and scores[1] == 1.0  # the demonstration gets full marks
      assert scores[2] == ds.score_answer(wrong, entry)


def test_every_generators_gold_demonstration_scores_one():
  for name in generator_names():
    if name == "composite":  # needs a list of generators to mix
      continue
    ex = ReasoningGymSource(name, size=1, seed=1)[0]
    if ex.answer:  # generators whose puzzles have many solutions give no gold answer
      assert reasoning_gym_score(ex.solution, meta_of(ex))[0] == 1.0, name


def test_binary_drops_partial_credit():
  ex = ReasoningGymSource("basic_arithmetic", size=1, seed=0, config=ARITH)[0]
  near = f"Answer: 1{ex.answer}"  # the default score_answer credits a containing answer
  assert 0 < reasoning_gym_score(near, meta_of(ex))[0] < 1
  assert reasoning_gym_score(near, meta_of(ex), binary=True)[0] == 0.0


@pytest.mark.parametrize("text, want", [
    ("Answer: 42", "42"),
    ("work\nAnswer: 1\nmore\nAnswer: -7 \n", "-7"),
    ("so the answer is 12.", "12"),
    ("\\boxed{\\frac{1}{2}} then Answer: 3", "\\frac{1}{2}"),
    ("<answer>\n1 2\n3 4\n</answer>", "1 2\n3 4"),
    ("thinking\n\nfinal line  \n\n", "final line"),
    ("Final answer: cat", "cat"),
    ("", None),
])
def test_extract_final_answer(text, want):
  assert extract_final_answer(text) == want


def test_multi_line_answers_are_tagged():
  assert demonstration("7") == "Answer: 7"
  assert demonstration("1 2\n3 4") == "<answer>\n1 2\n3 4\n</answer>"
  assert extract_final_answer(demonstration("1 2\n3 4")) == "1 2\n3 4"


def rg_config(**data):
  cfg = rlx_config.default_config()
  rlx_config.synthetic_defaults(cfg)
  cfg.data.source = "reasoning_gym"
  cfg.data.task = "basic_arithmetic"
  cfg.data.task_config = dict(ARITH)
  cfg.rewards.name = "reasoning_gym"
  for k, v in data.items():
    setattr(cfg.data, k, v)
  return cfg


def test_config_builds_training_and_held_out_sources():
  from rlx.runtime.sources import library_sources
  run = rlx_config.validate(rg_config(train_size=100, eval_size=8))
  assert run.data.task_config == ARITH
  train, held = library_sources(run)
  assert (len(train), len(held)) == (100, 8)
  # Split by question: no held-out question is a training question, though the generator's
  # small question space repeats questions across items.
  assert not {ex.prompt for ex in held} & {ex.prompt for ex in train}
  assert all(held_out_question(ex.prompt) for ex in held)
  assert not any(held_out_question(ex.prompt) for ex in train)


def test_splits_by_question_hold_out_a_tenth_of_the_question_space():
  every = ReasoningGymSource("basic_arithmetic", size=4000, seed=0, config=ARITH)
  questions = {every[i].prompt for i in range(len(every))}
  assert 0.05 < sum(map(held_out_question, questions)) / len(questions) < 0.2
  train = ReasoningGymSource("basic_arithmetic", size=4000, seed=0, config=ARITH, split="train")
  assert not any(held_out_question(train[i].prompt) for i in range(len(train)))


@pytest.mark.parametrize("changes, message", [
    (dict(task="basic_arithmetc"), r"config\.data\.task='basic_arithmetc': unknown reasoning-gym "
     r"generator; allowed values: .*'basic_arithmetic'"),
    (dict(task_config={"max_termz": 2}), r"config\.data\.task_config=.*basic_arithmetic: unknown "
     r"config field\(s\) \['max_termz'\]; fields: min_terms, max_terms"),
    (dict(task_config={"min_terms": 3, "max_terms": 2}),
     r"config\.data\.task_config=.*invalid config.*max_terms must be >= min_terms"),
    (dict(source="reasoning_gyms"), r"config\.data\.source='reasoning_gyms': allowed values: "
     r".*'reasoning_gym', 'humaneval', 'mbpp'"),
])
def test_bad_reasoning_gym_config_fails_with_field_and_fix(changes, message):
  with pytest.raises(rlx_config.ConfigError, match=message):
    rlx_config.validate(rg_config(**changes))


def test_reward_and_source_must_match():
  cfg = rg_config()
  cfg.rewards.name = "task"
  with pytest.raises(rlx_config.ConfigError, match=r"rewards\.name='task'.*'reasoning_gym' for "
                     r"data\.source='reasoning_gym'"):
    rlx_config.validate(cfg)
  cfg = rlx_config.default_config()
  cfg.rewards.name = "reasoning_gym"
  with pytest.raises(rlx_config.ConfigError, match=r"rewards\.name='reasoning_gym': .*scores "
                     r"examples of data\.source='reasoning_gym' \(is 'task'\)"):
    rlx_config.validate(cfg)


def test_missing_library_names_the_install_command(monkeypatch):
  from rlx.rewards import reasoning_gym as rg_reward
  monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # `import reasoning_gym` fails
  with pytest.raises(ImportError, match=r"pip install 'rlx\[tasks\]'"):
    ReasoningGymSource("basic_arithmetic", size=1, seed=0)
  with pytest.raises(rlx_config.ConfigError, match=r"config\.data\.source='reasoning_gym': .*"
                     r"pip install 'rlx\[tasks\]'"):
    rlx_config.validate(rg_config())
  rg_reward._dataset.cache_clear()
  spec = {"name": "basic_arithmetic", "config": {}, "seed": 0, "size": 1, "entry": {}}
  with pytest.raises(ImportError, match=r"pip install 'rlx\[tasks\]'"):
    reasoning_gym_score("Answer: 1", {"reasoning_gym": spec})


# The learning test's schedule: configs/reasoning_gym.py as shipped (600 SFT steps on the gold
# answers) but 100 of its 300 GRPO steps; held-out accuracy after the warm start and at the end.
SHORT = {"num_steps": 100, "eval.every_steps": 0, "eval.num_examples": 256,
         "checkpoint.every_steps": 100, "logging.stdout": False, "logging.tensorboard": False}


@pytest.mark.slow
def test_reasoning_gym_config_raises_held_out_accuracy(tmp_path):
  """A reasoning-gym generator rlx does not ship (basic_arithmetic) trains from its config: SFT
  on the gold answers, then GRPO on the generator's own score_answer raises held-out accuracy."""
  from rlx.runtime.run import train
  from tests.test_configs import load
  cfg = load("reasoning_gym")
  for key, value in SHORT.items():
    section, field = key.split(".") if "." in key else (None, key)
    setattr(getattr(cfg, section) if section else cfg, field, value)
  run = rlx_config.validate(cfg)
  out = train(run, str(tmp_path / "rg"))
  first, last = out["evals"][0], out["evals"][-1]  # after the warm start; after GRPO
  print("reasoning_gym held-out:", {k: (round(first[k], 3), round(last[k], 3))
                                    for k in ("eval/greedy_accuracy", "eval/pass@1")})
  assert first["eval/greedy_accuracy"] > 0.1, first  # the warm start learned the answer format
  # Held-out questions are never trained on (split by question). pass@1 (4 samples a problem)
  # is the low-noise measure; greedy accuracy must not fall by more than its noise.
  assert last["eval/pass@1"] - first["eval/pass@1"] >= 0.03, (first, last)
  assert last["eval/greedy_accuracy"] >= first["eval/greedy_accuracy"] - 0.03, (first, last)
