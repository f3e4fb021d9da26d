"""Code versions follow what the code does: comments, docstrings and layout change nothing, any
change of code changes them, and a method's assets cover the shared method code it runs."""

import inspect

from dagster import AssetKey

from selection_assets.assets import _shared
from selection_assets.core import methods as methods_package
from selection_assets.definitions import build_assets
from selection_assets.partitions import Grid

FUNCTION = '''
def top(scores, budget):
    """Highest first."""
    return scores[:budget]  # ties: earlier row first
'''


def test_comments_docstrings_and_layout_keep_the_version_and_code_changes_it():
    same = FUNCTION.replace('    """Highest first."""\n', "").replace("  # ties: earlier row first", "")
    same = same.replace("scores[:budget]", "scores[ : budget ]") + "\n# a trailing comment\n"
    assert _shared.behaviour(same) == _shared.behaviour(FUNCTION)
    assert _shared.behaviour(FUNCTION.replace("[:budget]", "[-budget:]")) != _shared.behaviour(FUNCTION)
    assert _shared.behaviour(FUNCTION.replace("budget]", "budget + 0]")) != _shared.behaviour(FUNCTION)


def _versions(keys: list[str]) -> dict[str, str]:
    assets = {key: a for a in build_assets(Grid((100, 200), (50,))) for key in a.keys}
    return {key: assets[AssetKey.from_user_string(key)].get_asset_spec(AssetKey.from_user_string(key)).code_version
            for key in keys}


def test_a_change_to_shared_method_code_changes_every_method_score_and_selection(monkeypatch):
    keys = ["random/scores", "random/selection", "rds_plus/scores", "rds_plus/selection"]
    before = _versions(keys)
    original = inspect.getsource

    def with_shared_code_changed(obj):
        text = original(obj)
        return text + "\nTIE_BREAK = 'later row first'\n" if obj is methods_package else text

    monkeypatch.setattr(_shared.inspect, "getsource", with_shared_code_changed)
    after = _versions(keys)
    assert all(after[key] != before[key] for key in keys), (before, after)
