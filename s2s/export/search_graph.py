"""``search.onnx``: a bundle's whole beam search as one ONNX graph (``s2s export --search``).

The graph is composed from the bundle's own ``encoder`` and ``decoder_step`` graphs, of any model
family, without PyTorch: the encoder's nodes run once, then an ONNX ``Loop`` runs the decoder
step's nodes and the beam bookkeeping below at each target position. So every onnxruntime binding
(C, C++, C#, Java, Node.js, the browser) translates with one ``run`` call::

    src (B, S) int64, src_lengths (B,) int64
    [beam, n_best, max_len_offset, min_len, max_len, no_repeat_ngram: (1,) int64;
     max_len_ratio: (1,) float32; length_penalty, coverage_penalty: (1,) float64]
        -> tokens (B, n_best, T) int64, lengths (B, n_best) int64, scores (B, n_best) float32,
           log_probs (B, n_best) float32

The bracketed inputs are initializers holding the bundle's decoding defaults, so a caller may
leave them out. Beam 1 is greedy. The search is :func:`s2s.search.loops.beam` step for step:

- each sentence's 2K best of ``log_probs + scores`` (+ the constraint mask) over its rows x V,
  ties to the lower index (ONNX TopK, as the runtime's search head);
- candidates among the first K that end in EOS join the sentence's finished hypotheses, scored
  log P / ((5 + |Y|) / 6) ** alpha in float64 (plus the GNMT coverage penalty when it is > 0
  and the beam is wider than 1),
  until it has K; the first K candidates that are neither EOS nor -inf live on;
- EOS is banned below ``min_len``; at its maximum length (floor(ratio * |src|) + offset, within
  [max(min_len, 1), min(max_len or 1024, 1024)]) a row may only end; a token that would repeat an
  n-gram is banned;
- the first step runs one row per sentence, then K; a sentence with K finished hypotheses leaves
  the batch, and the loop stops when none is left or at the longest maximum length.

The finished hypotheses come out best first (stable: equal scores keep the order they finished
in), ``tokens`` padded with the pad id after ``lengths``, ``scores`` the ranking scores and
``log_probs`` the summed log-probabilities; a slot with no hypothesis scores -inf.
With copy attention over separate vocabularies, ids >= V are the extended ids of
:mod:`s2s.search.copying`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import GraphProto, TensorProto, helper, numpy_helper

from s2s.export.onnx_builder import Nodes, head_chunk, reachable, renamed_graph

INT64, FLOAT, DOUBLE, BOOL = TensorProto.INT64, TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.BOOL
CAP = 1024  # s2s.search.constraints.CAP: no hypothesis grows longer

# the optional inputs: name -> (ONNX type, numpy type, DecodeOptions field)
OPTION_INPUTS = {
    "beam": (INT64, np.int64, "beam"),
    "n_best": (INT64, np.int64, "n_best"),
    "length_penalty": (DOUBLE, np.float64, "length_penalty"),
    "max_len_ratio": (FLOAT, np.float32, "max_len_ratio"),
    "max_len_offset": (INT64, np.int64, "max_len_offset"),
    "min_len": (INT64, np.int64, "min_len"),
    "max_len": (INT64, np.int64, "max_len"),
    "no_repeat_ngram": (INT64, np.int64, "no_repeat_ngram"),
    "coverage_penalty": (DOUBLE, np.float64, "coverage_penalty"),
}
OUTPUTS = ("tokens", "lengths", "scores", "log_probs")


class _Loop:
    """Names shared by the builders of the loops: the carried values as the inner body receives
    them (``c``) and as the outer body does (``o``).

    Two loops: the inner one runs search steps while the batch keeps its sentences and its rows
    per sentence; the outer one then gathers the memory rows of the sentences left (from the
    encoder's output, by sentence) and starts the inner one again. So the memory is never a
    carried value: a value carried through an ``If`` branch unchanged would be copied at every
    step, and the memory is the largest tensor of the search."""

    def __init__(self, state: list[str], memory: list[str], pad: int, chunk: int):
        self.state, self.memory, self.pad, self.chunk = state, memory, pad, chunk
        self.carried = (["step", "tokens"] + [f"state.{n}" for n in state]
                        + ["scores", "history", "alive", "attended", "fin_scores", "fin_log_probs", "fin_tokens", "fin_lens",
                           "fin_count"])

    def c(self, name: str) -> str:
        return f"body/{name}"

    def o(self, name: str) -> str:
        return f"outer/{name}"


def compose_search(encoder: onnx.ModelProto, step: onnx.ModelProto, *, state: list[str], memory: list[str],
                   memory_per_sentence: bool, vocab: int, copy_extends: bool, special, defaults) -> onnx.ModelProto:
    """``search.onnx`` from a bundle's ``encoder`` and ``decoder_step`` graphs (either variant).
    ``state``/``memory``: the contract's names in order (``bundle.json``); ``vocab``: V;
    ``special``: :class:`~s2s.search.hypotheses.SpecialIds`; ``defaults``: the
    :class:`~s2s.search.options.DecodeOptions` the optional inputs hold."""
    fed = {i.name for i in step.graph.input} | {i.name for i in step.graph.initializer}
    memory = [n for n in memory if f"memory.{n}" in fed]  # the step reads these; the rest stay behind
    # the two-stage top k needs every row to have V columns (with extended copy ids it has V + S)
    loop = _Loop(state, memory, special.pad, 0 if copy_extends else head_chunk(vocab))
    g = Nodes("search/")
    inputs = [helper.make_tensor_value_info("src", INT64, ["batch", "src_len"]),
              helper.make_tensor_value_info("src_lengths", INT64, ["batch"])]
    initializers = []
    for name, (kind, dtype, field) in OPTION_INPUTS.items():
        inputs.append(helper.make_tensor_value_info(name, kind, [1]))
        initializers.append(numpy_helper.from_array(np.array([getattr(defaults, field)], dtype=dtype), name))
    enc_nodes, enc_inits, enc_shapes = renamed_graph(encoder.graph, {"src": "src", "src_lengths": "src_lengths"}, "enc/")
    initializers += enc_inits
    kept = reachable(step.graph, ["log_probs", "attention"] + [f"next.{n}" for n in state])
    mapping = {"prev_tokens": loop.c("tokens"), **{f"state.{n}": loop.c(f"state.{n}") for n in state},
               **{f"memory.{n}": f"outer/now.{n}" for n in memory}}
    step_nodes, step_inits, step_shapes = renamed_graph(step.graph, mapping, "step/", keep=kept)
    # The step's weights live in the loop body: constant there, so onnxruntime prepacks them for
    # its matrix kernels as in the step graph (read from the outer scope they are not).
    step_weights = [t for t in step_inits if t.name not in mapping.values()]
    step_nodes = _hoist_constants(step_nodes, step_weights)
    types = {i.name: i.type.tensor_type.elem_type for i in list(encoder.graph.output) + list(step.graph.input)}
    first = _start(g, loop, vocab, copy_extends, memory_per_sentence, special, types)
    body = _body(loop, step_nodes, memory_per_sentence, special, types)
    body.value_info.extend(step_shapes)
    body.initializer.extend(step_weights)
    body = _outer(loop, body, memory_per_sentence, types)
    carried_out = [g.name(f"final_{n}") for n in loop.carried]
    g.nodes.append(helper.make_node("Loop", [first["trip"], first["cond"]] + [first[n] for n in loop.carried],
                                    carried_out, name="search/loop", body=body))
    final = dict(zip(loop.carried, carried_out))
    _outputs(g, final)
    graph = helper.make_graph(enc_nodes + g.nodes, "s2s-search", inputs,
                              [helper.make_tensor_value_info("tokens", INT64, ["batch", "n_best", "steps"]),
                               helper.make_tensor_value_info("lengths", INT64, ["batch", "n_best"]),
                               helper.make_tensor_value_info("scores", FLOAT, ["batch", "n_best"]),
                               helper.make_tensor_value_info("log_probs", FLOAT, ["batch", "n_best"])],
                              initializers, value_info=enc_shapes)
    opsets = {o.domain: o.version for o in list(encoder.opset_import) + list(step.opset_import)}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="s2s")
    model.ir_version = max(encoder.ir_version, step.ir_version)
    return model


def _hoist_constants(nodes: list, initializers: list) -> list:
    """The step's ``Constant`` nodes (a position table, say) become initializers of the loop body,
    stored where weights are shared."""
    kept = []
    for node in nodes:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is None:
            kept.append(node)
            continue
        tensor = onnx.TensorProto()
        tensor.CopyFrom(value)
        tensor.name = node.output[0]
        initializers.append(tensor)
    return kept


def _start(g: Nodes, loop: _Loop, vocab: int, copy_extends: bool, per_sentence: bool, special, types) -> dict:
    """The loop's initial values: one row per sentence (K when V < 2K, as the Python search),
    BOS, scores 0, no history, no finished hypothesis; the trip count, the limits, and the
    values every step reads (``search/...``), computed here once."""
    beam, src = "beam", "src"
    batch = g.shape(src, 0)
    src_len = g.shape(src, 1)
    width_w = g.identity(g("Add", g.i64([vocab]), src_len) if copy_extends else g.i64([vocab]), "vocab")
    twice = g.identity(g("Mul", beam, g.i64([2])), "twice_k")
    g.identity(g.range(twice), "ranks")  # 0 .. 2K - 1
    g.identity(g("Reshape", g.range(beam), g.i64([1, 1, -1])), "slots")  # (1, 1, K)
    width = g("Where", g("GreaterOrEqual", width_w, twice), g.i64([1]), beam)
    expand = g.flat(g("Expand", g.unsqueeze(g.range(batch), 1), g.cat(batch, width)))
    rows = g("Mul", batch, width)
    v = {"tokens": g("Expand", g.i64([special.bos]), rows)}
    for n in loop.state:
        v[f"state.{n}"] = g("Gather", f"enc/state.{n}", expand, axis=0)
    first = g("Equal", g.range(width), g.i64(0))
    v["scores"] = g("Expand", g("Where", first, g.f32(0.0), g.f32(-np.inf)), g.cat(batch, width))
    v["history"] = g.filled(g.cat(rows, g.i64([0])), INT64, 0)
    v["alive"] = g.range(batch)
    v["attended"] = g.filled(g.cat(rows, src_len), FLOAT, 0.0)
    max_lens = g.identity(_max_lengths(g), "max_lens")
    longest = g("ReduceMax", max_lens, keepdims=1)  # (1,): no hypothesis grows longer
    g.identity(longest, "longest")
    v["fin_scores"] = g.filled(g.cat(batch, beam), DOUBLE, -np.inf)
    v["fin_log_probs"] = g.filled(g.cat(batch, beam), FLOAT, -np.inf)
    v["fin_tokens"] = g.filled(g.cat(batch, beam, longest), INT64, special.pad)
    v["fin_lens"] = g.filled(g.cat(batch, beam), INT64, 0)
    v["fin_count"] = g.filled(batch, INT64, 0)
    g.identity(g.i64([special.eos]), "eos")
    g.identity(g.scalar(g("Equal", beam, g.i64([1]))), "greedy")
    g.identity(g.scalar("min_len"), "min_len")
    # below this step no sentence is at its maximum length (the shortest limit of the batch)
    g.identity(g("ReduceMin", max_lens, keepdims=0), "shortest")
    n = g.scalar("no_repeat_ngram")  # n-grams are checked from step n on (none when n = 0)
    g.identity(g("Where", g("Greater", n, g.i64(0)), n, g.i64(CAP + 1)), "ngram_from")
    v["step"] = g.i64(0)
    v["trip"] = g.identity(g.scalar(g("Add", longest, g.i64([1]))), "trip")
    v["cond"] = g.const(np.array(True))
    return v


def _max_lengths(g: Nodes) -> str:
    """:func:`s2s.search.constraints.max_lengths`: floor(|src| * ratio) + offset, clipped to
    [min(max(min_len, 1), cap), cap], cap = min(max_len, 1024) when max_len > 0."""
    limit = g("Add", g("Cast", g("Floor", g("Mul", g("Cast", "src_lengths", to=FLOAT), "max_len_ratio")), to=INT64),
              "max_len_offset")
    cap = g("Where", g("Greater", "max_len", g.i64([0])), g("Min", "max_len", g.i64([CAP])), g.i64([CAP]))
    low = g("Min", g("Max", "min_len", g.i64([1])), cap)
    return g("Min", g("Max", limit, low), cap)


def _body(loop: _Loop, step_nodes: list, per_sentence: bool, special, types) -> GraphProto:
    """One search step: the decoder step, the constraint mask, the top 2K, and then, when an EOS
    is among a sentence's first K candidates, finished hypotheses and survivors (an ``If``: most
    steps take the first K as they are, as :func:`s2s.search.candidates.choose` does); last, the
    batch without its finished sentences. The common step runs few nodes: each costs
    onnxruntime a few microseconds, and at batch 1 they add up to the step's own cost."""
    g = Nodes("body/")
    c = loop.c
    t = c("step")
    blocks = g.shape(c("alive"), 0)
    width = g("Div", g.shape(c("tokens"), 0), blocks)
    values, index = _scored(g, loop, t, width, blocks, loop.chunk)
    top_beam, top_token = g("Div", index, "search/vocab"), g("Mod", index, "search/vocab")
    first_score = g("Slice", c("scores"), g.i64([0]), g.i64([1]), g.i64([1]))  # (A, 1): greedy's one row each
    values = g("Add", values, g("Where", "search/greedy", first_score, g.f32(0.0)))
    first_k = g("Slice", top_token, g.i64([0]), "beam", g.i64([1]))
    eos_in_k = g("Cast", g("ReduceMax", g("Cast", g("Equal", first_k, "search/eos"), to=TensorProto.INT32),
                           keepdims=0), to=BOOL)
    attended = g("Add", c("attended"), "step/attention")
    names = ("fin_scores", "fin_log_probs", "fin_lens", "fin_tokens", "fin_count", "scores", "beams", "chosen", "live")
    kinds = [DOUBLE, FLOAT, INT64, INT64, INT64, FLOAT, INT64, INT64, BOOL]
    common = Nodes("common/")
    kept = [common.identity(c(n)) for n in names[:5]] + [
        common("Slice", values, common.i64([0]), "beam", common.i64([1])),
        common("Slice", top_beam, common.i64([0]), "beam", common.i64([1])), common.identity(first_k),
        common("Less", common("Gather", c("fin_count"), c("alive"), axis=0), "beam")]  # greedy keeps done rows
    chosen = g("If", eos_in_k, outs=len(names), then_branch=_choose(loop, t, values, top_beam, top_token, width, blocks,
                                                                     attended, names, kinds),
               else_branch=common.graph("first_k", kept, kinds))
    return _next(g, loop, dict(zip(names, chosen)), attended, width, blocks, step_nodes, per_sentence, types)


def _scored(g: Nodes, loop: _Loop, t: str, width: str, blocks: str, chunk: int) -> list[str]:
    """The top 2K of log_probs + scores (N, W) (:func:`_top`), with the constraint mask added
    when a constraint may bite this step, as in :class:`s2s.search.constraints.Constraints`: a mask row by row at or past the
    batch's shortest limit or with n-grams to check; else below min_len one (V,) row banning EOS."""
    c = loop.c
    # greedy (beam 1) ranks each row's raw log-probabilities, as s2s.search.loops.greedy does
    # (adding the row's score first could round two candidates to a tie), and adds the score after
    scores = g("Reshape", g("Where", "search/greedy", g.f32(0.0), c("scores")), g.i64([-1, 1]))
    below_min = g("Less", t, "search/min_len")
    per_row = g("Or", g("GreaterOrEqual", t, "search/shortest"), g("GreaterOrEqual", t, "search/ngram_from"))
    m = Nodes("mask/")
    limit_hit = m("LessOrEqual", m("Gather", "search/max_lens", c("alive"), axis=0), t)  # (A,)
    n = m.scalar("no_repeat_ngram")
    windows = m("Where", m("Greater", n, m.i64(0)), m("Max", m("Add", m("Sub", t, n), m.i64(1)), m.i64(0)), m.i64(0))
    vocab = "search/vocab"
    col = m.range(vocab)
    is_eos = m("Equal", col, "search/eos")
    at_limit = m("Reshape", m("Expand", m.unsqueeze(limit_hit, 1), m.cat(blocks, width)), m.i64([-1, 1]))
    others = m("Or", m("And", is_eos, below_min), _ngram_bans(m, c("history"), t, n, windows, vocab))
    banned = m("Or", m("And", at_limit, m("Not", is_eos)), m("And", m("Not", at_limit), others))
    mask = m("Where", banned, m.f32(-np.inf), m.f32(0.0))
    masked = m("Add", "step/log_probs", m("Add", scores, mask))
    # no row at a limit and no n-gram to check: at most EOS is banned (below min_len), the same
    # column for every row
    # Below min_len alone, EOS is dropped from a top list widened by one candidate per row (at
    # most one EOS each), as the Python search does: the same 2K as with EOS masked, without a
    # pass over the (N, V) scores.
    eos, plain = Nodes("eos_banned/"), Nodes("plain/")
    unmasked = plain("Add", "step/log_probs", scores)
    widened = eos("Add", "step/log_probs", scores)
    wide_values, wide_index = _top(eos, widened, blocks, eos("Add", "search/twice_k", width), chunk)
    is_eos = eos("Equal", eos("Mod", wide_index, "search/vocab"), "search/eos")
    order = eos("Add", eos("Mul", eos("Cast", is_eos, to=INT64), eos.i64(CAP * CAP)),
                eos.range(eos.shape(wide_index, 1)))
    _, kept = eos("TopK", order, "search/twice_k", axis=1, largest=0, outs=2)
    without_eos = [eos("GatherElements", wide_values, kept, axis=1), eos("GatherElements", wide_index, kept, axis=1)]
    rows = Nodes("same_for_all/")
    # each branch ends in the top 2K, so that only (A, 2K) values leave it: onnxruntime copies
    # what an If returns, and the (N, V) scores would be copied at every step
    kinds = [FLOAT, INT64]
    same = rows("If", below_min, outs=2, then_branch=eos.graph("without_eos", without_eos, kinds),
                else_branch=plain.graph("unmasked", _top(plain, unmasked, blocks, "search/twice_k", chunk), kinds))
    return g("If", per_row, outs=2, then_branch=m.graph("masked", _top(m, masked, blocks, "search/twice_k", chunk),
                                                         kinds),
             else_branch=rows.graph("same_for_all_rows", same, kinds))


def _top(g: Nodes, total: str, blocks: str, k: str, chunk: int) -> list[str]:
    """Each sentence's k best of its rows x W scores, largest first, ties to the lower index:
    values (A, k), indices (A, k). With ``chunk`` (:func:`s2s.export.onnx_builder.head_chunk` of V) in
    two stages, as the step graph's search head: each chunk's maximum, the k best chunks in
    index order, then the top k of those chunks' candidates (the same result, a third of the
    time for a (32, 40000) top 10)."""
    flat = g("Reshape", total, g.cat(blocks, g.i64([-1])))
    if not chunk:
        return g("TopK", flat, k, axis=1, outs=2)
    chunks = g("Reshape", flat, g.i64([0, -1, chunk]))  # (A, C, c)
    best = g("ReduceMax", chunks, axes=[2], keepdims=0)
    kc = g("Min", k, g.shape(best, 1))  # k may exceed the chunks
    _, best_chunks = g("TopK", best, kc, axis=1, outs=2)
    chosen, _ = g("TopK", best_chunks, kc, axis=1, largest=0, outs=2)  # the chosen chunks in index order
    where = g.flat_rows(g("Add", g("Mul", g.unsqueeze(chosen, 2), g.i64(chunk)), g.i64(np.arange(chunk))))
    values, picked = g("TopK", g("GatherElements", flat, where, axis=1), k, axis=1, outs=2)
    return [values, g("GatherElements", where, picked, axis=1)]


def _ngram_bans(m: Nodes, history: str, t: str, n: str, windows: str, vocab: str) -> str:
    """(N, W) True where a token would complete an n-gram the row already holds: for each of
    the ``windows`` earlier positions i whose n - 1 tokens equal the row's last n - 1, the token
    at i + n - 1 (:meth:`s2s.search.constraints.Constraints.ngram_bans`)."""
    # n - 1, or 0 when no window is checked (n = 0, or too few tokens yet): the shapes then agree
    before = m("Where", m("Greater", windows, m.i64(0)), m("Sub", n, m.i64(1)), m.i64(0))
    starts = m.range(windows)  # (Wn,)
    spans = m("Add", m.unsqueeze(starts, 1), m.unsqueeze(m.range(before), 0))  # (Wn, n-1)
    grams = m("Gather", history, spans, axis=1)  # (N, Wn, n-1)
    suffix = m("Slice", history, m.unsqueeze(m("Sub", t, before), 0), m.unsqueeze(t, 0), m.i64([1]))  # (N, n-1)
    differ = m("ReduceSum", m("Cast", m("Not", m("Equal", grams, m.unsqueeze(suffix, 1))), to=INT64), m.i64([2]),
               keepdims=0)
    following = m("Gather", history, m("Add", starts, before), axis=1)  # (N, Wn)
    target = m("Where", m("Equal", differ, m.i64(0)), following, m.scalar(vocab))  # no match: a spare column
    rows = m.shape(history, 0)
    spare = m.filled(m.cat(rows, m("Add", vocab, m.i64([1]))), FLOAT, 0.0)
    hits = m("ScatterElements", spare, target, m("Expand", m.f32(1.0), m("Shape", target)), axis=1)
    return m("Greater", m("Slice", hits, m.i64([0]), vocab, m.i64([1])), m.f32(0.0))


def _choose(loop: _Loop, t: str, values: str, top_beam: str, top_token: str, width: str, blocks: str, attended: str,
            names: tuple, kinds: list) -> GraphProto:
    """The step when some sentence has an EOS among its first K candidates (an ``If`` branch):
    those that are not -inf join the sentence's finished hypotheses in rank order until it has K
    (:meth:`s2s.search.candidates.StepChoice.finish`), and the first K candidates that are
    neither EOS nor -inf live on (:func:`s2s.search.candidates.survivors`)."""
    c = loop.c
    f = Nodes("finish/")
    first_k = {name: f("Slice", x, f.i64([0]), "beam", f.i64([1])) for name, x in
               (("values", values), ("token", top_token), ("beam", top_beam))}
    ends = f("And", f("Equal", first_k["token"], "search/eos"), f("Not", f("IsInf", first_k["values"])))
    count = f("Gather", c("fin_count"), c("alive"), axis=0)
    slot = f("Sub", f("Add", f.unsqueeze(count, 1), f("CumSum", f("Cast", ends, to=INT64), f.i64(1))), f.i64(1))
    accept = f("And", ends, f("Less", slot, "beam"))
    count = f("Add", count, f("ReduceSum", f("Cast", accept, to=INT64), f.i64([1]), keepdims=0))
    rows_k = f("Add", f("Mul", f.unsqueeze(f.range(blocks), 1), width), first_k["beam"])  # (A, K)
    length_penalty = f("Pow", f("Div", f("Add", f("Cast", t, to=DOUBLE), f.f64(6.0)), f.f64(6.0)), "length_penalty")
    score = _coverage(f, loop, f("Div", f("Cast", first_k["values"], to=DOUBLE), length_penalty), rows_k, attended)
    onehot = f("And", f.unsqueeze(accept, 2), f("Equal", f.unsqueeze(slot, 2), "search/slots"))
    hot = f("Cast", onehot, to=TensorProto.INT32)
    filled = f("Greater", f("ReduceMax", hot, axes=[1], keepdims=0), f.i32(0))  # (A, K slots)
    rank = f("ArgMax", hot, axis=1, keepdims=0)  # which candidate fills each slot
    tokens = f("Gather", c("history"), f("GatherElements", rows_k, rank, axis=1), axis=0)  # (A, K, t)
    pads = f("Concat", f.i64([0, 0, 0, 0, 0]), f("Sub", "search/longest", f.unsqueeze(t, 0)), axis=0)
    where = f.unsqueeze(c("alive"), 1)
    out = []
    for name, new in (("fin_scores", f("GatherElements", score, rank, axis=1)),
                      ("fin_log_probs", f("GatherElements", first_k["values"], rank, axis=1)), ("fin_lens", t),
                      ("fin_tokens", f("Pad", tokens, pads, f.i64(loop.pad)))):
        old = f("Gather", c(name), c("alive"), axis=0)
        keep = f.unsqueeze(filled, 2) if name == "fin_tokens" else filled
        out.append(f("ScatterND", c(name), where, f("Where", keep, new, old)))
    out.append(f("ScatterND", c("fin_count"), where, count))
    banned = f("Or", f("Equal", top_token, "search/eos"), f("IsInf", values))
    order = f("Add", f("Mul", f("Cast", banned, to=INT64), "search/twice_k"), "search/ranks")
    _, keep = f("TopK", order, "beam", axis=1, largest=0, outs=2)
    out.append(f("Where", f("GatherElements", banned, keep, axis=1), f.f32(-np.inf),
                 f("GatherElements", values, keep, axis=1)))
    out += [f("GatherElements", top_beam, keep, axis=1), f("GatherElements", top_token, keep, axis=1)]
    out.append(f("Less", count, "beam"))
    return f.graph("choose", out, kinds)


def _coverage(f: Nodes, loop: _Loop, score: str, rows_k: str, attended: str) -> str:
    """score + the GNMT coverage penalty beta * sum_i log(min(sum_t a_ti, 1)) over each
    sentence's real source positions (:class:`s2s.search.hypotheses.CoveragePenalty`), when
    beta > 0 (greedy leaves it out, as :func:`s2s.search.loops.search` does)."""
    p = Nodes("coverage/")
    sums = p("Cast", p("Gather", attended, rows_k, axis=0), to=DOUBLE)  # (A, K, S)
    lengths = p("Gather", "src_lengths", loop.c("alive"), axis=0)
    real = p("Less", p("Reshape", p.range(p.shape(attended, 1)), p.i64([1, 1, -1])),
             p("Reshape", lengths, p.i64([-1, 1, 1])))
    logs = p("Where", real, p("Log", p("Min", sums, p.f64(1.0))), p.f64(0.0))
    penalized = p("Add", score, p("Mul", "coverage_penalty", p("ReduceSum", logs, p.i64([2]), keepdims=0)))
    same = Nodes("no_coverage/")
    unchanged = same.identity(score)
    on = f("And", f.scalar(f("Greater", "coverage_penalty", f.f64(0.0))), f("Not", "search/greedy"))
    return f("If", on, then_branch=p.graph("penalized", [penalized], [DOUBLE]),
             else_branch=same.graph("unpenalized", [unchanged], [DOUBLE]))


def _next(g: Nodes, loop: _Loop, chosen: dict, attended: str, width: str, blocks: str, step_nodes: list,
          per_sentence: bool, types) -> GraphProto:
    """The carried values of the next step: sentences with K finished hypotheses leave; the
    state, history and attention sums follow the surviving rows; the memory follows the
    sentences (and grows from one row to K per sentence after the first step).

    Greedy keeps every row to the end, feeding EOS to finished ones, as
    :func:`s2s.search.loops.greedy` does: with int8 graphs a row's numbers depend on the other
    rows of its batch (activations are quantized per tensor), so the batch must stay the same
    to give the same tokens."""
    c = loop.c
    live = chosen["live"]
    stay = g("Squeeze", g("NonZero", g("Or", live, "search/greedy")), g.i64([0]))  # (A',)
    rows = g.flat(g("Gather", g("Add", g("Mul", g.unsqueeze(g.range(blocks), 1), width), chosen["beams"]), stay,
                    axis=0))
    tokens = g("Where", g("Not", g.unsqueeze(live, 1)), "search/eos", chosen["chosen"])  # (A, K)
    nxt = {"tokens": g.flat(g("Gather", tokens, stay, axis=0)), "scores": g("Gather", chosen["scores"], stay, axis=0),
           "alive": g("Gather", c("alive"), stay, axis=0), "attended": g("Gather", attended, rows, axis=0)}
    for n in loop.state:
        nxt[f"state.{n}"] = g("Gather", f"step/next.{n}", rows, axis=0)
    nxt["history"] = g("Concat", g("Gather", c("history"), rows, axis=0), g.unsqueeze(nxt["tokens"], 1), axis=1)
    nxt.update({n: chosen[n] for n in ("fin_scores", "fin_log_probs", "fin_lens", "fin_tokens", "fin_count")})
    nxt["step"] = g("Add", c("step"), g.i64(1))
    # go on while a sentence is left and the batch keeps its sentences and its rows per sentence
    # (else the outer loop gathers the memory for the new batch)
    same = g("Equal", g.shape(stay, 0), blocks)
    if not per_sentence:
        same = g("And", same, g("Equal", width, "beam"))
    cond = g("And", g.scalar(same), g("Cast", g("ReduceMax", g("Cast", live, to=TensorProto.INT32), keepdims=0),
                                      to=BOOL))
    outputs = [helper.make_tensor_value_info(cond, BOOL, [])]
    outputs += [helper.make_tensor_value_info(nxt[n], _kind(n, types), None) for n in loop.carried]
    inputs = [helper.make_tensor_value_info("body/i", INT64, []), helper.make_tensor_value_info("body/cond", BOOL, [])]
    inputs += [helper.make_tensor_value_info(c(n), _kind(n, types), None) for n in loop.carried]
    return helper.make_graph(step_nodes + g.nodes, "search_step", inputs, outputs)


def _outer(loop: _Loop, inner: GraphProto, per_sentence: bool, types) -> GraphProto:
    """The outer loop's body: the memory rows of the batch's sentences (one per sentence, or one
    per state row), then the inner loop of search steps until the batch changes."""
    o = loop.o
    g = Nodes("outer/")
    alive = o("alive")
    if per_sentence:
        rows = alive
    else:  # state row r belongs to sentence alive[r // width]
        width = g("Div", g.shape(o("tokens"), 0), g.shape(alive, 0))
        rows = g.flat(g("Expand", g.unsqueeze(alive, 1), g.cat(g.shape(alive, 0), width)))
    for n in loop.memory:
        g.nodes.append(helper.make_node("Gather", [f"enc/memory.{n}", rows], [f"outer/now.{n}"], axis=0,
                                        name=f"outer/now.{n}/node"))
    left = g("Sub", "search/trip", o("step"))
    final = [g.name(f"inner_{n}") for n in loop.carried]
    g.nodes.append(helper.make_node("Loop", [left, g.const(np.array(True))] + [o(n) for n in loop.carried], final,
                                    name="outer/inner_loop", body=inner))
    after = dict(zip(loop.carried, final))
    # a sentence without K finished hypotheses is left (greedy keeps finished ones in the batch)
    unfinished = g("Less", g("Gather", after["fin_count"], after["alive"], axis=0), "beam")
    going = g("And", g("Cast", g("ReduceSum", g("Cast", unfinished, to=INT64), keepdims=0), to=BOOL),  # 0 when none
              g("Less", after["step"], "search/trip"))
    outputs = [helper.make_tensor_value_info(going, BOOL, [])]
    outputs += [helper.make_tensor_value_info(after[n], _kind(n, types), None) for n in loop.carried]
    inputs = [helper.make_tensor_value_info("outer/i", INT64, []), helper.make_tensor_value_info("outer/cond", BOOL, [])]
    inputs += [helper.make_tensor_value_info(o(n), _kind(n, types), None) for n in loop.carried]
    return helper.make_graph(g.nodes, "search_batch", inputs, outputs)


def _kind(name: str, types: dict) -> int:
    fixed = {"step": INT64, "tokens": INT64, "scores": FLOAT, "history": INT64, "alive": INT64, "attended": FLOAT,
             "fin_scores": DOUBLE, "fin_log_probs": FLOAT, "fin_tokens": INT64, "fin_lens": INT64, "fin_count": INT64}
    return fixed[name] if name in fixed else types[name]


def _outputs(g: Nodes, final: dict) -> None:
    """Each sentence's n_best finished hypotheses, best first; TopK keeps equal scores in slot
    order, which is the order they finished in (Python's stable sort)."""
    best, order = g("TopK", final["fin_scores"], "n_best", axis=1, outs=2)
    shape = g("Shape", final["fin_tokens"])
    index = g("Expand", g.unsqueeze(order, 2),
              g.cat(g("Slice", shape, g.i64([0]), g.i64([1])), "n_best", g("Slice", shape, g.i64([2]), g.i64([3]))))
    for name, source, at in (("tokens", "fin_tokens", index), ("lengths", "fin_lens", order),
                             ("log_probs", "fin_log_probs", order)):
        g.nodes.append(helper.make_node("GatherElements", [final[source], at], [name], axis=1, name=f"search/{name}"))
    g.nodes.append(helper.make_node("Cast", [best], ["scores"], to=FLOAT, name="search/scores"))


def write_search_graph(bundle_dir: Path, variant: str, meta: dict, special, defaults) -> str:
    """Compose and write ``search[.variant].onnx`` beside the variant's graphs; returns its name."""
    files = meta["graphs"]["variants"][variant]
    encoder = onnx.load(str(bundle_dir / files["encoder"]))
    step = onnx.load(str(bundle_dir / files["decoder_step"]))
    graphs = meta["graphs"]
    model = compose_search(encoder, step, state=[s["name"] for s in graphs["state"]],
                           memory=[m["name"] for m in graphs["memory"]],
                           memory_per_sentence=bool(graphs.get("memory_per_sentence")),
                           vocab=int(meta["vocab"]["target_size"]), copy_extends=bool(graphs.get("copy_extends")),
                           special=special, defaults=defaults)
    name = "search.onnx" if variant == "fp32" else f"search.{variant}.onnx"
    onnx.save(model, str(bundle_dir / name))
    return name
