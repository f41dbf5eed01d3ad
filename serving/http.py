"""The ranking HTTP API: `create_app(ranker)` -> FastAPI with POST /rank, POST /reload and GET /health.

Every malformed request gets a 4xx with a one-line `detail`, never a 500: a body over the size limit 413, anything
else (bad JSON, wrong types, unknown domain, lone surrogates, too many or too long ids, too long a query) 400.
`/reload` of a checkpoint that fails verification answers 409 and keeps serving the old model. Responses are strict
JSON: a NaN/inf can never be sent (the scorer refuses non-finite scores; the encoder refuses NaN).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from models.checkpoint import CorruptCheckpointError
from models.inference import NonFiniteScoresError
from serving.body_limit import BodySizeLimit
from serving.limits import ServingLimits
from serving.ranker import Ranker
from serving.ranking_request import MAX_CANDIDATES, RankingRequestError
from unisr_data.paths import Paths

# Environment read by `app_from_env` (how `serving.cli serve` configures each uvicorn worker process);
# the request limits are `UNISR_SERVING_<FIELD>` of serving.limits.ServingLimits
ENV_CHECKPOINT = "UNISR_SERVING_CHECKPOINT"
ENV_ONLINE = "UNISR_SERVING_ONLINE"  # sqlite | redis (Redis address: $UNISR_REDIS)
ENV_WARM_UP = "UNISR_SERVING_WARM_UP"  # "0" skips loading the query encoder at startup


class RankRequest(BaseModel):
    """POST /rank body."""

    model_config = ConfigDict(extra="forbid")
    user_id: StrictStr
    domain: StrictInt | StrictStr = Field(description="domain id or name")
    query: StrictStr | None = Field(default=None, description="query text; required in search domains")
    items: list[StrictStr] = Field(description=f"1..{MAX_CANDIDATES} distinct candidate item ids (the default limit)")


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RankResponse(BaseModel):
    """Candidates sorted by score (click probability), highest first."""

    model_version: str
    items: list[ScoredItem]


def rank_body(version: str, ranked) -> bytes:
    """The /rank response as strict JSON: ValueError on a NaN/inf score instead of emitting invalid JSON."""
    return json.dumps({"model_version": version, "items": [{"item_id": r.item_id, "score": r.score} for r in ranked]},
                      allow_nan=False).encode()


def _validation_message(err: RequestValidationError) -> str:
    # field locations and pydantic's messages only: the offending input is never echoed (it may be huge, or hold
    # a lone surrogate that cannot be encoded into the response)
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = len(err.errors()) - len(parts)
    return "invalid request: " + "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def create_app(ranker: Ranker, limits: ServingLimits | None = None) -> FastAPI:
    """The ranking API around one Ranker (shared by all requests; it is thread-safe)."""
    limits = limits or ranker.limits
    app = FastAPI(title="unisr ranking", version="1")
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(err)}, status_code=400)

    # a plain `def`: FastAPI runs it in its thread pool, so one slow request (1000 candidates, a never-seen query
    # through the encoder) does not hold the event loop and stall every other connection. Scale with --workers.
    @app.post("/rank", response_model=RankResponse)
    def rank(request: RankRequest) -> Response:
        try:
            version, ranked = ranker.rank_with_version(request.user_id, request.domain, request.query, request.items)
        except RankingRequestError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
        except NonFiniteScoresError as err:
            raise HTTPException(status_code=500, detail=f"model {ranker.model_version}: {err}") from err
        # serialised directly (response_model only documents the schema): no second validation pass per item
        return Response(rank_body(version, ranked), media_type="application/json")

    @app.post("/reload")
    def reload() -> dict:
        try:
            changed = ranker.reload()
        except (CorruptCheckpointError, FileNotFoundError, KeyError) as err:  # refused, gone, not in the registry
            message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            raise HTTPException(status_code=409, detail={"error": message, "model_version": ranker.model_version,
                                                         "kept": True}) from err
        return {"model_version": ranker.model_version, "changed": changed}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model_version": ranker.model_version}

    return app


def app_from_env() -> FastAPI:
    """App for uvicorn's `--factory`: Paths from $UNISR_VAR_DIR/$UNISR_DATASET, optional pinned checkpoint, limits
    from $UNISR_SERVING_<FIELD>."""
    paths = Paths.default(os.environ.get("UNISR_DATASET", "synthetic"))
    checkpoint = os.environ.get(ENV_CHECKPOINT)
    ranker = Ranker(paths, Path(checkpoint) if checkpoint else None, online=os.environ.get(ENV_ONLINE, "sqlite"),
                    limits=ServingLimits.from_env())
    if os.environ.get(ENV_WARM_UP, "1") != "0":
        ranker.warm_up()
    return create_app(ranker)
