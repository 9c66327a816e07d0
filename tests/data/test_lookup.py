"""The ``lookup`` task (search agent): a shipped, seeded document collection, questions split by
item, and demonstrations that are the episodes ``ToolEnv``'s ``search`` tool plays."""

import json

import numpy as np

from rlx import config as rlx_config
from rlx.data import generate_examples, get_task
from rlx.data import tasks
from rlx.envs import ToolEnv
from rlx.runtime.run import build
from tests.test_configs import load

TOOL_KWARGS = {"search": {"documents": tasks.lookup_documents_path(), "k": 1}}


def test_shipped_collection_is_the_seeded_generator_output(tmp_path):
  rows = tasks.lookup_collection()
  assert len(rows) == tasks.LOOKUP_ITEMS
  assert rows == tasks.lookup_collection()  # deterministic
  with open(tasks.lookup_documents_path(), encoding="utf-8") as f:
    assert [json.loads(line) for line in f] == rows
  path = tasks.write_lookup_collection(str(tmp_path / "items.jsonl"))
  assert open(path).read() == open(tasks.lookup_documents_path()).read()
  ids = [r["title"] for r in rows]
  assert len(set(ids)) == len(ids)  # one record per item: the question has one answer


def test_questions_are_split_by_item():
  task = get_task("lookup")
  train = {ex.info["item"] for ex in generate_examples("lookup", 4000, seed=0, difficulty=1)}
  held = {ex.info["item"] for ex in generate_examples(task.held_out_task(), 1000, seed=1,
                                                      difficulty=1)}
  assert not train & held
  assert len(held) > 200 and len(train) > 700  # 250 / 750 items, nearly all drawn
  rows = tasks.lookup_collection()
  assert held <= {int(r["title"].split()[1]) for j, r in enumerate(rows) if j % 4 == 3}


def test_examples_answers_and_verifier():
  exs = generate_examples("lookup", 200, seed=0, difficulty=1)
  prices = {int(r["title"].split()[1]): r["text"].split()[1] for r in tasks.lookup_collection()}
  task = get_task("lookup")
  for ex in exs:
    assert ex.prompt == f"What does item {ex.info['item']} cost?"
    assert ex.answer == prices[ex.info["item"]] == task.solve(ex)
    assert ex.solution == f"Answer: {ex.answer}"  # the single-turn demonstration: direct
    assert task.verify(ex.solution, ex.answer) == 1.0
  share = np.mean([ex.info["uses_tool"] for ex in exs])
  assert 0.15 < share < 0.35  # tool_share 0.25


def test_demonstrations_are_episodes_the_search_tool_plays_to_reward_1():
  exs = generate_examples("lookup", 60, seed=0, difficulty=1)
  tool = [ex for ex in exs if ex.info["uses_tool"]]
  assert tool and len(tool) < len(exs)
  for ex in exs:
    env = ToolEnv(tools=("search",), tool_kwargs=TOOL_KWARGS)
    assert env.reset(ex) == ex.prompt
    episode = ex.info["episode"]
    for i in range(0, len(episode) - 1, 2):  # the observation is the real tool's answer
      result = env.step(episode[i])
      assert not result.done and result.observation == episode[i + 1]
    result = env.step(episode[-1])
    assert result.done and result.reward == 1.0
  call, obs, answer = tool[0].info["episode"]
  assert call == f"<tool>search: item {tool[0].info['item']}</tool>"
  assert obs == f"<obs>[1] item {tool[0].info['item']}: price {tool[0].answer}</obs>"
  assert answer == f"Answer: {tool[0].answer}"


def test_multi_item_questions_search_once_per_item():
  """Difficulty d: the total price of d distinct items, one search per item in the episode."""
  task = get_task("lookup")
  for d in (2, 3, 4):
    for ex in generate_examples("lookup", 30, seed=2, difficulty=d):
      assert len(set(ex.info["items"])) == d and ex.answer == str(sum(ex.info["prices"]))
      assert task.solve(ex) == ex.answer and ex.solution == f"Answer: {ex.answer}"
      episode = ex.info["episode"]
      assert len(episode) == (2 * d + 1 if ex.info["uses_tool"] else 1)
      env = ToolEnv(tools=("search",), tool_kwargs=TOOL_KWARGS)
      env.reset(ex)
      for i in range(0, len(episode) - 1, 2):
        assert env.step(episode[i]).observation == episode[i + 1]
      assert env.step(episode[-1]).reward == 1.0


def test_config_holds_out_items_and_fits_its_demonstrations():
  from rlx.data import load_task_tokenizer
  run = rlx_config.validate(load("search_lookup"))
  assert run.env.name == "tools" and run.data.task == "lookup"
  setup = build(run, None)
  train = {setup.train_source[i].info["item"] for i in range(2000)}
  held = [setup.eval_source[i] for i in range(len(setup.eval_source))]
  assert not train & {ex.info["item"] for ex in held}
  tok = load_task_tokenizer()
  for ex in [setup.train_source[i] for i in range(300)] + held:
    prompt = len(tok.encode(ex.prompt + "\n", add_bos=True))
    assert prompt <= run.data.max_prompt_len
    turns = ex.info["episode"]
    assert prompt + sum(len(tok.encode(t)) + 1 for t in turns) < run.data.max_seq_len
    for t in turns[::2]:
      assert len(tok.encode(t)) + 1 <= run.sampling.max_new_tokens
    for t in turns[1::2]:
      assert len(tok.encode(t)) <= run.env.max_obs_tokens
