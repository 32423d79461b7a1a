// `math.compute` as a JavaScript WASM component (componentize-js).
//
// n is the task input's `value` for a root step, otherwise the sum of the
// parents' `value`s; the result is {"value": op(n)} with config.op one of
// `square`, `add`, `multiply` (config.operand, default 1).
// Built by build.mjs (componentize-js's JS API).
import { log } from "tasker:handler/log@0.1.0";

function fail(message) {
  // A thrown value becomes the `err` case: a `step-error` record.
  return { kind: "permanent", message, retryAfterMs: undefined };
}

export const handler = {
  handle(ctx) {
    const input = JSON.parse(ctx.input || "null") || {};
    const parents = JSON.parse(ctx.parentResults || "{}") || {};
    const config = JSON.parse(ctx.config || "{}") || {};
    let n;
    const names = Object.keys(parents);
    if (names.length > 0) {
      n = 0;
      for (const name of names) {
        const v = parents[name] && parents[name].value;
        if (!Number.isInteger(v)) throw fail(`parent \`${name}\` has no integer \`value\``);
        n += v;
      }
    } else {
      n = input.value;
      if (!Number.isInteger(n)) throw fail("input `value` must be an integer");
    }
    const operand = config.operand ?? 1;
    let value;
    switch (config.op) {
      case "square": value = n * n; break;
      case "add": value = n + operand; break;
      case "multiply": value = n * operand; break;
      default: throw fail(`unknown op ${JSON.stringify(config.op)}`);
    }
    log("debug", `${ctx.stepName} -> ${value}`);
    return JSON.stringify({ value, lang: "javascript" });
  },
};
