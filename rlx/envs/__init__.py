"""Multi-turn environments and tools (docs/envs.md).

An :class:`Environment` holds one episode: ``reset(example)`` gives the first prompt text and
``step(action_text)`` the environment's answer (:class:`StepResult`: observation text, reward,
done, info). :func:`rlx.runtime.episodes.run_episodes` plays a batch of episodes with the
compiled sampler, continuing each row's KV cache after its observation.
"""

from rlx.envs.base import (Environment, Game, Seat, StepResult, Versus, env_names, make_env,
                           register_env, seats)
from rlx.envs.games import (OPPONENTS, Nim, game_names, make_game, make_opponent,
                            random_opponent, register_game)
from rlx.envs.gym import GymTextEnv
from rlx.data.retrieval import BM25, load_documents, search_tool
from rlx.envs.tools import (TOOL_ARGS, TOOL_FORMATS, TOOLS, ToolCall, ToolEnv, calculator,
                            find_tool_call, parse_tool_call, python_tool, tool_schema)
from rlx.envs.chat import ChatRenderer, episode_renderer

__all__ = ["BM25", "Environment", "Game", "GymTextEnv", "Nim", "OPPONENTS", "Seat", "StepResult",
           "TOOLS", "ToolEnv", "Versus", "calculator", "env_names", "game_names",
           "load_documents", "make_env", "make_game", "make_opponent", "parse_tool_call",
           "python_tool", "random_opponent", "register_env", "register_game", "search_tool",
           "seats", "ChatRenderer", "TOOL_ARGS", "TOOL_FORMATS", "ToolCall",
           "episode_renderer", "find_tool_call", "tool_schema"]
