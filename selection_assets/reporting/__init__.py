"""Writing what the runs found into the documents: the published results sections rendered from a
comparison (results_section), the per-item results kept behind each (published), and where in
README.md and docs/*.md each generated section lives."""
