"""benchmarks/RESULTS.md's rendered tables (benchmarks/tables.py) equal a fresh rendering of the
result files they cite: a rerun benchmark whose tables were not re-rendered, or a number edited by
hand, fails here."""

import json

from benchmarks import tables


def test_the_rendered_tables_of_results_md_match_the_result_files():
    document = tables.RESULTS_MD.read_text()
    assert tables.render(document) == document, "run `python -m benchmarks.tables` and commit RESULTS.md"


def test_a_changed_result_changes_its_table(tmp_path):
    for file_names, _ in tables.TABLES.values():
        for file_name in file_names:
            (tmp_path / file_name).write_bytes((tables.HERE / "results" / file_name).read_bytes())
    result = json.loads((tmp_path / "ingestion_1000000.json").read_text())
    result["steps"]["validate"]["speedup"] = 1.234
    (tmp_path / "ingestion_1000000.json").write_text(json.dumps(result))
    document = tables.RESULTS_MD.read_text()
    assert "1.23x (1.70-1.98)" in tables.render(document, tmp_path) and "1.23x" not in document
