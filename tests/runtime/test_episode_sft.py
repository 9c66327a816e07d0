"""SFT on multi-turn demonstrations (the warm start of an episode run): a demonstration is
tokenized exactly as ``run_episodes`` assembles an episode of the same texts, actions trained,
observations attended to but not trained; the tool task's demonstrations are episodes that
``ToolEnv`` plays to reward 1."""

import dataclasses

import jax
import numpy as np
import pytest

from rlx import config as rlx_config
from rlx.data import generate_examples, load_task_tokenizer, make_sft_batch
from rlx.envs import ToolEnv
from rlx.runtime import rollouts
from rlx.runtime.phases.sft import SFTPhase, episode_demonstrations, sft_schedule
from rlx.runtime.run import build
from tests.test_configs import load

INSTRUCTIONS = "Use the calculator."


def demonstrations(n=40, seed=0):
  """Tool and direct-answer demonstrations of the tool task (difficulties 2 and 3)."""
  exs = generate_examples("tool_multiplication", n, seed=seed, difficulty=(2, 3))
  tool = [ex for ex in exs if ex.info["uses_tool"]]
  direct = [ex for ex in exs if not ex.info["uses_tool"]]
  assert tool and direct
  return tool, direct


def test_tool_demonstrations_are_episodes_the_tool_env_plays_to_reward_1():
  tool, direct = demonstrations()
  for ex in tool + direct:
    env = ToolEnv(tools=("calculator",))
    assert env.reset(ex) == ex.prompt
    episode = ex.info["episode"]
    for i in range(0, len(episode) - 1, 2):  # each call's observation is the tool's answer
      result = env.step(episode[i])
      assert not result.done and result.observation == episode[i + 1]
    result = env.step(episode[-1])
    assert result.done and result.reward == 1.0
    assert ex.solution == "\n".join(episode) and ex.solution.endswith(f"Answer: {ex.answer}")
  assert len(tool[0].info["episode"]) == 3 and len(direct[0].info["episode"]) == 1


def test_episode_demonstration_segments_and_loss_mask():
  tok = load_task_tokenizer()
  tool, direct = demonstrations()
  out = make_sft_batch([tool[0], direct[0]], tok, episodes=True)
  call, obs, answer = tool[0].info["episode"]
  prompt = tok.encode(tool[0].prompt + "\n", add_bos=True)
  segments = [(prompt, 0), (tok.encode(call) + [tok.eos_id], 1), (tok.encode(obs), 0),
              (tok.encode(answer) + [tok.eos_id], 1)]
  n = sum(len(s) for s, _ in segments)
  assert out["tokens"][0, :n].tolist() == [t for s, _ in segments for t in s]
  assert out["loss_mask"][0, :n].tolist() == [bool(m) for s, m in segments for _ in s]
  assert out["mask"][0, :n].all() and not out["mask"][0, n:].any()
  # A one-turn demonstration is the single-turn SFT sequence; without episodes= the solution.
  single = make_sft_batch([direct[0]], tok)
  width = single["tokens"].shape[1]
  np.testing.assert_array_equal(out["tokens"][1, :width], single["tokens"][0])
  flat = make_sft_batch([tool[0]], tok)
  assert flat["tokens"][0][flat["loss_mask"][0]].tolist() == tok.encode(tool[0].solution,
                                                                        add_eos=True)


@pytest.fixture(scope="module", params=["plain", "chat"])
def memorised(request):
  """The shipped tool config (with instructions after the prompt; plain prompts or the task
  tokenizer's chat template) whose SFT phase memorises one tool demonstration and one direct
  answer: ``(setup, params, examples)``."""
  cfg = load("tool_calculator")
  cfg.data.prompt_format = request.param
  cfg.env.instructions = INSTRUCTIONS
  cfg.data.max_prompt_len = 48  # the environment's prompt: the question and the instructions
  cfg.data.max_seq_len = 128
  cfg.warm_start.learning_rate = 1e-2
  cfg.warm_start.batch_size = 2
  cfg.warm_start.sft_steps = 100
  cfg.warm_start.cache_dir = ""
  cfg.logging.stdout = False
  run = rlx_config.validate(cfg)
  tool, direct = demonstrations()
  examples = [tool[0], direct[0]]
  setup = dataclasses.replace(build(run, None), train_source=examples)
  phase = SFTPhase(setup, setup.init_params, sft_schedule(run))
  for step in range(phase.num_steps):
    phase.step(step)
  return setup, phase.state.params, examples


def test_sft_sequence_is_token_for_token_the_episode_of_its_texts(memorised):
  """Greedy episodes of the memorised policy replay the demonstrations; each episode's prompt and
  completion tokens are the SFT row's tokens and its loss mask the SFT loss mask (observation
  tokens 0), through the runtime's own paths (SFTPhase's prompts, sample_episodes)."""
  setup, params, examples = memorised
  run, tok = setup.run, setup.tokenizer
  data = rollouts.sample_episodes(setup, params, examples, jax.random.key(0), n=1, greedy=True)
  np.testing.assert_array_equal(data["rewards"], [1.0, 1.0])  # the demonstrations, replayed
  np.testing.assert_array_equal(data["tool_calls"], [1, 0])
  prompted, kwargs = episode_demonstrations(setup, examples)  # as SFTPhase.step batches them
  batch = make_sft_batch(prompted, tok, formatter=setup.formatter, max_len=run.data.max_seq_len,
                         truncate=True, **kwargs)
  assert batch["mask"].sum(1).max() < run.data.max_seq_len  # nothing cut
  assert INSTRUCTIONS in tok.decode(batch["tokens"][0].tolist())  # the environment's prompt
  for i in range(len(examples)):
    prompt = data["prompt_tokens"][i][data["prompt_mask"][i] > 0]
    cm = data["completion_mask"][i] > 0
    episode = np.concatenate([prompt, data["completion_tokens"][i][cm]])
    sft_row = batch["tokens"][i][batch["mask"][i]]
    np.testing.assert_array_equal(episode, sft_row)
    loss = np.concatenate([np.zeros(len(prompt)), data["loss_mask"][i][cm]])
    np.testing.assert_array_equal(loss, batch["loss_mask"][i][batch["mask"][i]])
  obs = kwargs["encode_observation"](examples[0].info["episode"][1])
  lm = data["loss_mask"][0][data["completion_mask"][0] > 0]
  assert int((lm == 0).sum()) == len(obs) == int(data["obs_tokens"][0])
  assert tok.decode(obs).count("<obs>") == 1
  chat = run.data.prompt_format is rlx_config.PromptFormat.CHAT  # the observation is a user turn
  assert ("<|assistant|>" in tok.decode(obs, skip_special_tokens=False)) == chat
