"""The admin of the member's caches (imported by resources.admin)."""
