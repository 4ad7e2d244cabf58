"""PyTorch against onnxruntime on a freshly written bundle; any difference fails the export.

Checks, on a sample batch: the step's log-probabilities and next state over several teacher-
forced steps (max abs difference <= 1e-4), then greedy and beam-5 search of the one search loop
(:mod:`s2s.search.loops`) driving the PyTorch model and driving the onnxruntime sessions: the
same tokens for every sentence.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from s2s.data.vocab import Vocabs
from s2s.decoding.translator import Translator as ModelTranslator
from s2s.errors import BundleError
from s2s.export.onnx import sample_batch
from s2s.runtime.translator import Translator
from s2s.search.options import DecodeOptions

TOLERANCE = 1e-4
DEFAULT_SAMPLE = [
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Two young children are playing in the sand at the beach.",
    "A group of people stand in front of an igloo.",
    "A dog runs through the grass.",
    "Several women wait outside in a city.",
    "A little girl climbs into a wooden playhouse while her brother watches from the stairs.",
]


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.dtype == bool or b.dtype == bool:
        return 0.0 if np.array_equal(a, b) else float("inf")
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return float("inf")
    return float(np.abs(a[finite].astype(np.float64) - b[finite]).max(initial=0.0))


def check_steps(model, runtime: Translator, src: torch.Tensor, lengths: torch.Tensor, steps: int = 6) -> float:
    """Largest difference of memory, log-probs and state over ``steps`` teacher-forced steps."""
    worst = 0.0
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
        o_memory, o_state = runtime.encode(src.numpy(), lengths.numpy())
        for name in memory:
            worst = max(worst, _max_diff(o_memory[name], memory[name].numpy()))
        for tokens in _probe_tokens(src.size(0), runtime.vocab_size, steps, runtime.bos):
            ours, state, attn = model.log_probs(tokens, state, memory)
            log_probs, o_state, o_attn = runtime.step(tokens.numpy(), o_state, o_memory)
            worst = max(worst, _max_diff(log_probs, ours.numpy()),
                        _max_diff(o_attn, attn.numpy()),
                        *(_max_diff(o_state[n], state[n].numpy()) for n in state))
            o_state = {n: state[n].numpy() for n in state}  # continue both from the same state
    return worst


def _probe_tokens(batch: int, vocab: int, steps: int, bos: int):
    """The tokens fed at the probed steps: BOS, then seeded random non-special tokens."""
    gen = torch.Generator().manual_seed(1)
    yield torch.full((batch,), bos, dtype=torch.long)
    for _ in range(steps - 1):
        yield torch.randint(4, vocab, (batch,), generator=gen)


def float64_errors(model, runtime: Translator, src: torch.Tensor, lengths: torch.Tensor,
                   steps: int = 6, exact=None) -> dict[str, float]:
    """Each engine's largest error against the same PyTorch model evaluated in float64.

    :func:`check_steps` measures how far the two float32 engines are from each other; this says
    which of them is off. Both encoders are compared with the float64 encoder; every step of both
    engines starts from the float64 memory and state rounded to float32, so the step errors are
    each step's own and do not accumulate. Keys: ``{torch,runtime}_{memory,log_probs,state}``.
    ``exact``: the float64 copy of ``model``, to reuse across batches (made here when None)."""
    exact = exact if exact is not None else copy.deepcopy(model).double().eval()
    worst = {f"{engine}_{what}": 0.0 for engine in ("torch", "runtime") for what in ("memory", "log_probs", "state")}

    def note(key: str, got: np.ndarray, truth: torch.Tensor) -> None:
        worst[key] = max(worst[key], _max_diff(np.asarray(got), truth.numpy()))

    def single(tensors: dict) -> dict:
        return {n: v.float() if v.is_floating_point() else v for n, v in tensors.items()}

    with torch.no_grad():
        memory64, state64 = exact.encode(src, lengths)
        memory, _ = model.encode(src, lengths)
        o_memory, _ = runtime.encode(src.numpy(), lengths.numpy())
        for name, truth in memory64.items():
            if truth.is_floating_point():
                note("torch_memory", memory[name].numpy(), truth)
                note("runtime_memory", o_memory[name], truth)
        memory = single(memory64)  # both engines step from the exact memory, rounded
        o_memory = {n: v.numpy() for n, v in memory.items()}
        for tokens in _probe_tokens(src.size(0), runtime.vocab_size, steps, runtime.bos):
            state = single(state64)
            truth, next64, _ = exact.log_probs(tokens, state64, memory64)
            ours, new_state, _ = model.log_probs(tokens, state, memory)
            log_probs, o_state, _ = runtime.step(tokens.numpy(), {n: v.numpy() for n, v in state.items()}, o_memory)
            note("torch_log_probs", ours.numpy(), truth)
            note("runtime_log_probs", log_probs, truth)
            for name in next64:
                note("torch_state", new_state[name].numpy(), next64[name])
                note("runtime_state", o_state[name], next64[name])
            state64 = next64
    return worst


def check_search(model, vocabs: Vocabs, runtime: Translator, ids: list[list[int]], beam: int) -> int:
    """Sentences whose tokens differ between the search over PyTorch and over the runtime."""
    options = DecodeOptions(beam=beam, length_penalty=0.0)
    with torch.inference_mode():
        ours = ModelTranslator(model, vocabs, options).search_batch(ids, options)
    theirs = runtime.search_batch(ids, options)
    return sum(a[0].tokens != b[0].tokens for a, b in zip(ours, theirs))


def verify(model, vocabs: Vocabs, bundle_dir: Path, sample: list[str] | None = None) -> dict:
    model = model.eval().cpu()
    runtime = Translator.load(bundle_dir, "fp32", providers=["CPUExecutionProvider"])
    src, lengths = sample_batch(model.src_embed.num_embeddings)
    worst = check_steps(model, runtime, src, lengths)
    if not worst <= TOLERANCE:
        raise BundleError(f"{bundle_dir}: onnxruntime differs from PyTorch by {worst:.3g} (> {TOLERANCE}) "
                          "in memory, log-probs, attention or state; the export is not usable")
    ids = vocabs.src.encode(sample or DEFAULT_SAMPLE)
    for beam in (1, 5):
        differ = check_search(model, vocabs, runtime, ids, beam)
        if differ:
            raise BundleError(f"{bundle_dir}: the runtime's {'greedy' if beam == 1 else f'beam-{beam}'} "
                              f"output differs from PyTorch's on {differ} of {len(ids)} sample sentences")
    report = {"max_abs_diff": worst, "sample_sentences": len(ids), "greedy_equal": True, "beam5_equal": True}
    if (bundle_dir / "decoder_step.int8.onnx").is_file():
        int8 = Translator.load(bundle_dir, "int8", providers=["CPUExecutionProvider"])
        report["int8_sample_agreement"] = float(np.mean(
            [a == b for a, b in zip(int8.translate(sample or DEFAULT_SAMPLE, beam=1),
                                    runtime.translate(sample or DEFAULT_SAMPLE, beam=1))]))
    return report
