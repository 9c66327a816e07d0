"""What ``python -m rlx.train`` and ``python -m rlx.export`` share: flag parsing and error lines.

A configuration problem — an unknown override (``--config.algo.betaa=1``), a value of the wrong
type or one :func:`rlx.config.validate` rejects, a missing config file, a workdir that is a file,
a workdir whose checkpoints another config wrote — prints one line to stderr and exits with
status 2::

    rlx: config.algo.betaa: unknown field; did you mean beta?

``--verbosity=1`` (absl's flag) or higher prints the traceback above that line. Any other
exception is a bug and keeps its traceback. Third-party INFO logs (orbax, absl) are silenced
unless ``--verbosity`` is given.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import traceback
from typing import Callable

from absl import app
from absl import flags
from absl import logging
import ml_collections

from rlx import config as rlx_config

EXIT_CONFIG = 2  # exit status of a configuration or usage error


class Error(Exception):
  """A problem with the command line (a path, a flag): printed as one line, exit status 2."""


def _chain(e: BaseException, context: bool = True):
  """``e`` and the exceptions it was raised from (``raise ... from``) or, with ``context``, while
  handling, outermost first."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    yield e
    e = e.__cause__ or (e.__context__ if context and not e.__suppress_context__ else None)


def config_problem(e: BaseException, context: bool = True) -> str | None:
  """The one-line message of a configuration error in ``e``'s chain (:class:`Error`,
  :class:`rlx.config.ConfigError`, a checkpoint written by another config), else None (a bug)."""
  found = None
  for x in _chain(e, context):
    if isinstance(x, (Error, rlx_config.ConfigError)):
      found = x  # the innermost: a re-raise may have wrapped the message in a traceback
  return None if found is None else " ".join(str(found).split())


def _verbosity_in(argv: list[str]) -> int:
  """``--verbosity`` / ``-v`` as given in ``argv`` (for errors raised before flags are parsed)."""
  level = 0
  for i, arg in enumerate(argv[1:], 1):
    m = re.fullmatch(r"--?(?:verbosity|v)(?:=(.*))?", arg)
    if m:
      raw = m.group(1) if m.group(1) is not None else (argv[i + 1] if i + 1 < len(argv) else "")
      try:
        level = int(raw)
      except ValueError:
        pass
  return level


def fail(message: str, error: BaseException | None = None, *, verbose: bool = False):
  """Print ``rlx: message`` (after ``error``'s traceback when ``verbose``) and exit 2."""
  if verbose and error is not None:
    traceback.print_exception(error)
  print(f"rlx: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_CONFIG)


# ---------------------------------------------------------------------------------------------
# Flags.


def _flag_value(argv: list[str], name: str) -> str | None:
  """The last value of ``--name`` in ``argv`` (``--name=V`` or ``--name V``)."""
  value = None
  for i, arg in enumerate(argv[1:], 1):
    m = re.fullmatch(rf"--?{name}(?:=(.*))?", arg)
    if m:
      value = m.group(1) if m.group(1) is not None else (argv[i + 1] if i + 1 < len(argv) else None)
  return value


def _overrides(argv: list[str]) -> list[tuple[str, str | None]]:
  """``(field path, value)`` of every ``--config.PATH[=VALUE]`` in ``argv``, in order."""
  out = []
  for i, arg in enumerate(argv[1:], 1):
    m = re.fullmatch(r"--?(no)?config\.([^=]+)(?:=(.*))?", arg)
    if m:
      value = m.group(3)
      if value is None and not m.group(1) and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
        value = argv[i + 1]
      out.append((m.group(2), value))
  return out


def _check_config_file(argv: list[str]) -> None:
  """A ``--config`` file that does not exist fails here, not as ml_collections' deferred
  ``OSError`` on first use."""
  path = _flag_value(argv, "config")
  if path is None:
    return
  file = path.split(":", 1)[0]
  if not os.path.exists(file):
    raise Error(f"--config={path}: no such file")
  if not os.path.isfile(file):
    raise Error(f"--config={path}: not a file (give a config file, e.g. configs/grpo.py)")


def _load_config(argv: list[str]):
  """The ``--config`` file's ConfigDict (``FILE[:ARG]`` → ``get_config(ARG)``), without
  overrides; None if it does not load (the flag parser's own error is reported instead)."""
  file, *arg = (_flag_value(argv, "config") or "").split(":", 1)
  try:
    spec = importlib.util.spec_from_file_location("rlx_cli_config", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*arg)
  except Exception:  # pylint: disable=broad-except
    return None


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               tuple: "a tuple, e.g. '(1, 2)'"}


def _override_problem(config, path: str, value: str | None, parse_error: str | None) -> str | None:
  """What is wrong with override ``config.<path>=<value>`` of ``config``: an unknown field (with
  the nearest name), a field below a non-section, or (``parse_error``) a value of the wrong
  type; None if nothing is."""
  node, parts = config, path.split(".")
  for i, part in enumerate(parts):
    prefix = ".".join(parts[:i])
    if not isinstance(node, ml_collections.ConfigDict):
      return f"config.{prefix}: is a field, not a section (no config.{path})"
    if part not in node:
      return rlx_config.unknown_field(prefix, part, node.keys())
    node = node[part]
  if parse_error is None:
    return None
  if isinstance(node, ml_collections.ConfigDict):
    return (f"config.{path}={value!r}: is a section; set its fields "
            f"(--config.{path}.NAME=VALUE)")
  expected = _TYPE_NAMES.get(type(node), type(node).__name__)
  return f"config.{path}={value!r}: expected {expected} (the config file has {node!r})"


def _flag_problem(argv: list[str], error: Exception) -> str | None:
  """One line for an exception of flag parsing, or None if it is not a flag problem."""
  message = config_problem(error)
  if message is not None:
    return message
  overrides = _overrides(argv)
  failed = None  # (path, value) of the override absl could not parse
  if isinstance(error, flags.IllegalFlagValueError):
    m = re.match(r"flag --config\.([^=\s]+)=", str(error))
    if m:
      given = [o for o in overrides if o[0] == m.group(1)] or [(m.group(1), None)]
      failed = next((o for o in given if str(error).startswith(f"flag --config.{o[0]}={o[1]}:")),
                    given[-1])
  if overrides and (failed or isinstance(error, (AttributeError, KeyError))):
    config = _load_config(argv)
    if config is not None:
      for path, value in overrides:
        problem = _override_problem(config, path, value, str(error) if (path, value) == failed
                                    else None)
        if problem:
          return problem
  if isinstance(error, flags.Error):
    required = re.search(r"Flag --(\S+) must have a value other than None", str(error))
    if required:
      return f"--{required.group(1)} is required"
    return " ".join(str(error).split())
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """``absl.app.run``'s ``flags_parser``: parses ``argv``; a bad flag, override or config file
  is one line and exit status 2 (absl would print a traceback or its usage text)."""
  try:
    _check_config_file(argv)
    return flags.FLAGS(argv)
  except Exception as e:
    message = _flag_problem(argv, e)
    if message is None:
      raise
    fail(message, e, verbose=_verbosity_in(argv) >= 1)


# ---------------------------------------------------------------------------------------------
# Paths and logs.


def check_directory(flag: str, path: str) -> None:
  """``path`` is a directory or can be made one: neither it nor a parent is a file."""
  p = os.path.abspath(path)
  while not os.path.exists(p):
    p = os.path.dirname(p)
  if not os.path.isdir(p):
    where = "is a file" if p == os.path.abspath(path) else f"is below a file ({p})"
    raise Error(f"--{flag}={path}: {where}, not a directory")


def usable_checkpoints(workdir: str, step: int | None) -> str:
  """``workdir/checkpoints`` when it holds a usable checkpoint (step ``step``, or any), else
  :class:`Error` naming the flag (``rlx.export``, ``rlx.sample``)."""
  checkpoints = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(workdir):
    raise Error(f"--workdir={workdir}: no such directory")
  from rlx.runtime.checkpoint import StepVerifier
  verifier = StepVerifier(checkpoints)
  steps = verifier.steps()
  if step is None and verifier.latest_step() is None:
    raise Error(f"--workdir={workdir}: no usable checkpoint in {checkpoints}")
  if step is not None and (step not in steps or verifier.check(step) is not None):
    raise Error(f"--step={step}: no usable checkpoint step {step} in {checkpoints} (steps "
                f"there: {', '.join(map(str, steps)) or 'none'})")
  return checkpoints


def quiet_third_party_logs() -> None:
  """Third-party INFO logs (orbax logs every save and restore, absl) are hidden unless
  ``--verbosity`` is given; rlx's own lines are plain prints."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def run(main: Callable[[list[str]], object]) -> None:
  """``absl.app.run(main)`` where configuration errors, from the flags or raised by ``main``,
  print one line and exit with status 2 (see the module docstring)."""

  def guarded(argv):
    verbose = flags.FLAGS.verbosity >= 1
    quiet_third_party_logs()
    if len(argv) > 1:
      fail(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
      return main(argv)
    except Exception as e:
      # Only explicit causes: an error raised while a config error unwinds (in a finally) is a
      # bug of its own and keeps its traceback.
      message = config_problem(e, context=False)
      if message is None:
        raise
      fail(message, e, verbose=verbose)

  app.run(guarded, flags_parser=parse_flags)
