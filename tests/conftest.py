import os

import numpy as np
import pytest
from hypothesis import settings

# JIT compilation and Monte Carlo checks would trip hypothesis' default deadline.
settings.register_profile("ddpm", deadline=None, max_examples=25, print_blob=True)
settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "ddpm")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
