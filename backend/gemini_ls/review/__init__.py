"""The annotator review loop: what annotators keep, fix and delete, per label (see docs/review-loop.md)."""
