"""The daily refresh's starting point: the serving champion, and how it was fine-tuned.

The daily fine-tune (orchestration's `finetune` job) does not go back to the pretrained model: it continues training
the version online ranking serves, whichever model that is, on a trailing window of the cold-start train split, with
the champion's own frozen levels. The refreshed version is registered under the champion's name and competes with it
on validation like any challenger (models/promotion.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.checkpoint import verify_file
from models.model_registry import ModelRegistry

#: A champion fine-tuned with one of these has no frozen level to keep: the refresh trains every level.
NOTHING_FROZEN = ("none", "scratch", "auto")


@dataclass(frozen=True)
class RefreshStart:
    """The champion to refresh: its registry name and version, verified checkpoint, frozen levels, pretrained origin."""

    name: str
    version: str
    checkpoint: Path
    freeze: str
    pretrained: str | None

    def registry_config(self, window_days: float) -> dict:
        """The card config of the refreshed version: the same levels frozen, the champion's pretrained origin."""
        return {"freeze": self.freeze, "freeze_config": self.freeze, "pretrained": self.pretrained,
                "refreshed_from": self.version, "window_days": window_days}


def refresh_start(registry: ModelRegistry) -> RefreshStart | None:
    """The promoted version to continue training, or None before the first promotion.

    Its checkpoint is verified against the digest recorded at registration (CorruptCheckpointError otherwise: a
    corrupt champion is never trained on)."""
    champion = registry.promoted()
    if champion is None:
        return None
    verify_file(Path(champion.checkpoint), champion.expected_sha256)
    freeze = champion.config.get("freeze") or "none"
    return RefreshStart(champion.name, champion.version, Path(champion.checkpoint),
                        "none" if freeze in NOTHING_FROZEN else freeze, champion.config.get("pretrained"))
