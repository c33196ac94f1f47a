import warnings

import pytest

from mmalign._compat import renamed_keywords


@renamed_keywords(workers="jobs")
def _work(x, *, jobs=None):
    return x, jobs


def test_old_keyword_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"workers=.*pass jobs="):
        assert _work(1, workers=3) == (1, 3)


def test_new_keyword_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _work(1, jobs=2) == (1, 2)


def test_both_names_is_a_type_error():
    with pytest.raises(TypeError, match="both workers= and jobs="):
        _work(1, workers=1, jobs=2)
