"""Data: prompt sources, synthetic verifiable tasks, batching, checkpointable iterators, filters.

TFDS builders for the synthetic tasks live in ``rlx.data.tfds_builders`` (imported on demand).
"""

from rlx.data.batching import ChatFormat
from rlx.data.batching import Formatter
from rlx.data.batching import PlainFormat
from rlx.data.batching import PromptBatch
from rlx.data.batching import PromptBatchIterator
from rlx.data.batching import bucket_size
from rlx.data.batching import demonstration_segments
from rlx.data.batching import make_prompt_batch
from rlx.data.batching import make_sft_batch
from rlx.data.curriculum import CurriculumIterator
from rlx.data.example import Example
from rlx.data.filters import BalancedDifficulty
from rlx.data.filters import DynamicSampling
from rlx.data.filters import FillResult
from rlx.data.filters import GroupFilter
from rlx.data.filters import GroupStats
from rlx.data.filters import RefillExhaustedWarning
from rlx.data.filters import ScoredGroups
from rlx.data.filters import StagedCurriculum
from rlx.data.filters import StdEMA
from rlx.data.filters import fill_batch
from rlx.data.filters import filter_metrics
from rlx.data.filters import group_stats
from rlx.data.iterator import ExampleIterator
from rlx.data.iterator import IteratorState
from rlx.data.iterator import epoch_order
from rlx.data.preference import LabeledCompletion
from rlx.data.preference import PreferenceJsonlSource
from rlx.data.preference import PreferencePair
from rlx.data.preference import SyntheticPreferenceSource
from rlx.data.preference import UnpairedJsonlSource
from rlx.data.preference import UnpairedView
from rlx.data.preference import make_pair_batch
from rlx.data.preference import make_unpaired_batch
from rlx.data.preference import pair_arrays
from rlx.data.sources import GSM8K
from rlx.data.sources import MATH
from rlx.data.sources import ColumnMapping
from rlx.data.sources import DataFormatError
from rlx.data.sources import HumanEvalSource
from rlx.data.sources import JsonlSource
from rlx.data.sources import MbppSource
from rlx.data.sources import ParquetSource
from rlx.data.reasoning_gym import ReasoningGymSource
from rlx.data.sources import TaskSource
from rlx.data.sources import TfdsSource
from rlx.data.sources import gsm8k_answer
from rlx.data.sources import last_boxed
from rlx.data.task_tokenizer import load_task_tokenizer
from rlx.data.task_tokenizer import train_task_tokenizer
from rlx.data.tasks import TASKS
from rlx.data.tasks import ArithmeticTask
from rlx.data.tasks import CalculationTask
from rlx.data.tasks import CountdownTask
from rlx.data.tasks import ListTask
from rlx.data.tasks import Task
from rlx.data.tasks import ToolMultiplicationTask
from rlx.data.tasks import evaluate_expression
from rlx.data.tasks import extract_answer
from rlx.data.tasks import generate_example
from rlx.data.tasks import generate_examples
from rlx.data.tasks import get_task
from rlx.data.tasks import verify

__all__ = [
    "GSM8K", "MATH", "TASKS",
    "ArithmeticTask", "BalancedDifficulty", "CalculationTask", "ChatFormat", "ColumnMapping",
    "CountdownTask", "CurriculumIterator", "DataFormatError", "DynamicSampling", "Example",
    "ExampleIterator",
    "FillResult", "Formatter", "GroupFilter", "GroupStats", "HumanEvalSource", "IteratorState",
    "JsonlSource", "LabeledCompletion", "ListTask", "MbppSource", "ParquetSource", "PlainFormat",
    "PreferenceJsonlSource",
    "PreferencePair", "PromptBatch", "PromptBatchIterator", "ReasoningGymSource",
    "RefillExhaustedWarning",
    "ScoredGroups", "StagedCurriculum", "StdEMA", "SyntheticPreferenceSource", "Task",
    "TaskSource", "TfdsSource", "ToolMultiplicationTask", "UnpairedJsonlSource", "UnpairedView",
    "bucket_size", "demonstration_segments", "epoch_order", "evaluate_expression",
    "extract_answer", "fill_batch",
    "filter_metrics", "generate_example", "generate_examples", "get_task", "group_stats",
    "gsm8k_answer", "last_boxed", "load_task_tokenizer", "make_pair_batch", "make_prompt_batch", "make_sft_batch",
    "make_unpaired_batch", "pair_arrays",
    "train_task_tokenizer", "verify",
]
