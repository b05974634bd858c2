"""What a run found and how far to trust it: findings, label audit, cross-check, run comparison, review, validation."""
