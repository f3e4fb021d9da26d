"""Safe by default: no pickle anywhere in the project's code, torch.load only with
weights_only=True, checkpoints as safetensors, remote code never trusted unless a setting asks."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("selection_assets", "benchmarks") for p in (REPO / folder).rglob("*.py"))

FORBIDDEN = {
    r"\bimport\s+(c?pickle|dill|joblib)\b|\bfrom\s+(c?pickle|dill|joblib)\s+import\b": "pickle-based serialisation",
    r"\bread_pickle\b|\bto_pickle\b": "pandas pickles",
    r"allow_pickle\s*=\s*True": "numpy arrays with pickled objects",
    r"trust_remote_code\s*=\s*True": "remote code trusted unconditionally",
    r"safe_serialization\s*=\s*False": "checkpoints saved as pickles instead of safetensors",
}


def _violations(text: str) -> list[str]:
    found = [why for pattern, why in FORBIDDEN.items() if re.search(pattern, text)]
    for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
        if "weights_only=True" not in call.group(1).replace(" ", ""):
            found.append("torch.load without weights_only=True")
    return found


def test_the_project_code_has_none_of_the_forbidden_calls():
    assert len(SOURCES) > 40
    offenders = {str(p.relative_to(REPO)): _violations(p.read_text()) for p in SOURCES}
    assert not {path: why for path, why in offenders.items() if why}


def test_the_check_catches_each_forbidden_call():
    assert _violations("import pickle") and _violations("from joblib import dump")
    assert _violations("df.to_pickle(path)") and _violations("np.load(f, allow_pickle=True)")
    assert _violations("AutoModel.from_pretrained(name, trust_remote_code=True)")
    assert _violations("model.save_pretrained(d, safe_serialization=False)")
    assert _violations("torch.load(path)") and not _violations("torch.load(path, weights_only=True)")
    assert not _violations("import json\nnp.load(path, mmap_mode='r')")
