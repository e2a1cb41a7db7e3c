"""The annotator review loop: what annotators keep, fix and delete, per label (see README "Review loop")."""
