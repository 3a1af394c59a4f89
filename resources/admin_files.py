"""The admin of the member's files (imported by resources.admin)."""
