"""Handlers for examples/python/diamond.yaml: a function, an async function
and a StepHandler class."""

import asyncio

import tasker


def apply(op: str, x: int, operand: int = 0) -> int:
    if op == "square":
        return x * x
    if op == "add":
        return x + operand
    if op == "multiply":
        return x * operand
    # Retrying cannot fix a template that asks for an unknown op.
    raise tasker.PermanentError(f"unknown op {op!r}")


def value_of(ctx: tasker.StepContext) -> int:
    """The sum of the parents' results, or the task's input for a root step."""
    if ctx.parent_results:
        return sum(ctx.parent_results.values())
    return ctx.input["value"]


@tasker.handler("py.math")
class MathHandler(tasker.StepHandler):
    def call(self, context: tasker.StepContext) -> int:
        return apply(context.config["op"], value_of(context), context.config.get("operand", 0))


@tasker.handler("py.math_async")
async def math_async(context: tasker.StepContext) -> int:
    await asyncio.sleep(0.01)  # e.g. an HTTP call with an async client
    return apply(context.config["op"], value_of(context), context.config.get("operand", 0))
