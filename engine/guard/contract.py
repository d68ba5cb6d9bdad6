"""The FL contract a task's ``client.py`` must keep, checked on its syntax tree.

These are the names the published Auto-FL-Research validator looks for: the NVFlare Client
API calls, a strict state-dict load, ``compute_model_diff``, a DIFF upload carrying
``NUM_STEPS_CURRENT_ROUND`` and an ``if flare.is_evaluate():`` branch that sends metrics.
"""

from __future__ import annotations

import ast


def _call_name(node: ast.Call) -> str:
    """``flare.init`` for ``flare.init()``, ``FLModel`` for ``FLModel()``."""
    parts = []
    target = node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in node.keywords if kw.arg == name), None)


def _is_diff(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Attribute) and value.attr == "DIFF"


def _builds_metrics_model(nodes: list[ast.stmt]) -> bool:
    for statement in nodes:
        for node in ast.walk(statement):
            is_model = isinstance(node, ast.Call) and _call_name(node).split(".")[-1] == "FLModel"
            if is_model and _keyword(node, "metrics") is not None:
                return True
    return False


def check_client_source(source: str, filename: str = "client.py") -> list[str]:
    """One line per broken rule of the contract; empty when ``source`` keeps it."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as error:
        return [f"{filename}:{error.lineno}: does not parse: {error.msg}"]
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {_call_name(call) for call in calls}
    problems = []
    for required in ("flare.init", "flare.is_running", "flare.receive", "flare.send"):
        if required not in names:
            problems.append(f"{filename}: no call to {required}()")
    strict_loads = [
        call
        for call in calls
        if _call_name(call).endswith("load_state_dict")
        and isinstance(_keyword(call, "strict"), ast.Constant)
        and _keyword(call, "strict").value is True
    ]
    if not strict_loads:
        problems.append(f"{filename}: no load_state_dict(..., strict=True)")
    if not any(name.split(".")[-1] == "compute_model_diff" for name in names):
        problems.append(f"{filename}: no call to compute_model_diff(...)")
    diff_uploads = [
        call
        for call in calls
        if _call_name(call).split(".")[-1] == "FLModel" and _is_diff(_keyword(call, "params_type"))
    ]
    if not diff_uploads:
        problems.append(f"{filename}: no FLModel(..., params_type=ParamsType.DIFF) upload")
    strings = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    if "NUM_STEPS_CURRENT_ROUND" not in strings:
        problems.append(f'{filename}: no "NUM_STEPS_CURRENT_ROUND" in the upload meta')
    evaluate_branches = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Call)
        and _call_name(node.test) == "flare.is_evaluate"
    ]
    if not evaluate_branches:
        problems.append(f"{filename}: no `if flare.is_evaluate():` branch")
    elif not any(_builds_metrics_model(branch.body) for branch in evaluate_branches):
        problems.append(f"{filename}: the is_evaluate() branch sends no FLModel(metrics=...)")
    return problems
