"""The ranking HTTP API: `create_app(ranker)` -> FastAPI with POST /rank, POST /reload and GET /health."""
from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from serving.ranker import Ranker
from serving.ranking_request import MAX_CANDIDATES, RankingRequestError
from unisr_data.paths import Paths

# Environment read by `app_from_env` (how `serving.cli serve` configures each uvicorn worker process)
ENV_CHECKPOINT = "UNISR_SERVING_CHECKPOINT"
ENV_ONLINE = "UNISR_SERVING_ONLINE"  # sqlite | redis (Redis address: $UNISR_REDIS)
ENV_WARM_UP = "UNISR_SERVING_WARM_UP"  # "0" skips loading the query encoder at startup


class RankRequest(BaseModel):
    """POST /rank body."""

    model_config = ConfigDict(extra="forbid")
    user_id: StrictStr
    domain: StrictInt | StrictStr = Field(description="domain id or name")
    query: StrictStr | None = Field(default=None, description="query text; required in search domains")
    items: list[StrictStr] = Field(description=f"1..{MAX_CANDIDATES} distinct candidate item ids")


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RankResponse(BaseModel):
    """Candidates sorted by score (click probability), highest first."""

    model_version: str
    items: list[ScoredItem]


def create_app(ranker: Ranker) -> FastAPI:
    """The ranking API around one Ranker (shared by all requests; it is thread-safe)."""
    app = FastAPI(title="unisr ranking", version="1")

    # async on purpose: ranking is CPU-bound under the GIL, and Starlette's thread pool added ~2 ms of CPU per
    # request at 8 concurrent clients (measured); a request holds the loop for its ~5 ms. Scale with --workers.
    @app.post("/rank", response_model=RankResponse)
    async def rank(request: RankRequest) -> Response:
        try:
            version, ranked = ranker.rank_with_version(request.user_id, request.domain, request.query, request.items)
        except RankingRequestError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
        # serialised directly (response_model only documents the schema): no second validation pass per item
        return Response(json.dumps({"model_version": version,
                                    "items": [{"item_id": r.item_id, "score": r.score} for r in ranked]}),
                        media_type="application/json")

    @app.post("/reload")
    def reload() -> dict:
        changed = ranker.reload()
        return {"model_version": ranker.model_version, "changed": changed}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model_version": ranker.model_version}

    return app


def app_from_env() -> FastAPI:
    """App for uvicorn's `--factory`: Paths from $UNISR_VAR_DIR/$UNISR_DATASET, optional pinned checkpoint."""
    paths = Paths.default(os.environ.get("UNISR_DATASET", "synthetic"))
    checkpoint = os.environ.get(ENV_CHECKPOINT)
    ranker = Ranker(paths, Path(checkpoint) if checkpoint else None, online=os.environ.get(ENV_ONLINE, "sqlite"))
    if os.environ.get(ENV_WARM_UP, "1") != "0":
        ranker.warm_up()
    return create_app(ranker)
