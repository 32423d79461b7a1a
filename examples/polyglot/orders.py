"""Orders for the polyglot demo, and the check of their results (plain
Python 3, no packages).

    python3 orders.py N                      # N order inputs, one JSON object a line
    python3 orders.py --check ORDERS TASKS   # ORDERS: that output; TASKS: `tasker task get --json`
                                             # of each order, one after the other, in the same order

The pricing rules, in integer cents (what the handlers compute):
    subtotal = Σ qty × unit_cents                                   Python   worker.py
    shipping = base + per_item × Σ qty: US 500 + 150, CA/MX 1200 + 250,
               elsewhere 2500 + 400                                  Ruby     worker.rb
    pre_tax  = subtotal + shipping                                   WASM     Rust guest
    tax      = round_half_up(pre_tax × tax_bp / 10000)               C        worker.c
    total    = pre_tax + tax                                         WASM     Python guest
    points   = total × 2                                             WASM     JavaScript guest
    charged  = total + 30 (card fee)                                 WASM     C guest
"""

import json
import random
import sys

PLACES = [("US", 825), ("CA", 1300), ("DE", 1900), ("MX", 1600), ("JP", 1000)]
SKUS = ["mug", "tee", "hoodie", "poster", "sticker-pack", "notebook", "cap", "tote"]
STEPS = [
    ("subtotal", "python"),
    ("shipping", "ruby"),
    ("pre_tax", "rust"),
    ("tax", "c"),
    ("total", "python"),
    ("points", "javascript"),
    ("charged", "c"),
]


def orders(n: int, seed: int = 17):
    rng = random.Random(seed)
    for i in range(n):
        country, tax_bp = PLACES[i % len(PLACES)]
        items = [
            {"sku": rng.choice(SKUS), "qty": rng.randint(1, 5), "unit_cents": rng.randint(99, 25_000)}
            for _ in range(rng.randint(1, 4))
        ]
        yield {"order_id": f"A-{1000 + i}", "country": country, "tax_bp": tax_bp, "items": items}


def expected(order: dict) -> dict:
    qty = sum(i["qty"] for i in order["items"])
    subtotal = sum(i["qty"] * i["unit_cents"] for i in order["items"])
    base, per_item = {"US": (500, 150), "CA": (1200, 250), "MX": (1200, 250)}.get(order["country"], (2500, 400))
    shipping = base + per_item * qty
    pre_tax = subtotal + shipping
    tax = (pre_tax * order["tax_bp"] + 5000) // 10000
    total = pre_tax + tax
    return {
        "subtotal": subtotal,
        "shipping": shipping,
        "pre_tax": pre_tax,
        "tax": tax,
        "total": total,
        "points": total * 2,
        "charged": total + 30,
    }


def json_documents(text: str):
    """The JSON values in ``text``, one after the other (pretty-printed or not)."""
    decoder, i = json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return
        value, i = decoder.raw_decode(text, i)
        yield value


def check(orders_path: str, tasks_path: str) -> int:
    inputs = [json.loads(line) for line in open(orders_path) if line.strip()]
    tasks = list(json_documents(open(tasks_path).read()))
    bad = 0
    print(
        f"{'':<18} {'Python':>9} {'Ruby':>8} {'WASM:Rust':>9} {'C':>7} {'WASM:Py':>9} {'WASM:JS':>9} {'WASM:C':>9}\n"
        f"{'order':<7} {'to':<3} {'tax_bp':>6} {'subtotal':>9} {'shipping':>8} {'pre_tax':>9} {'tax':>7} {'total':>9} {'points':>9} {'charged':>9}  state"
    )
    for order, task in zip(inputs, tasks):
        want = expected(order)
        steps = {s["name"]: s for s in task.get("steps", [])}
        got, problems = {}, []
        for name, lang in STEPS:
            result = (steps.get(name) or {}).get("result") or {}
            got[name] = result.get("value")
            if got[name] != want[name]:
                problems.append(f"{name} = {got[name]!r}, expected {want[name]}")
            elif result.get("lang") != lang:
                problems.append(f"{name} ran in {result.get('lang')!r}, expected {lang}")
        if task.get("state") != "complete":
            problems.append(f"task {task.get('state')}")
        cells = " ".join(
            f"{'-' if got[n] is None else got[n]:>{w}}"
            for n, w in [("subtotal", 9), ("shipping", 8), ("pre_tax", 9), ("tax", 7), ("total", 9), ("points", 9), ("charged", 9)]
        )
        mark = "ok" if not problems else "WRONG: " + "; ".join(problems)
        print(f"{order['order_id']:<7} {order['country']:<3} {order['tax_bp']:>6} {cells}  {task.get('state')} {mark}")
        bad += bool(problems)
    if len(tasks) != len(inputs):
        print(f"{len(inputs)} orders but {len(tasks)} tasks")
        bad += 1
    print(
        f"\n{len(inputs) - bad}/{len(inputs)} orders priced exactly "
        "(subtotal: Python, shipping: Ruby, tax: C natively; pre_tax, total, points, charged: "
        "WASM from Rust, Python, JavaScript, C)"
    )
    return 1 if bad else 0


def main(argv) -> int:
    if len(argv) == 4 and argv[1] == "--check":
        return check(argv[2], argv[3])
    if len(argv) == 2 and argv[1].isdigit():
        for order in orders(int(argv[1])):
            print(json.dumps(order))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
