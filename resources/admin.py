"""The admin of files, cached contents and batches: one module per feature."""

from resources import admin_batches, admin_caches, admin_files  # noqa: F401 (they register themselves)
