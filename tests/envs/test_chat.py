"""Chat-template rendering of episodes and the tool-call formats (rlx.envs.chat and .tools).

A small byte-level BPE tokenizer is trained here (the ``tokenizers`` library) with the special
tokens of Qwen2.5 and Llama 3.1; their real chat templates are fixtures (tests/envs/fixtures).
For a 3-turn tool conversation (user → call → tool → call → tool → answer), the prompt, the
model's actions and the environment's observations rendered turn by turn are exactly the
conversation rendered at once, and that rendering is transformers' ``apply_chat_template``.
"""

import json
import pathlib
import re
import types

import jax
import numpy as np
import pytest
import tokenizers
from tokenizers import decoders, models as tok_models, pre_tokenizers, trainers

from rlx import config as rlx_config
from rlx import models
from rlx.envs import (ChatRenderer, Environment, ToolEnv, episode_renderer, find_tool_call,
                      register_env, tool_schema)
from rlx.runtime.episodes import run_episodes
from rlx.sampling import Buckets, SamplingParams
from rlx.tokenizers import HFTokenizer

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|end_of_text|>",
           "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
           "<|python_tag|>"]
ADDED = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]  # not special
FAMILIES = {
    "qwen": dict(template="qwen2_5_chat_template.jinja", bos_token=None, eos_token="<|im_end|>",
                 pad_token="<|endoftext|>"),
    "llama3": dict(template="llama3_1_chat_template.jinja", bos_token="<|begin_of_text|>",
                   eos_token="<|eot_id|>", pad_token=None),
}
QWEN_CALL = ('<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{}"}}}}\n'
             '</tool_call>')
LLAMA_CALL = '{{"name": "calculator", "parameters": {{"expression": "{}"}}}}'
# What the model writes in each format: two calls and the answer (before its end token).
ACTIONS = {
    "qwen": [QWEN_CALL.format("6 * 7"), QWEN_CALL.format("42 + 1"), "So it is \\boxed{43}."],
    "llama3": [LLAMA_CALL.format("6 * 7"), LLAMA_CALL.format("42 + 1"), "So it is \\boxed{43}."],
    "tags": ["<tool>calculator: 6 * 7</tool>", "I add one. <tool>calculator: 42 + 1</tool>",
             "So it is \\boxed{43}."],
}
CALLS = [("calculator", {"expression": "6 * 7"}), ("calculator", {"expression": "42 + 1"})]


def _train_bpe(use_regex: bool = True, extra=()) -> tokenizers.Tokenizer:
  """A byte-level BPE (any text encodes) trained on the templates and a few tool turns."""
  tok = tokenizers.Tokenizer(tok_models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)
  tok.decoder = decoders.ByteLevel()
  corpus = [(FIXTURES / f["template"]).read_text() for f in FAMILIES.values()]
  corpus += [a for acts in ACTIONS.values() for a in acts] * 5 + list(extra)
  trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=SPECIAL, show_progress=False,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(corpus, trainer)
  tok.add_tokens(ADDED)
  return tok


@pytest.fixture(scope="module")
def bpe():
  return _train_bpe()


def _tokenizer(bpe, family: str, **override) -> HFTokenizer:
  spec = {**FAMILIES[family], **override}
  return HFTokenizer(bpe, bos_token=spec["bos_token"], eos_token=spec["eos_token"],
                     pad_token=spec["pad_token"],
                     chat_template=(FIXTURES / spec["template"]).read_text())


def _transformers(bpe, family: str):
  transformers = pytest.importorskip("transformers")
  spec = FAMILIES[family]
  fast = transformers.PreTrainedTokenizerFast(
      tokenizer_object=bpe, **{k: spec[k] for k in ("bos_token", "eos_token", "pad_token")
                               if spec[k] is not None})
  fast.chat_template = (FIXTURES / spec["template"]).read_text()
  return fast


def _hf_ids(fast, messages, **kwargs) -> list[int]:
  out = fast.apply_chat_template(messages, tokenize=True, **kwargs)
  return list(out["input_ids"] if hasattr(out, "keys") else out)


CASES = [("qwen", "qwen"), ("llama3", "llama3"), ("qwen", "tags"), ("llama3", "tags")]


@pytest.mark.parametrize("family, tool_format", CASES)
def test_turn_by_turn_equals_the_conversation_rendered_at_once(bpe, family, tool_format):
  """A 3-turn tool episode: prompt ids + action ids + observation ids (ToolEnv's observations
  through the renderer) == the whole conversation rendered at once == transformers."""
  tok = _tokenizer(bpe, family)
  env = ToolEnv(tools=("calculator",), tool_format=tool_format)
  prompt = env.reset({"prompt": "What is 6 * 7 + 1?", "answer": "43"})
  chat = ChatRenderer(tok, tool_format=tool_format, tools=env.tool_schemas())
  ids, observations, results = chat.prompt_ids(prompt), [], []
  for action in ACTIONS[tool_format]:
    action_ids = tok.encode(action + tok.special_tokens["eos_token"])  # ends at the stop token
    ids += action_ids
    results.append(env.step(tok.decode(action_ids)))  # decoded as run_episodes does
    if not results[-1].done:
      observations.append(results[-1].observation)
      ids += chat.observation_ids(results[-1].observation)
  assert [r.info["tool_calls"] for r in results] == [1, 1, 0]
  assert results[-1].done and results[-1].reward == 1.0
  expected = ["42", "43"] if tool_format != "tags" else ["<obs>42</obs>", "<obs>43</obs>"]
  assert observations == expected

  messages = chat.messages(prompt)
  for (name, args), action, obs in zip(CALLS, ACTIONS[tool_format], observations):
    content = "I add one. " if action.startswith("I add one") else ""
    messages += [chat.assistant_message(content, call=(name, args)),
                 chat.observation_message(obs)]
  messages.append(chat.assistant_message(ACTIONS[tool_format][-1]))
  assert ids == chat.conversation_ids(messages)  # token for token

  fast = _transformers(bpe, family)
  assert chat.render_ids(messages) == _hf_ids(fast, messages, tools=chat.tools)
  assert chat.prompt_ids(prompt) == _hf_ids(fast, chat.messages(prompt), tools=chat.tools,
                                            add_generation_prompt=True)
  # the episode stops at the last end token; the template's text after it is Qwen's "\n"
  tail = chat.render_ids(messages)[len(ids):]
  assert tok.decode(tail, skip_special_tokens=False) == ("\n" if family == "qwen" else "")


def test_observations_hold_the_text_after_the_end_token(bpe):
  qwen = ChatRenderer(_tokenizer(bpe, "qwen"), tool_format="qwen", tools=[tool_schema("python")])
  text = qwen.tokenizer.decode(qwen.observation_ids("42\n"), skip_special_tokens=False)
  assert text == ("\n<|im_start|>user\n<tool_response>\n42\n\n</tool_response><|im_end|>\n"
                  "<|im_start|>assistant\n")
  prompt = qwen.tokenizer.decode(qwen.prompt_ids("Hi"), skip_special_tokens=False)
  assert '"name": "python"' in prompt and '"code"' in prompt  # the tool's schema is listed
  assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
  llama = ChatRenderer(_tokenizer(bpe, "llama3"), tool_format="llama3",
                       tools=[tool_schema("python")])
  text = llama.tokenizer.decode(llama.observation_ids("42"), skip_special_tokens=False)
  assert text == ('<|start_header_id|>ipython<|end_header_id|>\n\n"42"<|eot_id|>'
                  "<|start_header_id|>assistant<|end_header_id|>\n\n")
  # a long tool output is cut so that the whole observation, generation prompt included, fits
  cut = ChatRenderer(_tokenizer(bpe, "qwen"), tool_format="qwen", max_obs_tokens=40)
  ids = cut.observation_ids("x = 12345; " * 200)
  assert len(ids) <= 40
  assert cut.tokenizer.decode(ids, skip_special_tokens=False).endswith(
      "</tool_response><|im_end|>\n<|im_start|>assistant\n")


def test_templates_that_do_not_split_cleanly_are_refused(bpe):
  # a rendering that changes the text before it (the last assistant message is marked)
  marked = ("{% for m in messages %}{% if loop.last and m.role == 'assistant' %}*{% endif %}"
            "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
  with pytest.raises(ValueError, match="not prefix-consistent"):
    ChatRenderer(_tokenizer(bpe, "qwen"), chat_template=marked)
  # a tokenizer whose merges cross the turn boundaries (no pre-tokenizer split)
  glued = _train_bpe(use_regex=False, extra=["assistant\n<tool>calculator"] * 400)
  with pytest.raises(ValueError, match="does not split cleanly"):
    ChatRenderer(_tokenizer(glued, "qwen"), tool_format="tags")
  # the sampler stops at eos: it must be the template's end of an assistant turn
  with pytest.raises(ValueError, match=re.escape("assistant message with '<|endoftext|>'")):
    ChatRenderer(_tokenizer(bpe, "qwen", eos_token="<|endoftext|>"))
  with pytest.raises(ValueError, match="max_obs_tokens=4"):
    ChatRenderer(_tokenizer(bpe, "qwen"), tool_format="qwen", max_obs_tokens=4)
  with pytest.raises(ValueError, match="needs a chat template"):
    ChatRenderer(HFTokenizer(bpe, eos_token="<|im_end|>"))
  with pytest.raises(ValueError, match="tool_format='xml'"):
    ChatRenderer(_tokenizer(bpe, "qwen"), tool_format="xml")


def test_tool_call_formats_parse_and_malformed_calls_are_tool_errors():
  call = find_tool_call("Let me compute.\n" + QWEN_CALL.format("6 * 7") + " more", "qwen")
  assert (call.name, call.arguments, call.error) == ("calculator", {"expression": "6 * 7"}, "")
  call = find_tool_call('<tool_call>\n{"name": "python", "arguments": {"code": "print(1)"}}',
                        "qwen")  # the turn ended at its stop token before </tool_call>
  assert (call.name, call.arguments) == ("python", {"code": "print(1)"})
  assert find_tool_call("The answer is {42}.", "qwen") is None
  assert "invalid JSON" in find_tool_call('<tool_call>{"name": "calc', "qwen").error
  assert '"name"' in find_tool_call("<tool_call>[1, 2]</tool_call>", "qwen").error
  call = find_tool_call('<|python_tag|>{"name": "python", "parameters": {"code": "1"}}', "llama3")
  assert (call.name, call.arguments) == ("python", {"code": "1"})
  call = find_tool_call(' {"name": "calculator", "parameters": "{\\"expression\\": \\"2\\"}"}',
                        "llama3")  # arguments written as a JSON string
  assert call.arguments == {"expression": "2"}
  assert find_tool_call("The answer is \\boxed{42}.", "llama3") is None
  assert find_tool_call('{"name": "calculator", "parameters": {', "llama3").error
  assert find_tool_call("<tool>calculator: 1 + 1</tool>", "tags").arguments == "1 + 1"
  with pytest.raises(ValueError, match="tool_format='xml'"):
    find_tool_call("x", "xml")

  env = ToolEnv(tools={"calculator": lambda s: str(eval(s)), "echo": lambda s: s},
                tool_format="qwen")
  env.reset({"prompt": "q", "answer": "42"})
  r = env.step('<tool_call>\n{"name": "calculator", "arguments": {"expression": "6*7"\n'
               '</tool_call>')  # malformed JSON: an error observation, not a crash
  assert not r.done and r.info == {"tool_calls": 1, "tool_error": 1, "obs_truncated": 0}
  assert r.observation.startswith("error: malformed tool call (invalid JSON")
  r = env.step(QWEN_CALL.format("6*7"))  # the tool's argument key ...
  assert r.observation == "42" and r.info["tool_error"] == 0  # (no <obs> tags: the template's)
  r = env.step('<tool_call>{"name": "echo", "arguments": {"text": "hi"}}</tool_call>')
  assert r.observation == "hi"  # ... or the only argument, whatever its key
  r = env.step('<tool_call>{"name": "calculator", "arguments": {"a": "1", "b": "2"}}</tool_call>')
  assert r.info["tool_error"] == 1 and "takes one argument 'expression'" in r.observation
  r = env.step('<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>')
  assert r.info["tool_error"] == 1 and "unknown tool 'search'" in r.observation
  assert env.step("So it is 42.").reward == 1.0
  llama = ToolEnv(tools=("calculator",), tool_format="llama3")
  llama.reset({"prompt": "q", "answer": "42"})
  assert llama.step(LLAMA_CALL.format("6 * 7")).observation == "42"
  assert json.loads(json.dumps(llama.tool_schemas()))[0]["function"]["parameters"][
      "required"] == ["expression"]
  with pytest.raises(ValueError, match="tool_format='json'"):
    ToolEnv(tool_format="json")


def test_tool_format_config_errors_name_the_field():
  from tests.runtime.test_loop import tiny_rl_config
  cfg = tiny_rl_config("grpo")
  cfg.env.name = "tools"
  cfg.env.tool_format = "xml"
  with pytest.raises(rlx_config.ConfigError,
                     match=r"config\.env\.tool_format='xml'.*'tags', 'qwen', 'llama3'"):
    rlx_config.validate(cfg)
  cfg.env.tool_format = "qwen"  # plain prompts: no template to render tool messages
  with pytest.raises(rlx_config.ConfigError,
                     match=r"config\.env\.tool_format='qwen'.*data\.prompt_format='chat'"):
    rlx_config.validate(cfg)
  cfg.data.prompt_format = "chat"
  run = rlx_config.validate(cfg)
  assert run.env.tool_format == "qwen" and run.env.make_kwargs()["tool_format"] == "qwen"
  assert rlx_config.validate(tiny_rl_config("grpo")).env.tool_format == "tags"


class QwenCaller(Environment):
  """ToolEnv in the qwen format whose first two turns call the calculator (a tiny random model
  cannot write calls); the third turn is its final answer."""

  def __init__(self, **_):
    self.inner, self.turn = ToolEnv(tools=("calculator",), tool_format="qwen"), 0

  def reset(self, example):
    return self.inner.reset(example)

  def step(self, action):
    self.turn += 1
    return self.inner.step(QWEN_CALL.format("6 * 7") if self.turn < 3 else action)

  def tool_schemas(self):
    return self.inner.tool_schemas()


def _eos_model(vocab: int, eos: int):
  """A tiny random model whose every step samples ``eos`` with probability ~0.6 (a constant
  residual channel read by the LM head), so that its turns end at the stop token."""
  cfg = models.ModelConfig(vocab_size=vocab, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                           head_dim=16, d_ff=64)
  graphdef, params = models.init_params(cfg, seed=0)
  params["embedding"][...] = params["embedding"][...].at[:, 0].add(30.0)
  unembed = params["unembed"][...].at[0, :].set(0.0)
  params["unembed"][...] = unembed.at[0, eos].set(np.log(0.6 * vocab / 0.4) / np.sqrt(32))
  return graphdef, params


def test_episodes_with_the_qwen_format_decode_to_the_template(bpe):
  tok = _tokenizer(bpe, "qwen")
  chat = ChatRenderer(tok, tool_format="qwen", tools=QwenCaller().tool_schemas(),
                      max_obs_tokens=32)
  graphdef, params = _eos_model(tok.vocab_size, tok.eos_id)
  examples = [{"prompt": p, "answer": "42"} for p in ("What is 6 * 7?", "Six times seven?")] * 2
  width = max(len(chat.prompt_ids(ex["prompt"])) for ex in examples)
  out = run_episodes(graphdef, params, tok, [QwenCaller() for _ in examples], examples,
                     SamplingParams(max_new_tokens=16, stop_token_ids=(tok.eos_id,)),
                     jax.random.key(0), max_turns=3, max_obs_tokens=32, render=chat.render,
                     encode_observation=chat.observation_ids,
                     buckets=Buckets(prompt_lengths=(64, 1 << width.bit_length()),
                                     batch_sizes=(4,), new_tokens=(16,)))
  assert list(out["turns"]) == [3] * 4 and list(out["tool_calls"]) == [2] * 4
  obs = chat.observation_ids("42")
  for i, ex in enumerate(examples):
    prompt = out["prompt_tokens"][i][out["prompt_mask"][i] > 0].tolist()
    assert prompt == chat.prompt_ids(ex["prompt"])
    n = int(out["completion_mask"][i].sum())
    tokens, loss = out["completion_tokens"][i, :n], out["loss_mask"][i, :n]
    runs = np.split(np.arange(n), np.where(np.diff(loss) != 0)[0] + 1)
    assert [tokens[r].tolist() for r in runs if loss[r[0]] == 0] == [obs, obs]
    # action (up to its <|im_end|>), "\n<|im_start|>user\n<tool_response>\n42\n..." twice, action
    turn, end = re.escape(tok.decode(obs, skip_special_tokens=False)), re.escape("<|im_end|>")
    text = tok.decode(tokens.tolist(), skip_special_tokens=False)
    assert re.fullmatch(f"(.*?){end}{turn}(.*?){end}{turn}(.*?){end}", text, re.S), text


def test_sample_episodes_renders_with_the_chat_template(bpe):
  """The run's wiring: data.prompt_format = chat and env.tool_format = qwen give the episodes
  the renderer's prompt and observations (rlx.runtime.rollouts.sample_episodes)."""
  from rlx.data import ChatFormat, Example
  from rlx.runtime.rollouts import sample_episodes
  from tests.runtime.test_loop import tiny_rl_config
  register_env("qwen_caller_test", QwenCaller, overwrite=True)
  cfg = tiny_rl_config("grpo")
  cfg.data.prompt_format = "chat"
  cfg.data.max_prompt_len = 512
  cfg.env.name, cfg.env.tool_format = "qwen_caller_test", "qwen"
  cfg.env.max_turns, cfg.env.max_obs_tokens = 3, 32
  tok = _tokenizer(bpe, "qwen")
  graphdef, params = _eos_model(tok.vocab_size, tok.eos_id)
  setup = types.SimpleNamespace(run=rlx_config.validate(cfg), tokenizer=tok,
                                formatter=ChatFormat(tok), graphdef=graphdef)
  examples = [Example(prompt="What is 6 * 7?", answer="42")]
  out = sample_episodes(setup, params, examples, jax.random.key(1), n=2)
  chat = episode_renderer(setup, [QwenCaller()])
  assert chat is episode_renderer(setup, [QwenCaller()])  # built once
  assert chat.tool_format == "qwen" and chat.tools == [tool_schema("calculator")]
  for i in range(2):
    assert out["prompt_tokens"][i][out["prompt_mask"][i] > 0].tolist() == chat.prompt_ids(
        "What is 6 * 7?")
    n = int(out["completion_mask"][i].sum())
    zero = out["completion_tokens"][i, :n][out["loss_mask"][i, :n] == 0].tolist()
    assert zero == chat.observation_ids("42") * 2
  setup.run = rlx_config.validate(tiny_rl_config("grpo"))
  assert episode_renderer(setup) is None  # plain prompts: the default rendering
