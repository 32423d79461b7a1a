"""`math.compute` as a Python WASM component (componentize-py).

n is the task input's `value` for a root step, otherwise the sum of the
parents' `value`s; the result is `{"value": op(n)}` with `config.op` one of
`square`, `add`, `multiply` (`config.operand`, default 1).

Build: componentize-py -d ../../../sdk-wit/wit -w step-handler componentize app -o math_py.wasm
"""
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.handler import ErrorKind, StepContext, StepError
from wit_world.imports import log


def fail(message: str) -> Err:
    return Err(StepError(kind=ErrorKind.PERMANENT, message=message, retry_after_ms=None))


class Handler(exports.Handler):
    def handle(self, ctx: StepContext) -> str:
        task_input = json.loads(ctx.input or "null") or {}
        parents = json.loads(ctx.parent_results or "{}") or {}
        config = json.loads(ctx.config or "{}") or {}
        if parents:
            n = 0
            for name, result in parents.items():
                value = result.get("value") if isinstance(result, dict) else None
                if not isinstance(value, int):
                    raise fail(f"parent `{name}` has no integer `value`")
                n += value
        else:
            n = task_input.get("value")
            if not isinstance(n, int):
                raise fail("input `value` must be an integer")
        operand = config.get("operand", 1)
        op = config.get("op")
        if op == "square":
            value = n * n
        elif op == "add":
            value = n + operand
        elif op == "multiply":
            value = n * operand
        else:
            raise fail(f"unknown op {op!r}")
        log.log(log.Level.DEBUG, f"{ctx.step_name} -> {value}")
        return json.dumps({"value": value, "lang": "python"})
