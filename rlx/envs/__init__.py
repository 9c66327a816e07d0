"""Multi-turn environments and tools (docs/envs.md).

An :class:`Environment` holds one episode: ``reset(example)`` gives the first prompt text and
``step(action_text)`` the environment's answer (:class:`StepResult`: observation text, reward,
done, info). :func:`rlx.runtime.episodes.run_episodes` plays a batch of episodes with the
compiled sampler, continuing each row's KV cache after its observation.
"""

from rlx.envs.base import Environment, StepResult, env_names, make_env, register_env
from rlx.envs.gym import GymTextEnv
from rlx.envs.retrieval import BM25, load_documents, search_tool
from rlx.envs.tools import TOOLS, ToolEnv, calculator, parse_tool_call, python_tool

__all__ = ["BM25", "Environment", "GymTextEnv", "StepResult", "TOOLS", "ToolEnv", "calculator",
           "env_names", "load_documents", "make_env", "parse_tool_call", "python_tool",
           "register_env", "search_tool"]
