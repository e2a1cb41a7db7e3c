"""The team lead's page on the backend: every job, its progress and cost (docs/page.md)."""
