"""Make the repository importable as ``ansible_collections.meshpki.vault_ca`` for plain pytest.

The repository root is the collection root. Python (and ansible-playbook) need it under
``<path>/ansible_collections/meshpki/vault_ca``: ``.collections/`` (git-ignored) holds that
path as a symlink back to the repository, and is put first on ``sys.path`` and
``ANSIBLE_COLLECTIONS_PATH`` so tests use this checkout, never an installed copy.
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".collections")


def ensure_collection_link():
    ns_dir = os.path.join(COLLECTIONS, "ansible_collections", "meshpki")
    link = os.path.join(ns_dir, "vault_ca")
    if not os.path.islink(link):
        os.makedirs(ns_dir, exist_ok=True)
        try:
            os.symlink(REPO, link)
        except FileExistsError:  # another xdist worker won the race
            pass
    return COLLECTIONS


ensure_collection_link()
for _path in (COLLECTIONS, os.path.join(REPO, "tests")):  # tests/ holds the ``harness`` package
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
# Tests never read the developer's own Vault settings by accident.
for _var in ("VAULT_ADDR", "BAO_ADDR", "VAULT_TOKEN", "BAO_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT",
             "VAULT_SKIP_VERIFY", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY"):
    os.environ.pop(_var, None)
