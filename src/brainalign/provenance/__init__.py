"""Provenance: code fingerprints for rerun triggers, and run manifests for shareable results."""

from .code import PACKAGE_ROOT, code_fingerprint, command_files, module_closure
from .environment import TRACKED_DISTRIBUTIONS, git_commit, package_versions
from .manifest import MANIFEST_NAME, Verification, build_manifest, read_manifest, to_json, verify, write_manifest

__all__ = ["PACKAGE_ROOT", "code_fingerprint", "command_files", "module_closure", "TRACKED_DISTRIBUTIONS",
           "git_commit", "package_versions", "MANIFEST_NAME", "Verification", "build_manifest", "read_manifest",
           "to_json", "verify", "write_manifest"]
