"""Loading specs: YAML limits, environment substitution, allowed roots, cross-field rules, unique names.

Everything a spec names is resolved here, cheaply, at load (DAG parse) time: cron strings (in the model),
estimator and notifier import paths (the module file exists and defines the class, read with `ast`, never
imported), Great Expectations expectation names (read from the installed package's source). `deep_check`
does the expensive part (imports, estimator kind vs target.task) for `nightshift validate --deep` and the
first task of a run. Every problem is a SpecError for that one file; the other specs still load.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.machinery
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nightshift import config
from nightshift.spec import expressions
from nightshift.spec.model import METRICS_BY_TASK, MAX_COLUMNS, MAX_EXPECTATIONS, MAX_GATES, Pipeline

MAX_SPEC_BYTES = 2_000_000  # a spec with 2,000 columns and long value lists stays well below
MAX_NESTING = 40  # mappings/sequences inside each other; a real spec nests about 6 deep
MAX_SPEC_VALUES = 1_000_000  # after YAML aliases are expanded; a real spec holds hundreds (thousands with long value lists)

ENV_PREFIX = "NIGHTSHIFT_"
ENV_ALLOW_SETTING = "NIGHTSHIFT_SPEC_ENV_ALLOW"
# Fields whose value legitimately differs between environments; `${VAR}` anywhere else is an error, so text shown
# to people (description, intended_use, tags, owner, notifier messages, ...) can never carry an environment value.
SUBSTITUTABLE_FIELDS = (
    "schedule.train",
    "schedule.score",
    "schedule.start_date",
    "source.uri",
    "source.score_uri",
    "source.snowflake.conn_id",
    "source.snowflake.table",
    "scoring.output_table",
    "scoring.warehouse_conn_id",
    "scoring.pool",
    "monitoring.notify.kwargs.*conn_id",
    "monitoring.notify.kwargs.channel",
    "monitoring.notify.kwargs.to",
)
REGISTRY_OWNER_TAG = "nightshift.spec_file"  # on a registered model: the spec file that owns the name

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^{}]|\{[^{}]*\})*))?\}")  # defaults may hold {ds}


class SpecError(ValueError):
    """An invalid spec: every problem with its field path, in plain words."""

    def __init__(self, path: str | Path, problems: list[tuple[str, str]], pipeline: str | None = None):
        self.path = str(path)
        self.problems = problems
        self.pipeline = pipeline  # the spec's `name`, when known (duplicate names)
        lines = [f"{self.path}: {loc or '<top>'}: {msg}" for loc, msg in problems]
        super().__init__(f"invalid pipeline spec {self.path}\n  " + "\n  ".join(lines))


def format_loc(loc: tuple[Any, ...]) -> str:
    """('features', 'numeric', 'columns', 2) -> 'features.numeric.columns[2]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- environment substitution -------------------------------------------------------------------------


def env_allow_list() -> set[str]:
    """Variable names allowed besides the `NIGHTSHIFT_` prefix: `NIGHTSHIFT_SPEC_ENV_ALLOW=CREDIT_URI,OTHER`."""
    return {name.strip() for name in os.environ.get(ENV_ALLOW_SETTING, "").split(",") if name.strip()}


def substitutable(field: str) -> bool:
    return any(fnmatch.fnmatchcase(field, pattern) for pattern in SUBSTITUTABLE_FIELDS)


def substitute_env(node: Any, loc: tuple = (), problems: list | None = None) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in the strings of per-environment fields; record problems.

    Only variables named `NIGHTSHIFT_*` or listed in NIGHTSHIFT_SPEC_ENV_ALLOW, and only in SUBSTITUTABLE_FIELDS.
    A refused reference is reported by field and variable name; its value is never read."""
    problems = [] if problems is None else problems
    if isinstance(node, dict):
        return {k: substitute_env(v, (*loc, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, (*loc, i), problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    field = format_loc(loc)
    allowed_here = substitutable(field)
    allow = env_allow_list()

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if not allowed_here:
            problems.append((field, f"${{{name}}}: environment substitution is not allowed in this field (only in "
                                    f"{', '.join(SUBSTITUTABLE_FIELDS)})"))
            return ""
        if not (name.startswith(ENV_PREFIX) or name in allow):
            problems.append((field, f"${{{name}}}: only variables named {ENV_PREFIX}* or listed in {ENV_ALLOW_SETTING} "
                                    "may be used in a spec"))
            return ""
        value = os.environ.get(name, default)
        if value is None:
            problems.append((field, f"environment variable {name} is not set and has no default"))
            return ""
        return value

    return _ENV_REF.sub(replace, node)


# --- size and shape, before the document is built ------------------------------------------------------


def _nesting_problem(text: str, loader_cls: type) -> str | None:
    """Walk the YAML events (the parser is iterative; building nodes is recursive) and measure the nesting."""
    loader = loader_cls(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_NESTING:
                    return f"the spec nests mappings or lists more than {MAX_NESTING} levels deep"
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    finally:
        loader.dispose()
    return None


def _check_shape(text: str, path: str | Path) -> None:
    fast = getattr(yaml, "CSafeLoader", None)
    try:
        problem = _nesting_problem(text, fast or yaml.SafeLoader)
    except yaml.YAMLError:
        if fast is None:
            raise
        problem = _nesting_problem(text, yaml.SafeLoader)  # PyYAML's own message, with a caret under the fault
    if problem:
        raise SpecError(path, [("", problem)])


def _too_many_values(node: Any, limit: int = MAX_SPEC_VALUES) -> bool:
    """Count values without recursion, stopping at the limit: YAML aliases (`*a`) can expand a 1 KB file into
    billions of values ("billion laughs"), which would stall the DAG processor and so hide every pipeline."""
    stack, seen = [node], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _count_problems(raw: dict) -> list[tuple[str, str]]:
    """Limits on how many columns, expectations and gates a spec declares, before pydantic validates them."""
    problems = []
    columns = raw.get("schema")
    if isinstance(columns, dict) and len(columns) > MAX_COLUMNS:
        problems.append(("schema", f"{len(columns):,} columns declared; at most {MAX_COLUMNS:,} are allowed"))
    expectations = raw.get("expectations")
    if isinstance(expectations, list) and len(expectations) > MAX_EXPECTATIONS:
        problems.append(("expectations", f"{len(expectations):,} expectations; at most {MAX_EXPECTATIONS:,} are allowed"))
    evaluation = raw.get("evaluation")
    if isinstance(evaluation, dict):
        gates = sum(len(evaluation.get(k)) for k in ("gates", "slice_gates", "fairness") if isinstance(evaluation.get(k), list))
        if gates > MAX_GATES:
            problems.append(("evaluation", f"{gates:,} gates (gates, slice_gates and fairness); at most {MAX_GATES} are allowed"))
    return problems


# --- allowed roots -----------------------------------------------------------------------------------------


def _is_local(uri: str) -> bool:
    return "://" not in uri


def local_path(uri: str) -> Path:
    """Where a local spec uri points: relative to the project root, normalised (symlinks are checked at read time)."""
    path = Path(uri)
    if not path.is_absolute():
        path = config.project_root() / path
    return Path(os.path.normpath(path))


def _root_problems(spec: Pipeline) -> list[tuple[str, str]]:
    problems = []
    roots = config.allowed_roots()
    labels = spec.monitoring.performance.labels
    for field, uri in (("source.uri", spec.source.uri), ("source.score_uri", spec.source.score_uri),
                       ("monitoring.performance.labels.uri", labels and labels.uri)):
        if uri is None or not _is_local(uri):
            continue
        path = local_path(uri.replace("{ds}", "2000-01-01").replace("{ds_nodash}", "20000101"))
        if not any(path.is_relative_to(root) for root in roots):
            problems.append((field, f"'{uri}' is outside the allowed roots ({', '.join(str(r) for r in roots)}); "
                                    "add its folder to NIGHTSHIFT_ALLOWED_ROOTS to allow it"))
    return problems


# --- import paths and expectation names, resolved without importing ---------------------------------------


def _module_file(dotted: str) -> Path | None | bool:
    """The source file of a module, found without importing it or its parents; True for a module that exists but
    has no readable source (an extension or namespace package), None when it does not exist."""
    top, *rest = dotted.split(".")
    try:
        found = importlib.util.find_spec(top)  # a top-level name: its package is located, not executed
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    if not rest:
        return Path(found.origin) if found.origin and found.origin.endswith(".py") else True
    locations = list(found.submodule_search_locations or [])
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        hit: Path | bool | None = None
        next_locations: list[str] = []
        for location in locations:
            package = Path(location) / part
            if (package / "__init__.py").is_file():
                hit, next_locations = package / "__init__.py", [str(package)]
                break
            if last and (Path(location) / f"{part}.py").is_file():
                hit = Path(location) / f"{part}.py"
                break
            if last and any((Path(location) / f"{part}{suffix}").is_file() for suffix in importlib.machinery.EXTENSION_SUFFIXES):
                hit = True
                break
            if package.is_dir():  # namespace package portion
                hit = True
                next_locations.append(str(package))
        if hit is None:
            return None
        locations = next_locations
    return hit


@functools.lru_cache(maxsize=256)
def _module_names(source_file: str, mtime: float) -> frozenset[str] | None:
    """Names a module binds at top level (classes, imports, assignments, `__all__`); None when it defines a
    module `__getattr__` (lazy attributes that only an import can tell)."""
    tree = ast.parse(Path(source_file).read_text(encoding="utf-8"), filename=source_file)
    names: set[str] = set()
    body = list(tree.body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            body += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                body += handler.body
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return None  # a star import: only an import can tell
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and isinstance(node.value, (ast.List, ast.Tuple)):
                names.update(e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return frozenset(names)


def import_path_problem(path: str, what: str) -> str | None:
    """Why `module.Class` cannot resolve, read from the module's source without importing it; None when it can
    (or when only an import could tell: extension modules, lazy `__getattr__`)."""
    module, _, name = path.rpartition(".")
    source = _module_file(module)
    if source is None:
        return f"{what} '{path}': module '{module}' is not installed"
    if source is True:
        return None
    try:
        names = _module_names(str(source), source.stat().st_mtime)
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        return f"{what} '{path}': cannot read module '{module}': {exc}"
    if names is not None and name not in names:
        return f"{what} '{path}': module '{module}' defines no '{name}'"
    return None


def expectation_class_name(name: str) -> str:
    """`expect_column_values_to_match_regex` -> `ExpectColumnValuesToMatchRegex` (as the validate step looks it up)."""
    return name if name[:1].isupper() else "".join(part.capitalize() for part in name.split("_"))


def expectation_problem(name: str) -> str | None:
    """Whether the installed great_expectations exports this expectation, read from its source files."""
    source = _module_file("great_expectations.expectations")
    if source is None or source is True:
        return None  # not installed here: deep_check (which imports it) decides
    try:
        names = _module_names(str(source), source.stat().st_mtime)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    class_name = expectation_class_name(name)
    if names is not None and class_name not in names:
        return f"unknown Great Expectations expectation '{name}' (no gx.expectations.{class_name} in the installed version)"
    return None


def _resolution_problems(spec: Pipeline) -> list[tuple[str, str]]:
    problems = []
    if spec.model.estimator and (problem := import_path_problem(spec.model.estimator, "estimator")):
        problems.append(("model.estimator", problem))
    for i, expectation in enumerate(spec.expectations):
        if problem := expectation_problem(expectation.expectation):
            problems.append((f"expectations[{i}].expectation", problem))
    notifier = spec.monitoring.notify.notifier
    if notifier and (problem := import_path_problem(notifier, "notifier")):
        problems.append(("monitoring.notify.notifier", problem))
    return problems


# --- cross-field rules -------------------------------------------------------------------------------------


def _reference_problems(spec: Pipeline) -> list[tuple[str, str]]:
    """Cross-field rules: every referenced column is declared and used consistently."""
    problems: list[tuple[str, str]] = []
    declared = spec.columns

    def need(loc: str, column: str, types: tuple[str, ...] | None = None) -> None:
        if column not in declared:
            problems.append((loc, f"column '{column}' is not declared in schema"))
        elif types and declared[column].type not in types:
            problems.append((loc, f"column '{column}' has type {declared[column].type}, expected one of {', '.join(types)}"))

    numeric = ("integer", "float", "boolean")
    for i, col in enumerate(spec.source.entity_key):
        need(f"source.entity_key[{i}]", col)
    computed = spec.source.computed_key
    if computed and computed in declared and declared[computed].type != "string":
        problems.append(("source.row_key", f"the computed key '{computed}' holds text: declare it in schema as "
                         f"{{type: string, nullable: false, unique: true}}, not {declared[computed].type}"))
    if spec.source.snowflake and not spec.source.event_time:
        problems.append(("source.event_time", "a Snowflake source needs event_time to select each run's interval"))
    if spec.source.event_time:
        need("source.event_time", spec.source.event_time, ("timestamp", "date"))
    elif spec.schedule.score and not spec.source.score_uri:
        problems.append(("source.score_uri", "sources without event_time need a score_uri templated by {ds} to be scored"))
    need("target.column", spec.target.column)
    f = spec.features
    for i, col in enumerate(f.numeric.columns):
        need(f"features.numeric.columns[{i}]", col, numeric)
    for i, col in enumerate(f.categorical.columns):
        need(f"features.categorical.columns[{i}]", col, ("string", "category", "boolean", "integer"))
    for i, col in enumerate(f.datetime.columns):
        need(f"features.datetime.columns[{i}]", col, ("date", "timestamp"))
    for i, col in enumerate(f.passthrough):
        need(f"features.passthrough[{i}]", col, numeric)
    for i, d in enumerate(f.derived):
        for col in expressions.referenced_columns(d.expr):
            need(f"features.derived[{i}].expr", col, numeric)
        if d.name in declared:
            problems.append((f"features.derived[{i}].name", f"'{d.name}' clashes with a declared column"))
    for i, col in enumerate(f.drop):
        need(f"features.drop[{i}]", col)
    used = spec.feature_columns
    if not used and not f.derived:
        problems.append(("features", "no feature columns declared"))
    for bad, where in [(spec.target.column, "the target"), *[(k, "an entity key") for k in spec.source.entity_key]]:
        if bad in used:
            problems.append(("features", f"column '{bad}' is {where} and cannot be a feature"))
    for col in f.drop:
        if col in used:
            problems.append(("features.drop", f"column '{col}' is dropped but also listed as a feature"))
    allowed = METRICS_BY_TASK[spec.target.task]
    for i, metric in enumerate(spec.metrics):
        if metric not in allowed:
            problems.append((f"evaluation.metrics[{i}]", f"'{metric}' is not a {spec.target.task} metric ({', '.join(sorted(allowed))})"))
    for i, gate in enumerate(spec.evaluation.gates):
        if gate.metric not in spec.metrics:
            problems.append((f"evaluation.gates[{i}].metric", f"'{gate.metric}' is not among evaluation.metrics"))
    if spec.model.tuning and spec.model.tuning.metric and spec.model.tuning.metric not in spec.metrics:
        problems.append(("model.tuning.metric", f"'{spec.model.tuning.metric}' is not among evaluation.metrics"))
    for i, col in enumerate(spec.evaluation.slices):
        need(f"evaluation.slices[{i}]", col)
    problems += _governance_problems(spec, need)
    problems += _guard_problems(spec)
    if spec.scoring.threshold is not None and spec.target.task != "binary":
        problems.append(("scoring.threshold", "a label threshold applies to binary tasks only"))
    performance = spec.monitoring.performance
    if performance.metric is not None and performance.metric not in spec.metrics:
        problems.append(("monitoring.performance.metric", f"'{performance.metric}' is not among evaluation.metrics"))
    return problems + _live_gate_problems(spec)


def _live_gate_problems(spec: Pipeline) -> list[tuple[str, str]]:
    """promotion.live needs the evidence it reads: the challenger shadow-scored, and realized performance computed."""
    if spec.promotion.live is None:
        return []
    problems = []
    if "challenger" not in spec.scoring.shadow:
        problems.append(("promotion.live", "live promotion needs the challenger shadow-scored: add `shadow: [challenger]` to scoring"))
    if not spec.monitoring.performance.enabled or spec.target.task not in ("binary", "regression"):
        problems.append(("promotion.live", "live promotion reads realized performance: it needs monitoring.performance enabled "
                                           "and a binary or regression target"))
    if spec.promotion.approval == "required":
        problems.append(("promotion.live", "live promotion and approval: required cannot be combined yet; choose one"))
    return problems


def _guard_problems(spec: Pipeline) -> list[tuple[str, str]]:
    """Plausibility bounds and the label guard name known metrics; acknowledged leak columns are features."""
    problems: list[tuple[str, str]] = []
    ev = spec.evaluation
    for metric in ev.plausible:
        if metric not in spec.metrics:
            problems.append((f"evaluation.plausible.{metric}", f"'{metric}' is not among evaluation.metrics"))
    if ev.label_guard.metric is not None and ev.label_guard.metric not in spec.metrics:
        problems.append(("evaluation.label_guard.metric", f"'{ev.label_guard.metric}' is not among evaluation.metrics"))
    features = {*spec.feature_columns, *(d.name for d in spec.features.derived)}
    for i, col in enumerate(ev.leak_guard.acknowledged):
        if col not in features:
            problems.append((f"evaluation.leak_guard.acknowledged[{i}]", f"'{col}' is not a feature column"))
    return problems


def _governance_problems(spec: Pipeline, need) -> list[tuple[str, str]]:
    """Slice and fairness gates refer to reported slices, known metrics and discrete columns."""
    problems: list[tuple[str, str]] = []
    ev = spec.evaluation
    for i, gate in enumerate(ev.slice_gates):
        if gate.slice not in ev.slices:
            problems.append((f"evaluation.slice_gates[{i}].slice", f"'{gate.slice}' is not among evaluation.slices"))
        if gate.metric not in spec.metrics:
            problems.append((f"evaluation.slice_gates[{i}].metric", f"'{gate.metric}' is not among evaluation.metrics"))
    for i, gate in enumerate(ev.fairness):
        need(f"evaluation.fairness[{i}].attribute", gate.attribute, ("string", "category", "boolean", "integer"))
        if spec.target.task != "binary":
            problems.append((f"evaluation.fairness[{i}].metric", f"fairness gaps apply to binary tasks only, not {spec.target.task}"))
        if gate.attribute == spec.target.column:
            problems.append((f"evaluation.fairness[{i}].attribute", "the target cannot be the sensitive attribute"))
    return problems


# --- parsing and loading -----------------------------------------------------------------------------------


def parse_spec(raw: Any, path: str | Path = "<spec>") -> Pipeline:
    """Validate an already-parsed YAML document; raise SpecError with every problem."""
    if not isinstance(raw, dict):
        raise SpecError(path, [("", "the file must hold a mapping of fields (name, source, schema, ...)")])
    if _too_many_values(raw):
        raise SpecError(path, [("", f"the spec expands to more than {MAX_SPEC_VALUES:,} values (YAML aliases?)")])
    problems = _count_problems(raw)
    if problems:
        raise SpecError(path, problems)
    resolved = substitute_env(raw, problems=problems)
    if problems:
        raise SpecError(path, problems)
    try:
        spec = Pipeline.model_validate(resolved)
    except ValidationError as exc:
        raise SpecError(path, _pydantic_problems(exc)) from None
    problems = _reference_problems(spec) + _root_problems(spec) + _resolution_problems(spec)
    if problems:
        raise SpecError(path, problems, pipeline=spec.name)
    return spec


_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|date|list\[.*\]|dict\[.*\]|[A-Z]\w*)$")


def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """One line per field: union members' errors at the same place are merged."""
    merged: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and _UNION_MEMBER.match(p) and p not in error["loc"][:1]))
        messages = merged.setdefault(format_loc(loc), [])
        if (msg := _plain(error)) not in messages:
            messages.append(msg)
    return [(loc, " or ".join(msgs)) for loc, msgs in merged.items()]


def _plain(error: dict) -> str:
    """pydantic's message, with the offending value where it helps."""
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("extra_forbidden",):
        return "unknown field (check the spelling; see include/pipeline.schema.json)"
    if error["type"] == "missing":
        return "required field is missing"
    if "input" in error and not isinstance(error["input"], (dict, list)):
        shown = repr(error["input"])
        return f"{msg} (got {shown if len(shown) <= 200 else shown[:200] + '...'})"
    return msg


def _load_yaml(text: str) -> Any:
    """libyaml when present (~6x faster; DAG parse time grows with every spec), else and on any error
    the pure-Python loader, so error messages (with a caret under the fault) stay PyYAML's own."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # noqa: S506 - CSafeLoader is the safe loader
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def load_spec(path: str | Path) -> Pipeline:
    """Read and validate one YAML spec file: size, nesting, then content."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(path, [("", f"file is larger than {MAX_SPEC_BYTES:,} bytes")])
        text = path.read_text(encoding="utf-8")
        _check_shape(text, path)
        raw = _load_yaml(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, [("", f"cannot read file: {exc}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError(path, [("", f"not valid YAML: {exc}")]) from None
    except RecursionError:  # belt and braces: the nesting check runs first
        raise SpecError(path, [("", "the spec nests too deeply to load")]) from None
    return parse_spec(raw, path)


def spec_files(folder: str | Path) -> list[Path]:
    """The YAML specs in a folder, sorted so DAG order is stable."""
    folder = Path(folder)
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def load_all(folder: str | Path) -> tuple[dict[Path, Pipeline], dict[Path, SpecError]]:
    """Load every spec; a broken one is reported, never hides the others. Two files with the same `name` are
    both errors (each names the other): neither may silently own the DAG ids and the registered model."""
    specs: dict[Path, Pipeline] = {}
    errors: dict[Path, SpecError] = {}
    by_name: dict[str, list[Path]] = {}
    for path in spec_files(folder):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            errors[path] = exc
            continue
        specs[path] = spec
        by_name.setdefault(spec.name, []).append(path)
    for name, paths in by_name.items():
        if len(paths) < 2:
            continue
        for path in paths:
            others = ", ".join(p.name for p in paths if p != path)
            errors[path] = SpecError(path, [("name", f"'{name}' is also the name of {others}: pipeline names must be unique "
                                                     "(they name the DAGs and the registered model); rename one")], pipeline=name)
            del specs[path]
    return specs, dict(sorted(errors.items()))


def find_spec(name: str, folder: str | Path | None = None) -> Pipeline:
    """The spec whose `name` field matches (used by tasks at run time)."""
    specs, errors = load_all(folder or config.pipelines_dir())
    for spec in specs.values():
        if spec.name == name:
            return spec
    for path, exc in errors.items():
        if exc.pipeline == name or path.stem == name:
            raise exc
    raise LookupError(f"no pipeline named '{name}' in {folder or config.pipelines_dir()}")


# --- the registry's owner ----------------------------------------------------------------------------------


def spec_path(name: str, folder: str | Path | None = None) -> Path | None:
    """The file that declares pipeline `name` in the specs folder (None when no valid spec does)."""
    specs, _ = load_all(folder or config.pipelines_dir())
    return next((path for path, spec in specs.items() if spec.name == name), None)


def registry_owner_id(spec_path_or_hash: str | Path) -> str:
    """What REGISTRY_OWNER_TAG holds: the spec's file name (stable across deployments and edits), or a hash as is."""
    return Path(str(spec_path_or_hash)).name


def check_registry_owner(name: str, spec_path_or_hash: str | Path, owner_tag: str | None) -> None:
    """Refuse to register under `name` when the registered model belongs to another spec file.

    `owner_tag` is the registered model's REGISTRY_OWNER_TAG (None or empty: new or untagged, so this spec may claim
    it by setting the tag). Pure logic; the train step reads the tag from MLflow and calls this before registering."""
    if not owner_tag:
        return
    mine, theirs = registry_owner_id(spec_path_or_hash), registry_owner_id(owner_tag)
    if mine != theirs:
        raise SpecError(spec_path_or_hash, [("name", f"registered model '{name}' belongs to spec '{theirs}' (tag "
                                                     f"{REGISTRY_OWNER_TAG}), not '{mine}': two specs may not share a "
                                                     "model name; rename this pipeline")], pipeline=name)


# --- the expensive checks ----------------------------------------------------------------------------------


def deep_check(spec: Pipeline) -> list[tuple[str, str]]:
    """Checks that need imports (scikit-learn, XGBoost, Great Expectations): for `nightshift validate --deep` and
    the first task of a run, never at parse time. Returns (field, problem) pairs; empty when all is well.

    - the estimator imports, is a scikit-learn estimator, constructs with model.params, is a classifier for
      binary/multiclass and a regressor for regression, and accepts every model.tuning.space parameter;
    - every extra expectation is a GX expectation class that accepts its kwargs.
    """
    problems = _estimator_problems(spec)
    problems += _expectation_deep_problems(spec)
    return problems


def _estimator_problems(spec: Pipeline) -> list[tuple[str, str]]:
    import importlib

    try:
        from sklearn.base import BaseEstimator, is_classifier, is_regressor
    except ImportError as exc:
        return [("model", f"scikit-learn cannot be imported: {exc}")]
    field = "model.estimator"
    if spec.model.flavor == "xgboost":
        field, path = "model.flavor", "xgboost.XGBRegressor" if spec.target.task == "regression" else "xgboost.XGBClassifier"
    else:
        path = spec.model.estimator
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        return [(field, f"'{path}' cannot be imported: {exc}")]
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        return [(field, f"'{path}' is not a scikit-learn estimator (no sklearn.base.BaseEstimator subclass)")]
    try:
        estimator = cls(**spec.model.params)
    except Exception as exc:  # noqa: BLE001 - any constructor failure is the spec's problem
        return [("model.params", f"'{path}' does not accept these parameters: {exc}")]
    problems = []
    wanted, check = ("regressor", is_regressor) if spec.target.task == "regression" else ("classifier", is_classifier)
    if not check(estimator):
        problems.append((field, f"'{path}' is not a {wanted}, but target.task is {spec.target.task}"))
    if spec.model.tuning and spec.model.flavor == "sklearn":
        known = set(estimator.get_params())
        for param in spec.model.tuning.space:
            if param not in known:
                problems.append((f"model.tuning.space.{param}", f"'{path}' has no parameter '{param}'"))
    return problems


def _expectation_deep_problems(spec: Pipeline) -> list[tuple[str, str]]:
    if not spec.expectations:
        return []
    try:
        import great_expectations as gx
    except ImportError as exc:
        return [("expectations", f"great_expectations cannot be imported: {exc}")]
    problems = []
    for i, expectation in enumerate(spec.expectations):
        class_name = expectation_class_name(expectation.expectation)
        cls = getattr(gx.expectations, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, gx.expectations.Expectation)):
            problems.append((f"expectations[{i}].expectation", f"unknown Great Expectations expectation '{expectation.expectation}'"))
            continue
        try:
            cls(**expectation.kwargs)
        except Exception as exc:  # noqa: BLE001 - GX validates arguments with pydantic
            first = str(exc).strip().splitlines()
            problems.append((f"expectations[{i}].kwargs", f"{class_name} rejects these arguments: {' '.join(first[:3])}"))
    return problems
