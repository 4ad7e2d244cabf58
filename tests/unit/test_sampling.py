"""Scheduled sampling: schedules against their formulas, ratio 1 == teacher forcing, ratio 0
feeds only the model's own (known) predictions, the transformer's two-pass path trains."""

from __future__ import annotations

import json
import math

import pytest
import torch

from s2s.config import SamplingConfig
from s2s.errors import ConfigError
from s2s.models.sampling import TokenMixing
from s2s.training.loop import Trainer, TrainSettings, build_trainer, train
from s2s.training.prepare import prepare_data
from s2s.training.sampling import gold_probability, token_mixing

TRANSFORMER = {"type": "transformer", "hidden": 16, "layers": 2, "heads": 2, "ffn": 32, "dropout": 0.0}
DECODERS = {
    "lstm": ({"type": "lstm", "hidden": 16, "layers": 2, "dropout": 0.0}, {"type": "bahdanau"}),
    "gru": ({"type": "gru", "hidden": 16, "layers": 1, "dropout": 0.0}, {"type": "luong-general"}),
    "transformer": (TRANSFORMER, {"type": "multihead", "heads": 2}),
}
BOS, PAD = 1, 0


# ---------------------------------------------------------------------------- schedules
def _at(steps, **config):
    sampling = SamplingConfig(**config)
    return [gold_probability(sampling, step) for step in steps]


def test_constant_schedule_is_the_ratio_at_every_step():
    assert _at([0, 10, 10_000], teacher_forcing_ratio=0.75) == [0.75, 0.75, 0.75]


def test_linear_schedule_is_k_minus_c_i_down_to_the_floor():
    values = _at([0, 10, 50, 100], schedule="linear", linear_start=1.0, linear_slope=0.01, floor=0.3)
    assert values == pytest.approx([1.0, 0.9, 0.5, 0.3])  # 1 - 0.01 * 100 = 0 is floored at 0.3


def test_exponential_schedule_is_k_to_the_i():
    assert _at([0, 2, 10], schedule="exponential", exponential_base=0.9) == pytest.approx([1.0, 0.81, 0.9 ** 10])


def test_inverse_sigmoid_schedule_is_k_over_k_plus_exp_i_over_k():
    values = _at([0, 23, 100_000], schedule="inverse_sigmoid", inverse_sigmoid_k=10.0)
    assert values[0] == pytest.approx(10 / 11)
    assert values[1] == pytest.approx(10 / (10 + math.exp(2.3)))  # ~0.5 near i = k ln k = 23.03
    assert 0.0 <= values[2] < 1e-300  # exp(10,000) itself would overflow a float


def test_warmup_holds_teacher_forcing_then_starts_the_schedule_at_zero():
    values = _at([0, 4, 5, 7], schedule="exponential", exponential_base=0.5, warmup_steps=5)
    assert values == [1.0, 1.0, 1.0, 0.25]


def test_teacher_forcing_takes_the_fast_path():
    assert token_mixing(SamplingConfig(), 100) is None
    assert token_mixing(SamplingConfig(schedule="linear", warmup_steps=10), 9) is None
    mixing = token_mixing(SamplingConfig(teacher_forcing_ratio=0.5, predictions="sample", temperature=2.0), 0)
    assert mixing == TokenMixing(0.5, "sample", 2.0, False)


@pytest.mark.parametrize("key,value", [("teacher_forcing_ratio", 1.5), ("exponential_base", 1.0),
                                       ("inverse_sigmoid_k", 0.5), ("temperature", 0.0), ("floor", -0.1)])
def test_bad_schedule_parameters_are_refused_naming_the_key(tiny_recipe, key, value):
    with pytest.raises(ConfigError, match=rf"train.sampling: {key} must be"):
        tiny_recipe(train={"sampling": {key: value}})


def test_first_pass_gradient_with_a_recurrent_decoder_fails_before_any_work(tiny_recipe, tmp_path):
    recipe = tiny_recipe(train={"sampling": {"teacher_forcing_ratio": 0.5, "first_pass_gradient": True}})
    with pytest.raises(ConfigError, match="model.decoder.type = 'lstm' samples token by token"):
        train(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- the mixing itself
def _model(tiny_model_factory, decoder: str):
    section, attention = DECODERS[decoder]
    return tiny_model_factory(decoder=section, attention=attention)


def _batch():
    generator = torch.Generator().manual_seed(3)
    src = torch.randint(3, 40, (3, 7), generator=generator)
    src_lengths = torch.tensor([7, 5, 6])
    tgt_in = torch.randint(3, 40, (3, 6), generator=generator)
    tgt_in[:, 0] = BOS
    tgt_in[2, 4:] = PAD
    return src, src_lengths, tgt_in


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_gold_probability_one_through_the_mixing_path_equals_teacher_forcing(tiny_model_factory, decoder):
    model = _model(tiny_model_factory, decoder)
    src, src_lengths, tgt_in = _batch()
    torch.testing.assert_close(model.features(src, src_lengths, tgt_in, TokenMixing(1.0)),
                               model.features(src, src_lengths, tgt_in), rtol=0, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_samples_follow_softmax_of_logits_over_temperature(temperature):
    torch.manual_seed(0)
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0, -30.0, 0.0])
    rows = 100_000
    ids = TokenMixing(0.0, "sample", temperature).predict(logits.expand(rows, 2, 6))
    assert ids.shape == (rows, 2)
    freq = torch.bincount(ids.flatten(), minlength=6).double() / ids.numel()
    expected = torch.softmax(logits.double() / temperature, -1)
    # binomial standard error is at most 0.5 / sqrt(200,000) ~ 0.0011
    torch.testing.assert_close(freq, expected, rtol=0, atol=0.005)
    zero = torch.tensor([0.0, float("-inf"), 0.0])  # a token of probability 0 is never drawn
    assert not (TokenMixing(0.0, "sample").predict(zero.expand(50_000, 3)) == 1).any()


@pytest.mark.parametrize("predictions", ["argmax", "sample"])
@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_gold_probability_zero_feeds_only_the_models_predictions(tiny_model_factory, decoder, predictions):
    """An output bias makes token 7 every prediction (argmax and any sample): the mixed pass must
    equal teacher forcing on BOS 7 7 7 ..., padding kept."""
    model = _model(tiny_model_factory, decoder)
    with torch.no_grad():
        model.output.bias[7] = 1e4
    src, src_lengths, tgt_in = _batch()
    fed = torch.where(tgt_in == PAD, PAD, 7)
    fed[:, 0] = BOS
    mixed = model.features(src, src_lengths, tgt_in, TokenMixing(0.0, predictions))
    torch.testing.assert_close(mixed, model.features(src, src_lengths, fed), rtol=0, atol=1e-5)
    assert not torch.allclose(mixed, model.features(src, src_lengths, tgt_in), atol=1e-3)


@pytest.mark.parametrize("decoder", ["lstm", "gru"])
def test_stepwise_sampling_at_zero_follows_the_models_own_greedy_path(tiny_model_factory, decoder):
    """Recurrent decoders predict inside the step loop, so at gold probability 0 with argmax each
    prediction follows the previous ones: the inputs are the greedy decode of the same model."""
    model = _model(tiny_model_factory, decoder)
    src, src_lengths, _ = _batch()
    memory, state = model.encode(src, src_lengths)
    tokens = [torch.full((3,), BOS)]
    for _ in range(5):
        logits, state, _ = model.step(tokens[-1], state, memory)
        tokens.append(logits.argmax(-1))
    greedy = torch.stack(tokens, 1)
    gold = torch.randint(3, 40, (3, 6))
    gold[:, 0] = BOS
    torch.testing.assert_close(model.features(src, src_lengths, gold, TokenMixing(0.0)),
                               model.features(src, src_lengths, greedy), rtol=0, atol=1e-5)


def test_transformer_two_pass_feeds_the_first_pass_predictions_of_the_gold_prefix(tiny_model_factory):
    """The two-pass method predicts every position from the gold inputs at once, so at gold
    probability 0 the second pass is fed the argmax of the teacher-forced logits, shifted by one."""
    model = _model(tiny_model_factory, "transformer")
    src, src_lengths, tgt_in = _batch()
    predicted = model(src, src_lengths, tgt_in).argmax(-1)
    fed = torch.cat([tgt_in[:, :1], predicted[:, :-1]], 1).masked_fill(tgt_in == PAD, PAD)
    torch.testing.assert_close(model.features(src, src_lengths, tgt_in, TokenMixing(0.0)),
                               model.features(src, src_lengths, fed), rtol=0, atol=1e-5)


def test_gold_mask_keeps_bos_and_padding_gold_and_follows_the_probability():
    tgt_in = torch.full((400, 50), 5)
    tgt_in[:, 0] = BOS
    tgt_in[:, 40:] = PAD
    torch.manual_seed(0)
    mask = TokenMixing(0.3).gold_mask(tgt_in, PAD)
    assert mask[:, 0].all() and mask[:, 40:].all()
    assert abs(mask[:, 1:40].float().mean().item() - 0.3) < 0.01  # 15,600 coin flips


def test_first_pass_gradient_changes_the_gradient_not_the_forward(tiny_model_factory):
    """Straight-through: the fed embeddings are the predicted tokens' either way, but only with
    ``first_pass_gradient`` does the loss reach the weights through the first pass."""
    model = _model(tiny_model_factory, "transformer").train()
    src, src_lengths, tgt_in = _batch()
    outputs, grads = [], []
    for through in (False, True):
        model.zero_grad()
        torch.manual_seed(0)  # the same coin flips
        out = model.features(src, src_lengths, tgt_in, TokenMixing(0.5, first_pass_gradient=through))
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=1e-6)
    # the output bias only shapes the first pass's predictions, so only the straight-through
    # path gives it a gradient; weights that both passes use get a different one
    assert grads[0]["output.bias"] is None and grads[1]["output.bias"].abs().sum() > 0
    inner = "decoder.layers.0.feed_forward.inner.weight"
    assert not torch.allclose(grads[0][inner], grads[1][inner], atol=1e-6)


# ---------------------------------------------------------------------------- training
def _recipe(tiny_recipe, decoder: str, sampling: dict, **train_section):
    section, attention = DECODERS[decoder]
    return tiny_recipe(model={"embeddings": {"dim": 16, "dropout": 0.1},
                              "encoder": {"type": "lstm", "hidden": 8, "layers": 2, "dropout": 0.1},
                              "attention": attention, "decoder": {**section, "dropout": 0.1}},
                       train={"max_steps": 8, "valid_every": 8, "valid_bleu": False, "best_metric": "loss",
                              "sampling": sampling, **train_section})


@pytest.mark.parametrize("decoder", ["lstm", "transformer"])
def test_ratio_one_trains_exactly_like_teacher_forcing(tiny_recipe, tmp_path, decoder):
    data = prepare_data(_recipe(tiny_recipe, decoder, {}), tmp_path)
    batches = [data.train.collate(b) for b in data.train.epoch(0)[:3]]
    runs = []
    for name, sampling in (("plain", {}), ("ratio-1", {"teacher_forcing_ratio": 1.0}),
                           ("warmup", {"schedule": "linear", "warmup_steps": 100})):
        (tmp_path / name).mkdir()
        torch.manual_seed(0)
        trainer = build_trainer(_recipe(tiny_recipe, decoder, sampling), tmp_path / name, data, torch.device("cpu"))
        losses = [trainer.train_step([b]) for b in batches]
        runs.append((losses, [p.detach() for p in trainer.model.parameters()]))
    for losses, weights in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(losses, runs[0][0]))
        assert all(torch.equal(a, b) for a, b in zip(weights, runs[0][1]))


@pytest.mark.parametrize("decoder,sampling", [
    ("lstm", {"schedule": "linear", "linear_slope": 0.1, "floor": 0.4}),
    ("gru", {"schedule": "exponential", "exponential_base": 0.8, "predictions": "sample"}),
    ("transformer", {"schedule": "inverse_sigmoid", "inverse_sigmoid_k": 2.0}),
    ("transformer", {"schedule": "linear", "linear_slope": 0.1, "first_pass_gradient": True,
                     "predictions": "sample", "temperature": 0.5}),
])
def test_scheduled_sampling_trains_and_logs_its_ratio(tiny_recipe, tmp_path, decoder, sampling):
    recipe = _recipe(tiny_recipe, decoder, sampling, max_steps=16, valid_every=16, lr=0.01)
    train(recipe, tmp_path / "run")
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [(r["step"], r["teacher_forcing_ratio"], r["train_loss"]) for r in lines if "train_loss" in r]
    assert [step for step, _, _ in logged] == list(range(2, 17, 2))
    for step, ratio, _ in logged:  # the ratio of the window's last update, 0-based step - 1
        assert ratio == pytest.approx(gold_probability(recipe.train.sampling, step - 1))
    assert logged[-1][1] < 1.0
    assert all(math.isfinite(loss) for _, _, loss in logged)
    assert logged[-1][2] < logged[0][2]  # it learns while fed its own predictions


@pytest.mark.parametrize("decoder", ["lstm", "transformer"])
def test_scheduled_sampling_resumes_exactly(tiny_recipe, tmp_path, decoder):
    """The coin flips and samples come from the checkpointed RNG: 4 + 4 updates == 8."""
    sampling = {"teacher_forcing_ratio": 0.5, "predictions": "sample"}
    full = _recipe(tiny_recipe, decoder, sampling)
    train(full, tmp_path / "full")
    train(_recipe(tiny_recipe, decoder, sampling, max_steps=4), tmp_path / "split")
    train(full, tmp_path / "split", resume=True)
    load = lambda run: torch.load(run / "checkpoints" / "last.pt", weights_only=False)["model"]  # noqa: E731
    a, b = load(tmp_path / "full"), load(tmp_path / "split")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_progress_bar_shows_the_ratio_only_when_sampling_is_on(tiny_recipe):
    from types import SimpleNamespace

    from s2s.training.loop import Position

    record = {"train_loss": 3.0, "tokens_per_s": 100.0, "teacher_forcing_ratio": 0.625}
    for sampling, shown in (({}, None), ({"teacher_forcing_ratio": 0.625}, "0.625"),
                            ({"schedule": "linear", "warmup_steps": 10}, "0.625")):
        settings = TrainSettings.from_config(tiny_recipe(train={"sampling": sampling}).train, torch.device("cpu"))
        trainer = SimpleNamespace(settings=settings, position=Position())
        assert Trainer._postfix(trainer, record).get("tf") == shown
