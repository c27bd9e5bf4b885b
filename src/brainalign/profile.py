"""The project's SLURM profile, written where Snakemake looks for profiles by name (``brainalign profile slurm``).

``snakemake --profile slurm`` looks for a folder ``slurm`` in the working directory, then in Snakemake's user
configuration folder (``$XDG_CONFIG_HOME/snakemake``, by default ``~/.config/snakemake``), then in its site
folder. :func:`write_profile` writes ``<user folder>/slurm/config.yaml`` from the project's template
``workflow/profiles/slurm/config.yaml`` (the one source of truth) with the template's ``SITE`` values filled in:
the CPU partition, the GPU partition and GPU type of the GPU rules (those that request ``gpu``) and the account.
Values come from the flags, else from ``sinfo``/``sacctmgr``; a value neither gives is an input error.
The written file starts with :data:`MARKER`; a profile without it (someone else's) is never overwritten unless
forced. Details: docs/cluster.md ("Quick start").
"""

from __future__ import annotations

import copy
import getpass
import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ._io import atomic_output
from .errors import InputError

log = logging.getLogger(__name__)

#: first line of every profile this module writes; a profile file without it is someone else's
MARKER = "# brainalign-profile: written by `brainalign profile`"
#: the profile template, relative to the repository root
TEMPLATE = Path("workflow") / "profiles" / "slurm" / "config.yaml"
#: file names Snakemake reads as a profile's configuration (``profile.yaml``, ``config.v9+.yaml``, ...)
PROFILE_FILE = re.compile(r"(profile|config)(\.v\d+\+)?\.yaml")
#: what SLURM accepts in partition and account names (checked before writing anything)
SLURM_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
#: GPU types the SLURM executor plugin accepts in ``gpu_model`` (its own validation; no hyphens)
GPU_MODEL = re.compile(r"[A-Za-z0-9_.]+")
#: seconds to wait for sinfo / sacctmgr (against a slurmctld that is down, sinfo blocks ~10 s)
QUERY_TIMEOUT = 20


@dataclass
class Partition:
    """One partition as ``sinfo`` lists it: name, whether it is the default, GPU types -> GPUs per node."""

    name: str
    default: bool = False
    gpus: dict = field(default_factory=dict)  # GPU type ("" = untyped) -> GPUs per node


@dataclass
class Site:
    """What this cluster offers, as far as ``sinfo`` / ``sacctmgr`` tell (None: the tool was not available)."""

    partitions: list | None = None  # list[Partition]
    accounts: list | None = None  # the user's accounts, default account first


@dataclass
class SiteValues:
    """The values written into the profile, with where each came from (for the file's header and the log)."""

    partition: str
    gpu_partition: str | None  # None: no GPUs here; GPU rules run on the CPU partition without a GPU request
    gpu_type: str | None  # None: any GPU type
    account: str | None  # None: the plugin guesses
    sources: dict = field(default_factory=dict)


def profile_folder(name: str = "slurm") -> Path:
    """The folder Snakemake reads for ``--profile <name>`` outside the working directory: ``<name>`` in its
    user configuration folder (Snakemake's own lookup, so ``$XDG_CONFIG_HOME`` and the platform are honoured)."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir) / name


def template_path() -> Path:
    """The SLURM profile template: the one of the checkout this package runs from, else the working directory's."""
    candidates = [Path(__file__).resolve().parents[2] / TEMPLATE, Path.cwd() / TEMPLATE]
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(candidates[-1], "profile template not found (run from the brainalign repository root)")


# --- what the cluster says ---------------------------------------------------------------------------------

def _query(cmd: list[str]) -> str | None:
    """stdout of a SLURM query, or None when the tool is missing, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=QUERY_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("%s: %s", " ".join(cmd), exc)
        return None
    if r.returncode != 0:
        log.info("%s failed (exit %d): %s", " ".join(cmd), r.returncode, r.stderr.strip()[:300])
        return None
    return r.stdout


def parse_gres(gres: str) -> dict:
    """GPUs per node in a ``sinfo %G`` field: ``"gpu:a100:4(S:0-1),shard:8"`` -> ``{"a100": 4}``; untyped
    ``gpu:2`` -> ``{"": 2}``."""
    gpus = {}
    for item in gres.split(","):
        parts = re.sub(r"\(.*?\)", "", item.strip()).split(":")
        if parts[0] != "gpu" or len(parts) < 2:
            continue
        if len(parts) == 2:
            kind, count = ("", parts[1]) if parts[1].isdigit() else (parts[1], "1")
        else:
            kind, count = parts[1], parts[2]
        gpus[kind] = max(gpus.get(kind, 0), int(count) if count.isdigit() else 1)
    return gpus


def parse_sinfo(text: str) -> list[Partition]:
    """Partitions from ``sinfo --noheader --format=%P|%G`` (one line per partition and kind of node)."""
    found: dict[str, Partition] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        name, gres = line.strip().split("|", 1)
        default = name.endswith("*")
        name = name.rstrip("*")
        if not name:
            continue
        part = found.setdefault(name, Partition(name))
        part.default |= default
        for kind, n in parse_gres(gres).items():
            part.gpus[kind] = max(part.gpus.get(kind, 0), n)
    return list(found.values())


def discover_site(user: str | None = None) -> Site:
    """Ask ``sinfo`` for the partitions and their GPUs, ``sacctmgr`` for the user's accounts (both optional)."""
    site = Site()
    text = _query(["sinfo", "--noheader", "--format=%P|%G"])
    if text is not None:
        site.partitions = parse_sinfo(text)
    user = user or os.environ.get("USER") or getpass.getuser()
    default = _query(["sacctmgr", "--noheader", "--parsable2", "show", "user", user, "format=DefaultAccount"])
    assoc = _query(["sacctmgr", "--noheader", "--parsable2", "show", "assoc", f"user={user}", "format=Account"])
    if default is not None or assoc is not None:
        names = [a.strip() for a in (default or "").splitlines() + (assoc or "").splitlines()]
        site.accounts = list(dict.fromkeys(a for a in names if a))
    return site


# --- which values ------------------------------------------------------------------------------------------

def _check_name(flag: str, value: str, pattern=SLURM_NAME, what="a SLURM name (letters, digits, _ . + -)") -> str:
    if not pattern.fullmatch(value):
        raise InputError(flag, f"{value!r} is not {what}")
    return value


def resolve_site(site: Site, partition=None, gpu_partition=None, gpu_type=None, account=None) -> SiteValues:
    """The profile's site values: each flag if given, else what ``site`` (from :func:`discover_site`) says.

    Parameters
    ----------
    site : Site
    partition, gpu_partition, account : str, optional
        Flags. ``gpu_partition`` ``"none"``: no GPU partition (GPU rules on the CPU partition, no GPU request).
    gpu_type : str, optional
        Flag; ``"any"`` requests GPUs of any type.

    Raises
    ------
    InputError
        A name SLURM or the executor plugin would refuse, or a value neither the flags nor ``sinfo`` give.
    """
    sources = {}
    parts = site.partitions or []
    known = {p.name: p for p in parts}
    for flag, value in (("--partition", partition), ("--gpu-partition", gpu_partition)):
        if value and value != "none" and parts and value not in known:
            log.warning("%s %s: sinfo lists no such partition (it lists %s)", flag, value, ", ".join(known))

    if partition:
        sources["partition"] = "--partition"
    elif parts:
        default = [p for p in parts if p.default]
        without_gpus = [p for p in parts if not p.gpus]
        partition = (default or without_gpus or parts)[0].name
        sources["partition"] = "sinfo: the default partition" if default else "sinfo: the first partition"
    else:
        raise InputError("--partition", "sinfo is not available (or lists no partition): pass --partition "
                                        "(and --gpu-partition, --gpu-type, --account as needed)")
    _check_name("--partition", partition)

    if gpu_partition == "none":
        gpu_partition, sources["gpu_partition"] = None, "--gpu-partition none"
    elif gpu_partition:
        sources["gpu_partition"] = "--gpu-partition"
    else:
        with_gpus = [p for p in parts if p.gpus]
        others = [p for p in with_gpus if p.name != partition] or with_gpus
        named = [p for p in others if "gpu" in p.name.lower()] or others
        if named:
            gpu_partition = named[0].name
            sources["gpu_partition"] = "sinfo: a partition with GPUs" + (
                f" (also: {', '.join(p.name for p in named[1:])})" if len(named) > 1 else "")
        elif site.partitions is None:
            raise InputError("--gpu-partition", "sinfo is not available: pass --gpu-partition (or "
                                                "--gpu-partition none for a cluster without GPUs)")
        else:
            sources["gpu_partition"] = "sinfo lists no GPUs: GPU rules run on the CPU partition"
    if gpu_partition:
        _check_name("--gpu-partition", gpu_partition)

    if gpu_type == "any":
        gpu_type, sources["gpu_type"] = None, "--gpu-type any"
    elif gpu_type:
        if gpu_partition is None:
            raise InputError("--gpu-type", "given, but there is no GPU partition (pass --gpu-partition)")
        _check_name("--gpu-type", gpu_type, GPU_MODEL,
                    "a GPU type the SLURM executor plugin accepts (letters, digits, _ .)")
        sources["gpu_type"] = "--gpu-type"
    elif gpu_partition:
        types = sorted(known[gpu_partition].gpus) if gpu_partition in known else []
        typed = [t for t in types if t]
        if len(typed) == 1 and len(types) == 1 and GPU_MODEL.fullmatch(typed[0]):
            gpu_type, sources["gpu_type"] = typed[0], f"sinfo: the GPUs of {gpu_partition}"
        elif gpu_partition in known:
            sources["gpu_type"] = f"any (sinfo: GPU types of {gpu_partition}: {', '.join(types) or 'none given'})"
        else:
            sources["gpu_type"] = "any (not given; sinfo does not describe this partition)"

    if account:
        _check_name("--account", account)
        sources["account"] = "--account"
    elif site.accounts:
        account = site.accounts[0]
        sources["account"] = "sacctmgr: your default account" + (
            f" (also: {', '.join(site.accounts[1:])})" if len(site.accounts) > 1 else "")
        _check_name("--account", account)
    else:
        sources["account"] = "none (sacctmgr gave none; the plugin guesses)"
    return SiteValues(partition, gpu_partition, gpu_type, account, sources)


# --- the file ----------------------------------------------------------------------------------------------

def _quoted(name: str) -> str:
    """A name as the profile holds it: a Python string literal, since Snakemake evaluates resource values
    (an unquoted partition called ``all`` would become Python's built-in ``all``)."""
    return f"'{name}'"


def _yaml_scalar(value) -> str:
    """A value as YAML text (strings double-quoted, so ``'cpu'`` keeps its quotes)."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def site_edits(template: dict, values: SiteValues) -> tuple[dict, set]:
    """The template's entries to set (path -> value) and to remove, for ``values``.

    GPU rules are the ``set-resources`` entries that request ``gpu``.
    """
    sets, deletes = {("default-resources", "slurm_partition"): _quoted(values.partition)}, set()
    if values.account:
        sets[("default-resources", "slurm_account")] = _quoted(values.account)
    for rule, res in (template.get("set-resources") or {}).items():
        if not isinstance(res, dict) or "gpu" not in res:
            continue
        path = ("set-resources", rule)
        if values.gpu_partition is None:
            sets[path + ("slurm_partition",)] = _quoted(values.partition)
            deletes |= {path + (key,) for key in ("gpu", "gpu_model", "cpus_per_gpu") if key in res}
        else:
            sets[path + ("slurm_partition",)] = _quoted(values.gpu_partition)
            if values.gpu_type:
                sets[path + ("gpu_model",)] = _quoted(values.gpu_type)
            elif "gpu_model" in res:
                deletes.add(path + ("gpu_model",))
    return sets, deletes


def _apply_to_dict(template: dict, sets: dict, deletes: set) -> dict:
    out = copy.deepcopy(template)
    for path, value in sets.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    for path in deletes:
        node = out
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    return out


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<hash>#\s*)?(?P<key>[A-Za-z0-9_.-]+):(?P<rest>(?:\s.*)?)$")


def edit_yaml_text(text: str, sets: dict, deletes: set) -> str:
    """Set and remove block-mapping entries of a YAML text in place, keeping its comments and layout.

    Parameters
    ----------
    text : str
        YAML in block style, indented with spaces.
    sets : dict
        ``(key, subkey, ...) -> value`` (a string or a number). An entry that is only commented out
        (``# key: value``) is uncommented; a missing one is added as the first entry of its mapping.
    deletes : set of tuples
        Entries whose line is removed.
    """
    sets = {path: _yaml_scalar(value) for path, value in sets.items()}
    lines = text.splitlines()
    live, commented, headers, child_indent = {}, {}, {}, {}
    stack: list[tuple[int, str]] = []
    for n, line in enumerate(lines):
        m = _KEY_LINE.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        if m["hash"]:
            parents = [k for i, k in stack if i < indent]
            commented.setdefault(tuple(parents) + (m["key"],), n)
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = tuple(k for _, k in stack)
        child_indent.setdefault(parent, indent)
        path = parent + (m["key"],)
        live[path] = n
        if not m["rest"].split("#", 1)[0].strip():
            stack.append((indent, m["key"]))
            headers[path] = n

    def with_value(line: str, key: str, value: str) -> str:
        m = _KEY_LINE.match(line)
        head = f"{m['indent']}{key}: {value}"
        rest = m["rest"]
        comment = rest[rest.index("#"):] if "#" in rest else ""
        if not comment:
            return head
        column = line.index(comment, len(m["indent"]) + len(m["hash"] or "") + len(key) + 1)
        return head + " " * max(1, column - len(head)) + comment

    replaced: dict[int, str] = {}
    inserted: dict[int, list[str]] = {}
    for path, value in sets.items():
        if path in live:
            n = live[path]
            replaced[n] = with_value(lines[n], path[-1], value)
        elif path in commented:
            n = commented[path]
            m = _KEY_LINE.match(lines[n])
            replaced[n] = with_value(m["indent"] + lines[n][m.end("hash"):], path[-1], value)
        else:
            parent = path[:-1]
            if parent and parent not in headers:
                raise ValueError(f"no mapping {'/'.join(parent)} in the template")
            indent = child_indent.get(parent, (len(parent) * 2))
            at = headers[parent] if parent else -1
            inserted.setdefault(at, []).append(" " * indent + f"{path[-1]}: {value}")
    drop = {live[p] for p in deletes if p in live}
    out = inserted.get(-1, [])
    for n, line in enumerate(lines):
        if n in drop:
            continue
        out.append(replaced.get(n, line))
        out += inserted.get(n, [])
    return "\n".join(out) + "\n"


def profile_text(template_text: str, values: SiteValues, command: str, template: Path) -> str:
    """The profile: :data:`MARKER` and a header naming the values and their sources, then the template with its
    site values filled in (comments kept). Checked by parsing: the result must equal the template with those
    entries changed; a template the line editor cannot follow is written as plain YAML instead."""
    tpl = yaml.safe_load(template_text)
    if not isinstance(tpl, dict):
        raise InputError(template, "not a Snakemake profile (a YAML mapping)")
    sets, deletes = site_edits(tpl, values)
    want = _apply_to_dict(tpl, sets, deletes)
    try:
        body = edit_yaml_text(template_text, sets, deletes)
        ok = yaml.safe_load(body) == want
    except (ValueError, yaml.YAMLError):
        ok = False
    if not ok:
        log.info("%s: layout not followed line by line; writing it as plain YAML", template)
        body = yaml.safe_dump(want, sort_keys=False, default_flow_style=False)
    s = values.sources
    header = [
        f"{MARKER} ({command}), from {template}.",
        "# Rerun that command to refresh it; while the first line stays, it may overwrite this file.",
        "# Site values (names quoted: Snakemake evaluates resource values as Python):",
        f"#   CPU partition {values.partition!r}: {s.get('partition', '')}",
        f"#   GPU partition {values.gpu_partition!r}: {s.get('gpu_partition', '')}",
    ]
    if values.gpu_partition:
        header.append(f"#   GPU type {values.gpu_type or 'any'!r}: {s.get('gpu_type', '')}")
    header.append(f"#   account {values.account!r}: {s.get('account', '')}")
    return "\n".join(header) + "\n\n" + body


def written_by_us(path: Path) -> bool:
    """Whether a profile file starts with :data:`MARKER`."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().startswith(MARKER)
    except OSError:
        return False


def write_profile(kind: str = "slurm", *, partition=None, gpu_partition=None, gpu_type=None, account=None,
                  force: bool = False, folder=None, site: Site | None = None) -> Path:
    """Write the SLURM profile into Snakemake's user profile folder, so ``snakemake --profile slurm`` finds it.

    Parameters
    ----------
    kind : str
        The profile (``slurm``); also the folder name, i.e. the name given to ``--profile``.
    partition, gpu_partition, gpu_type, account : str, optional
        Site values; each overrides what ``sinfo`` / ``sacctmgr`` report (see :func:`resolve_site`).
    force : bool
        Overwrite a ``config.yaml`` there that this command did not write.
    folder : path, optional
        Profile folder; default :func:`profile_folder` (``~/.config/snakemake/<kind>``).
    site : Site, optional
        The cluster's description; default :func:`discover_site`.

    Returns
    -------
    Path of the written ``config.yaml``.

    Raises
    ------
    InputError
        Unknown kind, a profile there that this command did not write (naming the file), a missing site
        value or a bad name; nothing is written then.
    """
    if kind != "slurm":
        raise InputError("profile", f"unknown profile {kind!r} (one of: slurm)")
    folder = Path(folder) if folder is not None else profile_folder(kind)
    target = folder / "config.yaml"
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if not PROFILE_FILE.fullmatch(path.name) or written_by_us(path):
                continue
            if path == target and force:
                log.warning("%s: not written by brainalign; overwriting it (--force)", path)
                continue
            hint = "move it away, or pass --force to overwrite it" if path == target else \
                "Snakemake could read it instead of config.yaml; move it away"
            raise InputError(path, f"a Snakemake profile that brainalign did not write; {hint}")
    elif folder.exists():
        raise InputError(folder, "exists and is not a folder")
    template = template_path()
    values = resolve_site(discover_site() if site is None else site, partition, gpu_partition, gpu_type, account)
    command = " ".join(["brainalign profile", kind] + [
        f"{flag} {value}" for flag, value in (("--partition", partition), ("--gpu-partition", gpu_partition),
                                              ("--gpu-type", gpu_type), ("--account", account)) if value])
    text = profile_text(template.read_text(), values, command, template)
    with atomic_output(target) as tmp:
        tmp.write_text(text)
    return target
