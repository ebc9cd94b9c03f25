import pytest

import nlp
from nlp import resources


@pytest.fixture(scope="session")
def analyzer():
    return nlp.load()


@pytest.fixture(scope="session")
def reviews_path():
    path = resources.train_data_path()
    if not path.exists():
        pytest.skip(f"training data not available at {path}")
    return path
