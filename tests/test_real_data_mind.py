"""The whole pipeline on a user subset of the real MIND data produces the evaluation report and ends with a
model serving (tests/real_data.py). One module per dataset, so `make test`'s two workers can run them side by side."""
from __future__ import annotations

import pytest

from real_data import run_real_data_pipeline

pytestmark = pytest.mark.slow


# minutes on an idle 2-core machine, up to ~15 on a loaded one: twice the suite's 900 s timeout
@pytest.mark.timeout(1800)
def test_pipeline_produces_the_report_on_real_mind_data(tmp_path):
    run_real_data_pipeline("mind", "mind-small-subset", tmp_path)
