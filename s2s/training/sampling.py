"""Schedules of scheduled sampling (Bengio et al., 2015, section 2.4).

The probability of feeding the gold previous token at update i, where i counts updates after
``warmup_steps`` of plain teacher forcing, never below ``floor``:

* ``constant``: ``teacher_forcing_ratio``;
* ``linear``: max(floor, k - c i), k = ``linear_start``, c = ``linear_slope``;
* ``exponential``: k^i, k = ``exponential_base`` < 1;
* ``inverse_sigmoid``: k / (k + exp(i / k)), k = ``inverse_sigmoid_k`` >= 1.
"""

from __future__ import annotations

import math

from s2s import registry
from s2s.config import Recipe, SamplingConfig
from s2s.errors import ConfigError
from s2s.models.sampling import TokenMixing


def gold_probability(config: SamplingConfig, step: int) -> float:
    """The probability of feeding the gold token during update ``step`` (0-based)."""
    if step < config.warmup_steps:
        return 1.0
    i = step - config.warmup_steps
    if config.schedule == "constant":
        value = config.teacher_forcing_ratio
    elif config.schedule == "linear":
        value = config.linear_start - config.linear_slope * i
    elif config.schedule == "exponential":
        value = config.exponential_base ** i
    else:
        k = config.inverse_sigmoid_k
        value = k / (k + math.exp(min(i / k, 700.0)))  # exp overflows past ~709
    return min(1.0, max(config.floor, value))


def token_mixing(config: SamplingConfig, step: int) -> TokenMixing | None:
    """What update ``step`` feeds the decoder; None for plain teacher forcing (the fast path)."""
    probability = gold_probability(config, step)
    if probability >= 1.0:
        return None
    return TokenMixing(probability, config.predictions, config.temperature, config.first_pass_gradient)


def check_sampling(recipe: Recipe) -> None:
    """Refuse, before any work, options that the recipe's decoder cannot use."""
    decoder = recipe.model.decoder.type
    entry = registry.lookup("decoder", decoder)
    if recipe.train.sampling.first_pass_gradient and entry is not None and entry.cls.sampling == "stepwise":
        raise ConfigError(f"train.sampling.first_pass_gradient: model.decoder.type = {decoder!r} samples "
                          "token by token inside its step loop, where no gradient flows through the choice "
                          "of token; the option belongs to the two-pass method of transformer decoders")
