"""NNX decoder family (Llama 3, Qwen2/2.5, Qwen3, Gemma 2), KV cache, value and reward heads,
Hugging Face checkpoint import/export and parameter counting. See docs/models.md."""

from rlx.models.checkpoint import (
    config_from_hf,
    config_to_hf,
    from_params,
    load_hf,
    save_hf,
    tensor_spec,
)
from rlx.models.config import (
    PRESETS,
    TINY,
    Activation,
    Family,
    LoRASpec,
    ModelConfig,
    RopeScaling,
    get_config,
)
from rlx.models.counting import count_params, flops_per_token
from rlx.models.heads import RewardModel, ValueModel, init_from_policy, last_valid_index
from rlx.models.sharding import DEFAULT_RULES, logical_to_spec, param_shardings
from rlx.models.transformer import (
    Decoder,
    KVCache,
    Transformer,
    abstract,
    apply,
    create,
    hidden_states,
    init_params,
    lm_head,
)

__all__ = [
    "DEFAULT_RULES",
    "PRESETS",
    "TINY",
    "Activation",
    "Decoder",
    "Family",
    "KVCache",
    "LoRASpec",
    "ModelConfig",
    "RewardModel",
    "RopeScaling",
    "Transformer",
    "ValueModel",
    "abstract",
    "apply",
    "config_from_hf",
    "config_to_hf",
    "count_params",
    "create",
    "flops_per_token",
    "from_params",
    "get_config",
    "hidden_states",
    "init_from_policy",
    "init_params",
    "last_valid_index",
    "lm_head",
    "load_hf",
    "logical_to_spec",
    "param_shardings",
    "save_hf",
    "tensor_spec",
]
