"""Online ranking: `Ranker.rank()` over Feast online features and the promoted checkpoint, and its HTTP API."""
from serving.limits import ServingLimits
from serving.ranker import RankedItem, Ranker
from serving.ranking_request import RankingRequestError

__all__ = ["RankedItem", "Ranker", "RankingRequestError", "ServingLimits"]
