"""The admin of the member's batches (imported by resources.admin)."""
