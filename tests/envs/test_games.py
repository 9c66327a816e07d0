"""Two-player games: self-play with both seats the same policy (one episode row per seat, the
other seat's moves as observations), a fixed opponent, the textarena adapter, and a config run."""

import jax
import numpy as np
import pytest

from rlx import models
from rlx.data import Example, load_task_tokenizer
from rlx.envs import Game, Nim, Versus, make_game, random_opponent, seats
from rlx.envs.games import optimal_nim_opponent
from rlx.runtime.episodes import run_episodes
from rlx.sampling import Buckets, SamplingParams
from tests.runtime.test_episodes import CFG, _teacher_forced_logprobs

BUCKETS = Buckets(prompt_lengths=(16, 32), batch_sizes=(4,), new_tokens=(8,))
SP = SamplingParams(temperature=1.0, max_new_tokens=6)


class Echo(Game):
  """Any action is a move; each seat moves ``moves`` times, seat 0 first; the other seat reads
  ``<obs>N</obs>`` (N = the move's length in characters, mod 10). The seat whose moves had
  more characters wins."""

  def __init__(self, moves=3):
    self.moves = moves

  def reset(self, example):
    self.player, self.made, self.chars = 0, [0, 0], [0, 0]
    self.unread = [[f"{example['prompt']} seat {p}."] for p in range(2)]

  def to_move(self):
    return self.player

  def observe(self, player):
    text, self.unread[player] = "".join(self.unread[player]), []
    return text

  def act(self, action):
    p = self.player
    self.made[p] += 1
    self.chars[p] += len(action)
    self.unread[1 - p].append(f"<obs>{len(action) % 10}</obs>")
    self.player = 1 - p
    return {"moves": 1}

  def over(self):
    return min(self.made) >= self.moves

  def rewards(self):
    d = np.sign(self.chars[0] - self.chars[1])
    return [float(d), float(-d)]


@pytest.fixture(scope="module")
def setup():
  return models.init_params(CFG, seed=0), load_task_tokenizer()


def test_self_play_seats_alternate_and_logprobs_equal_teacher_forcing(setup):
  (graphdef, params), tok = setup
  games = [Echo(), Echo()]
  tables = [seats(g) for g in games]
  envs = [tables[0][0], tables[1][0], tables[0][1], tables[1][1]]  # rows (seat, game)
  examples = [{"prompt": "Play"}, {"prompt": "Go on"}] * 2
  out = run_episodes(graphdef, params, tok, envs, examples, SP, jax.random.key(3), max_turns=3,
                     max_obs_tokens=16, buckets=BUCKETS)
  assert out["episode_finish"] == ["done"] * 4 and list(out["turns"]) == [3, 3, 3, 3]
  np.testing.assert_array_equal(out["counters"]["moves"], [3, 3, 3, 3])
  for g in range(2):  # zero-sum, and the rewards are the game's
    np.testing.assert_array_equal(out["rewards"][[g, g + 2]], games[g].rewards())
  lm, cm = out["loss_mask"], out["completion_mask"]
  for i in range(4):
    n = int(cm[i].sum())
    runs = np.split(np.arange(n), np.where(np.diff(lm[i, :n]) != 0)[0] + 1)
    kinds = [int(lm[i, r[0]]) for r in runs]
    # seat 0: action, obs, action, obs, action; seat 1 (held at first): obs, action, ... action
    assert kinds == ([1, 0, 1, 0, 1] if i < 2 else [0, 1, 0, 1, 0, 1])
    other = (i + 2) % 4
    other_n = int(cm[other].sum())
    other_runs = np.split(np.arange(other_n),
                          np.where(np.diff(lm[other, :other_n]) != 0)[0] + 1)
    # each observation is the other seat's move, in order
    their = [tok.decode(out["completion_tokens"][other, r].tolist()) for r in other_runs
             if lm[other, r[0]] == 1]
    mine = [tok.decode(out["completion_tokens"][i, r].tolist()) for r in runs if lm[i, r[0]] == 0]
    expected = [f"<obs>{len(a) % 10}</obs>" for a in their]
    assert mine == (expected[:2] if i < 2 else expected)
  tf = np.asarray(_teacher_forced_logprobs(graphdef, params, out))
  np.testing.assert_allclose(out["logprobs"], tf * lm, atol=1e-5, rtol=1e-5)
  assert (out["logprobs"][lm == 0] == 0).all()


def test_a_seat_that_runs_out_of_turns_aborts_its_game(setup):
  (graphdef, params), tok = setup
  tables = [seats(Echo(moves=5)) for _ in range(2)]
  envs = [tables[0][0], tables[1][0], tables[0][1], tables[1][1]]
  out = run_episodes(graphdef, params, tok, envs, [{"prompt": "x y"}] * 4, SP,
                     jax.random.key(4), max_turns=2, max_obs_tokens=8, buckets=BUCKETS)
  # seat 0 ends after its 2nd move (max_turns); seat 1, waiting for a 3rd, sees the abort
  assert out["episode_finish"] == ["max_turns", "max_turns", "done", "done"]
  np.testing.assert_array_equal(out["turns"], [2, 2, 2, 2])
  np.testing.assert_array_equal(out["counters"]["game_aborted"], [0, 0, 1, 1])
  np.testing.assert_array_equal(out["rewards"], [0, 0, 0, 0])


def test_sampler_hold_prefills_a_row_that_decodes_after_its_first_continuation():
  from rlx.sampling import continue_sampling, sample
  graphdef, params = models.init_params(CFG, seed=1)
  tokens = np.array([[0, 5, 6, 7], [3, 4, 5, 6]], np.int32)
  mask = np.array([[0, 1, 1, 1], [1, 1, 1, 1]], np.int32)
  greedy = SamplingParams(greedy=True, max_new_tokens=4)
  b = Buckets(prompt_lengths=(8,), batch_sizes=(2,), new_tokens=(4,))
  ro, state = sample(graphdef, params, tokens, mask, greedy, jax.random.key(0), buckets=b,
                     reserve=12, return_state=True, hold=[False, True])
  assert int(ro.lengths[1]) == 0 and int(ro.lengths[0]) == 4
  ro, _ = continue_sampling(graphdef, params, state, [None, [9, 10]], greedy,
                            jax.random.key(5), buckets=b)
  assert int(ro.lengths[0]) == 0 and int(ro.lengths[1]) == 4
  # the held row decodes as if its prompt had been the prompt and the appended chunk
  full = np.array([[3, 4, 5, 6, 9, 10]] * 2, np.int32)
  ref = sample(graphdef, params, full, np.ones_like(full), greedy, jax.random.key(0), buckets=b)
  np.testing.assert_array_equal(np.asarray(ro.completion_tokens[1]),
                                np.asarray(ref.completion_tokens[0]))
  np.testing.assert_allclose(np.asarray(ro.logprobs[1]), np.asarray(ref.logprobs[0]), atol=1e-5)
  with pytest.raises(ValueError, match="hold"):
    sample(graphdef, params, tokens, mask, greedy, jax.random.key(0), buckets=b,
           hold=[True, False])
  with pytest.raises(ValueError, match="at least 2 tokens"):
    sample(graphdef, params, tokens, np.array([[0, 0, 0, 1], [1] * 4]), greedy,
           jax.random.key(0), buckets=b, return_state=True, hold=[True, False])


def test_a_name_is_a_game_or_an_environment_not_both():
  from rlx.envs import register_env, register_game
  with pytest.raises(ValueError, match="already registered, as a name of kind 'game'"):
    register_env("nim", lambda: None)
  with pytest.raises(ValueError, match="already registered, as a name of kind 'environment'"):
    register_game("tools", Nim)
  with pytest.raises(ValueError, match="unknown game; allowed values"):
    make_game("chess-on-mars")


def test_nim_rules_opponents_and_versus():
  g = Nim()
  g.reset(Example(prompt="", info={"pile": 6}))
  assert g.observe(0) == "Nim, 6 stones: take 1 to 3, the last stone wins. Player 0. Move:"
  assert g.observe(1).endswith("Player 1.")
  # 6 stones: taking 2 leaves 4, the winning move
  assert g.legal_moves() == ["1", "2", "3"]
  assert g.act("take 2") == {"invalid_move": 0, "winnable": 1, "winning_moves": 1}
  assert g.to_move() == 1 and g.observe(1) == "<obs>4 left</obs>" and g.observe(1) == ""
  assert g.act("5") == {"invalid_move": 1, "winnable": 0, "winning_moves": 0}
  assert g.over() and g.rewards() == [1.0, -1.0]
  g.reset(Example(prompt="", info={"pile": 2}))
  g.act("2")
  assert g.over() and g.rewards() == [1.0, -1.0]
  # the same example, the same pile; the pile from the prompt's hash lies in range
  piles = {make_game("nim").initial_pile(Example(prompt=f"q{i}")) for i in range(40)}
  assert piles <= set(range(5, 21)) and len(piles) > 5

  def win_rate(policy, seat, n=200):
    wins = 0
    for i in range(n):
      env = Versus(Nim(), random_opponent(i), player=seat)
      obs = env.reset(Example(prompt=f"game {i}"))
      assert obs
      while True:
        r = env.step(policy(env.game, ""))
        if r.done:
          wins += r.reward > 0
          break
    return wins / n
  # optimal play wins every game it can; random play about half as often
  assert win_rate(optimal_nim_opponent, 0) > 0.7 and win_rate(optimal_nim_opponent, 1) > 0.7
  assert win_rate(random_opponent(7), 0) < 0.65


def test_textarena_game_self_play_in_run_episodes(setup):
  pytest.importorskip("textarena")
  from rlx.envs.textarena import TextArenaGame
  g = TextArenaGame("TicTacToe-v0")
  g.reset({"prompt": "t"})
  assert g.observe(0).startswith("[GAME] You are Player 0 in Tic Tac Toe")
  assert g.observe(1).startswith("[GAME] You are Player 1 in Tic Tac Toe")
  assert g.act("[4]") == {"invalid_move": 0} and g.to_move() == 1
  seen = g.observe(1)
  assert seen.startswith("<obs>[Player 0] [4]") and "cell 4" in seen
  assert "[Player 0]" not in g.observe(0)  # its own move is in its context already
  assert g.act("nonsense") == {"invalid_move": 1} and g.to_move() == 1  # one retry allowed
  g.act("nonsense")
  assert g.over() and g.rewards() == [1.0, -1.0]
  # a single-player textarena game is a one-seat game: never waits, its hints are observations
  (seat,) = seats(TextArenaGame("GuessTheNumber-v0", num_players=1))
  assert "Guess The Number" in seat.reset({"prompt": "g"}) and not seat.waiting()
  r = seat.step("[10]")
  assert (r.done or "target number is" in r.observation) and r.info == {"invalid_move": 0}
  r = seat.step("no number")
  assert r.info == {"invalid_move": 1} and not r.done and "invalid move" in r.observation
  (graphdef, params), tok = setup
  tables = [seats(TextArenaGame("TicTacToe-v0")) for _ in range(2)]
  envs = [tables[0][0], tables[1][0], tables[0][1], tables[1][1]]
  out = run_episodes(graphdef, params, tok, envs, [{"prompt": "a"}, {"prompt": "b"}] * 2, SP,
                     jax.random.key(0), max_turns=2, max_obs_tokens=64,
                     buckets=Buckets(prompt_lengths=(16, 512), batch_sizes=(4,),
                                     new_tokens=(8,)))
  # random text is never a move: seat 0 retries, then loses; seat 1 never had to move
  assert out["episode_finish"] == ["done"] * 4
  np.testing.assert_array_equal(out["rewards"], [-1, -1, 1, 1])
  np.testing.assert_array_equal(out["turns"], [2, 2, 0, 0])
  np.testing.assert_array_equal(out["counters"]["invalid_move"], [2, 2, 0, 0])


def test_self_play_config_run_logs_seat_win_rates_and_evaluates_against_the_opponent(tmp_path):
  from rlx import config as rlx_config
  from rlx.runtime.metrics import read_metrics
  from rlx.runtime.run import train
  from tests.runtime.test_loop import tiny_rl_config
  cfg = tiny_rl_config("grpo")
  cfg.env.name = "nim"
  cfg.env.max_turns = 3
  cfg.env.max_obs_tokens = 16
  cfg.eval.every_steps = 2
  cfg.logging.rollouts_every = 1
  train(cfg, str(tmp_path))
  records = read_metrics(str(tmp_path / "metrics.jsonl"))
  steps = [r for r in records if r.get("phase") == "rl" and "loss/total" in r]
  assert len(steps) == 2
  for r in steps:
    assert {"env/win_rate/seat0", "env/win_rate/seat1", "env/invalid_move_rate"} <= set(r)
    assert r["env/win_rate"] == pytest.approx(r["env/loss_rate"])  # zero-sum
  evals = [r for r in records if "eval/win_rate" in r]
  assert evals and {"eval/win_rate/seat0", "eval/win_rate/seat1"} <= set(evals[-1])
  # the workdir holds whole episodes (logging.rollouts_every), printed by the viewer
  from rlx.runtime import rollout_log
  import json
  path = tmp_path / "rollouts" / f"step_{steps[0]['step']:07d}.jsonl"
  rows = [json.loads(line) for line in open(path)]
  assert len(rows) == cfg.algo.batch_size and {r["seat"] for r in rows} == {0, 1}
  assert all(r["prompt"].startswith("Nim, ") for r in rows)
  for r in rows:  # one action segment a turn; seat 0 opens with its move
    assert sum(seg["kind"] == "action" for seg in r["episode"]) == r["turns"]
    assert r["seat"] == 1 or r["episode"][0]["kind"] == "action"
  assert rollout_log.main([str(tmp_path), "--rows", "2"]) == 0
  cfg.algo.group_size = 3
  with pytest.raises(ValueError, match="algo.group_size"):
    rlx_config.validate(cfg)
  cfg.algo.group_size = 4
  cfg.env.opponent = "nobody"
  with pytest.raises(ValueError, match="env.opponent"):
    rlx_config.validate(cfg)


def test_game_demonstrations_are_the_seats_episodes_and_train_only_moves():
  from rlx.data import make_sft_batch
  from rlx.envs.games import play_demonstrations
  ex = Example(prompt="", info={"pile": 11})
  demos = play_demonstrations(Nim(), ex, random_opponent(3))
  # the same moves played through seats() (as run_episodes plays them): the same texts
  seat0, seat1 = demos[0][2][::2], demos[1][2][2::2]
  moves = [m for pair in zip(seat0, seat1 + [None]) for m in pair if m is not None]
  game = Nim()
  table = seats(game)
  prompts = [s.reset(ex) for s in table]
  texts = [[], [None]]
  for move in moves:
    p = game.to_move()
    assert table[p].step(move).observation is None or game.over()
    texts[p].append(move)
    other = table[1 - p].poll()  # its turn came: what it reads before moving
    if other is not None and not other.done:
      texts[1 - p].append(other.observation)
  assert [(p, prompts[p], texts[p]) for p in range(2)] == demos
  # SFT: the seat that moves second opens with an observation; only moves (+ eos) are trained
  tok = load_task_tokenizer()
  seat1 = Example(prompt=demos[1][1], info={"episode": demos[1][2]})
  b = make_sft_batch([seat1], tok, episodes=True)
  n_prompt = len(tok.encode(seat1.prompt + "\n", add_bos=True))
  obs = tok.encode(demos[1][2][1])
  lm = b["loss_mask"][0]
  assert not lm[:n_prompt + len(obs)].any()
  move = tok.encode(demos[1][2][2], add_eos=True)
  assert lm[n_prompt + len(obs):n_prompt + len(obs) + len(move)].all()
  assert int(lm.sum()) == sum(len(tok.encode(m, add_eos=True)) for m in demos[1][2][2::2])
