"""The product's settings with file storage in the deployment's data directory, for the replication e2e tests.

On main, file storage is not configured yet (the files surface adds it); these
tests only need stored bytes the gateway can read, where they cannot litter the
repository.
"""

from gemproxy_site.settings import *  # noqa: F403
from gemproxy_site.settings import DATA_DIR

MEDIA_ROOT = str(DATA_DIR / "files")
