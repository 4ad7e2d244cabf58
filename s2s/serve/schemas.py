"""The JSON shapes of the HTTP API, as pydantic models: they validate requests (strictly: a
number in quotes is not a number, unknown fields are refused) and document both sides in
OpenAPI, with examples."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

TRANSLATE_EXAMPLE = {"text": ["A man rides a bike.", "Two dogs play in the snow."], "beam": 5}
TRANSLATE_EXAMPLE_FULL = {"model": "multi30k-en-de", "text": "A man rides a bike.", "beam": 4, "n_best": 2,
                          "max_len": 64, "attention": True, "alignment": True}
RESPONSE_EXAMPLE = {"model": "multi30k-en-de", "translations": [
    {"text": "Ein Mann fährt Fahrrad.", "score": -0.21},
    {"text": "Zwei Hunde spielen im Schnee.", "score": -0.18}]}
RESPONSE_EXAMPLE_FULL = {"model": "multi30k-en-de", "translations": [{
    "text": "Ein Mann fährt Rad.", "score": -0.31,
    "n_best": [{"text": "Ein Mann fährt Rad.", "score": -0.31}, {"text": "Ein Mann fährt ein Rad.", "score": -0.44}],
    "attention": {"source": ["▁A", "▁man", "▁rides", "▁a", "▁bike", ".", "</s>"],
                  "target": ["▁Ein", "▁Mann", "▁fährt", "▁Rad", ".", "</s>"],
                  "weights": [[0.9, 0.05, 0.02, 0.01, 0.01, 0.005, 0.005], [0.03, 0.9, 0.03, 0.02, 0.01, 0.005, 0.005],
                              [0.01, 0.04, 0.9, 0.03, 0.01, 0.005, 0.005], [0.01, 0.01, 0.03, 0.1, 0.84, 0.005, 0.005],
                              [0.01, 0.01, 0.01, 0.01, 0.06, 0.85, 0.05], [0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.9]]},
    "alignment": "0-0 1-1 2-2 4-3 5-4"}]}
ERROR_EXAMPLE = {"error": {"status": 413, "message": "text[3] has 5210 characters; at most 4000", "field": "text[3]"}}


class TranslateRequest(BaseModel):
    """One or several texts to translate with one model and one set of decoding settings."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [TRANSLATE_EXAMPLE, TRANSLATE_EXAMPLE_FULL]})

    text: str | list[str] = Field(description="a text, or a list of texts (translations come back in the same "
                                              "order; an empty text gets an empty translation)")
    model: str | None = Field(None, description="the model's name (GET /v1/models); needed only when the server "
                                                "has several")
    beam: int | None = Field(None, ge=1, description="beam size (1 = greedy; default: the model's)")
    n_best: int | None = Field(None, ge=1, description="hypotheses returned per text, at most beam (default 1)")
    max_len: int | None = Field(None, ge=1, description="at most this many target tokens (default: the model's "
                                                        "length ratio)")
    attention: bool = Field(False, description="return each translation's attention weights (target x source "
                                               "subword pieces)")
    alignment: bool = Field(False, description="return each translation's word alignment (Pharaoh 'i-j' pairs, "
                                               "source word i, target word j)")


class Candidate(BaseModel):
    text: str
    score: float = Field(description="length-normalised log-probability (higher is better)")


class Attention(BaseModel):
    source: list[str] = Field(description="source subword pieces")
    target: list[str] = Field(description="target subword pieces")
    weights: list[list[float]] = Field(description="one row per target piece over the source pieces")


class Translation(BaseModel):
    text: str
    score: float = Field(description="length-normalised log-probability of the best hypothesis (0 for an empty "
                                     "text)")
    n_best: list[Candidate] | None = Field(None, description="with n_best > 1: the hypotheses, best first")
    attention: Attention | None = Field(None, description="with attention: true")
    alignment: str | None = Field(None, description="with alignment: true")


class TranslateResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [RESPONSE_EXAMPLE, RESPONSE_EXAMPLE_FULL]})

    model: str
    translations: list[Translation]


class ErrorDetail(BaseModel):
    status: int
    message: str
    field: str | None = Field(None, description="the request field at fault, e.g. text[3]")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ERROR_EXAMPLE]})

    error: ErrorDetail


class ModelInfo(BaseModel):
    name: str
    path: str
    variant: str
    search: str = Field("python", description="where beam search and greedy run: python (over the step graph) or "
                                              "graph (the bundle's search.onnx, one onnxruntime call per batch)")
    model_family: str | None = None
    architecture: dict | None = None
    source_language: str | None = None
    target_language: str | None = None
    decode: dict = Field(description="the model's decoding defaults")
    limits: dict = Field(description="what a request may ask and send")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: str = Field(examples=["ok"])
