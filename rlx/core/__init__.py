"""rlx.core: the pure math of RL post-training (spec: docs/algorithms.md §1-7).

Only jax/numpy (plus chex for argument checks and flax.struct for pytree dataclasses); no models,
configs or tokenizers. Every function is jit-, grad- and vmap-compatible; hyper-parameters are
traced arguments, variants are enums resolved once. Public functions check the ranks (and where it
matters the dtypes) of their array arguments at trace time and raise ``AssertionError`` naming the
argument, so a ``[B]`` passed where ``[B,T]`` is expected fails before anything runs.
"""

import types as _types

from rlx.core.advantages import (
    AdvantageEstimator,
    AdvantageHyper,
    AdvantageInputs,
    StdScope,
    compute_advantages,
    dr_grpo_advantages,
    gae_advantages,
    get_advantage_adapter,
    get_advantage_estimator,
    group_stats,
    grpo_advantages,
    grpo_passk_advantages,
    is_token_level,
    opo_advantages,
    reinforce_pp_advantages,
    reinforce_pp_baseline_advantages,
    remax_advantages,
    rloo_advantages,
)
from rlx.core.aggregation import (
    Aggregation,
    aggregate,
    aggregate_mean,
    aggregation_denominator,
    aggregation_numerator,
    finalize,
)
from rlx.core.kl import (
    AdaptiveKLState,
    KLEstimator,
    adaptive_kl_init,
    adaptive_kl_update,
    fixed_kl_update,
    get_kl_estimator,
    kl_abs,
    kl_in_loss,
    kl_in_reward,
    kl_k1,
    kl_k2,
    kl_k3,
    kl_penalty,
    sequence_mean_kl,
)
from rlx.core.logprobs import (
    TokenStats,
    entropy_from_logits,
    logprobs_from_hidden,
    logprobs_from_logits,
    self_certainty_from_logits,
)
from rlx.core.masked import (
    last_valid_index,
    masked_count,
    masked_fill,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    scalar_to_token_rewards,
    sequence_lengths,
)
from rlx.core.policy import (
    PolicyLoss,
    cispo_loss,
    get_policy_loss,
    gspo_loss,
    pg_loss,
    ppo_loss,
    truncated_importance_weights,
)
from rlx.core.preference import (
    PreferenceLoss,
    bradley_terry_loss,
    dpo_loss,
    get_preference_loss,
    hinge_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    log1mexp,
    orpo_loss,
    robust_dpo_loss,
    simpo_loss,
)
from rlx.core.value import entropy_bonus, total_loss, value_loss

__all__ = sorted(
    name for name, value in globals().items()
    if not name.startswith("_") and not isinstance(value, _types.ModuleType))
