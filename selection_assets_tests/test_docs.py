"""The documents stay a guide: the README short, every link between documents pointing at a file
that exists inside the repository."""

import re

from selection_assets.reporting.results_section import documents
from selection_assets_tests.conftest import REPO

README_LINES = 250


def test_the_readme_is_a_short_guide():
    assert len((REPO / "README.md").read_text().splitlines()) <= README_LINES


def test_every_link_and_path_in_the_documents_stays_inside_the_repository():
    for path in documents(REPO):
        text = path.read_text()
        assert "../shared" not in text, f"{path.name} points outside the repository"
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            resolved = (path.parent / target).resolve()
            assert resolved.is_relative_to(REPO) and resolved.exists(), f"{path.name} links to missing {target}"
