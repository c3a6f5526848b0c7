#!/usr/bin/env python3
"""Writes the solverd model corpus: every model in CPLEX LP and in fixed MPS, and models.json.

The expected objectives come from the construction where it is cheap to know them (knapsack by
dynamic programming, assignment and small market split by enumeration) and are written as
numbers checked by hand otherwise (see each model's comment). The files are committed; rerun this
script after changing it:  python3 tests/solverd/models/generate.py

Usage: generate.py [--market-split M SEED OUT.lp]   (one extra instance, for experiments)

MPS has no standard way to say "maximize" that every reader accepts (CoinMpsIO 2.11 has no
OBJSENSE section), so a maximization model's MPS file minimizes the negated objective, and its
expected objective in models.json is negated too.
"""
import itertools
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Model:
    """A linear model: sense, objective, rows (name, {var: coef}, '<='|'>='|'=', rhs), bounds."""

    def __init__(self, name, sense="min"):
        self.name = name
        self.sense = sense
        self.objective = {}
        self.rows = []
        self.columns = []  # declaration order, so every writer lists columns the same way
        self.bounds = {}   # var -> (lo, hi); hi None means +infinity
        self.integers = set()

    def var(self, name, lo=0, hi=None, integer=False):
        if name not in self.bounds:
            self.columns.append(name)
        self.bounds[name] = (lo, hi)
        if integer:
            self.integers.add(name)
        return name

    def row(self, name, coefs, op, rhs):
        self.rows.append((name, dict(coefs), op, rhs))


def num(v):
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def linear(coefs, columns):
    terms = []
    for c in columns:
        if c in coefs and coefs[c] != 0:
            v = coefs[c]
            sign = "-" if v < 0 else "+"
            terms.append(f"{sign} {num(abs(v))} {c}")
    text = " ".join(terms)
    if text.startswith("+ "):
        text = text[2:]
    return text or "0 " + columns[0]


def wrap(prefix, text, width=72):
    """CPLEX LP allows a row to continue on the next line; long rows stay readable."""
    out, line = [], prefix
    for tok in text.split(" "):
        if len(line) + len(tok) + 1 > width and line.strip():
            out.append(line.rstrip())
            line = "   "
        line += tok + " "
    out.append(line.rstrip())
    return "\n".join(out)


def write_lp(m, path):
    cols = m.columns
    lines = [f"\\ {m.name}", "Maximize" if m.sense == "max" else "Minimize"]
    lines.append(wrap(" obj: ", linear(m.objective, cols)))
    lines.append("Subject To")
    ops = {"<=": "<=", ">=": ">=", "=": "="}
    for name, coefs, op, rhs in m.rows:
        lines.append(wrap(f" {name}: ", linear(coefs, cols) + f" {ops[op]} {num(rhs)}"))
    lines.append("Bounds")
    for c in cols:
        lo, hi = m.bounds[c]
        if hi is None:
            if lo != 0:
                lines.append(f" {c} >= {num(lo)}")
        else:
            lines.append(f" {num(lo)} <= {c} <= {num(hi)}")
    ints = [c for c in cols if c in m.integers]
    if ints:
        lines.append("Generals")
        for i in range(0, len(ints), 8):
            lines.append(" " + " ".join(ints[i:i + 8]))
    lines.append("End")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_mps(m, path):
    """Fixed MPS with short names (every reader takes it: CoinMpsIO, glp_read_mps free and deck)."""
    flip = -1 if m.sense == "max" else 1
    cols = m.columns
    out = [f"NAME          {m.name[:8].upper()}", "ROWS", " N  OBJ"]
    kind = {"<=": "L", ">=": "G", "=": "E"}
    for name, _, op, _ in m.rows:
        out.append(f" {kind[op]}  {name}")
    out.append("COLUMNS")
    in_int = False
    marker = 0
    for c in cols:
        is_int = c in m.integers
        if is_int and not in_int:
            out.append(f"    MARKER{marker:<4}  'MARKER'                 'INTORG'")
            marker += 1
            in_int = True
        elif not is_int and in_int:
            out.append(f"    MARKER{marker:<4}  'MARKER'                 'INTEND'")
            marker += 1
            in_int = False
        entries = []
        if m.objective.get(c, 0) != 0:
            entries.append(("OBJ", flip * m.objective[c]))
        for name, coefs, _, _ in m.rows:
            if coefs.get(c, 0) != 0:
                entries.append((name, coefs[c]))
        if not entries:
            entries.append(("OBJ", 0))
        for rname, v in entries:
            out.append(f"    {c:<8}  {rname:<8}  {num(v):>12}")
    if in_int:
        out.append(f"    MARKER{marker:<4}  'MARKER'                 'INTEND'")
    out.append("RHS")
    for name, _, _, rhs in m.rows:
        if rhs != 0:
            out.append(f"    RHS       {name:<8}  {num(rhs):>12}")
    out.append("BOUNDS")
    for c in cols:
        lo, hi = m.bounds[c]
        # Integer columns get both bounds written: readers disagree on an integer column's
        # default upper bound (1 in some MPS dialects, infinity in others).
        if lo != 0 or c in m.integers:
            out.append(f" LO BND       {c:<8}  {num(lo):>12}")
        if hi is not None:
            out.append(f" UP BND       {c:<8}  {num(hi):>12}")
    out.append("ENDATA")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ---- the models ---------------------------------------------------------------------------------

def knapsack():
    values = [92, 57, 49, 68, 60, 43, 67, 84, 87, 72]
    weights = [23, 31, 29, 44, 53, 38, 63, 85, 89, 82]
    cap = 165
    m = Model("knapsack", "max")
    for i in range(len(values)):
        m.var(f"x{i}", 0, 1, integer=True)
        m.objective[f"x{i}"] = values[i]
    m.row("cap", {f"x{i}": weights[i] for i in range(len(values))}, "<=", cap)
    best = [0] * (cap + 1)  # 0/1 knapsack by dynamic programming
    for v, w in zip(values, weights):
        for c in range(cap, w - 1, -1):
            best[c] = max(best[c], best[c - w] + v)
    return m, best[cap]


def assignment():
    cost = [[9, 2, 7, 8, 6], [6, 4, 3, 7, 5], [5, 8, 1, 8, 9], [7, 6, 9, 4, 3], [2, 5, 6, 3, 8]]
    n = len(cost)
    m = Model("assign", "min")
    for i in range(n):
        for j in range(n):
            m.var(f"x{i}_{j}", 0, 1, integer=True)
            m.objective[f"x{i}_{j}"] = cost[i][j]
    for i in range(n):
        m.row(f"w{i}", {f"x{i}_{j}": 1 for j in range(n)}, "=", 1)
    for j in range(n):
        m.row(f"t{j}", {f"x{i}_{j}": 1 for i in range(n)}, "=", 1)
    best = min(sum(cost[i][p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
    return m, best


def transportation():
    # Balanced: supply 50+60+50 = demand 30+40+50+40. The optimum, 1330, is what glpsol and clp
    # report for both files (no closed form here).
    supply = [50, 60, 50]
    demand = [30, 40, 50, 40]
    cost = [[8, 6, 10, 9], [9, 12, 13, 7], [14, 9, 16, 5]]
    m = Model("transp", "min")
    for i in range(3):
        for j in range(4):
            m.var(f"s{i}_d{j}")
            m.objective[f"s{i}_d{j}"] = cost[i][j]
    for i in range(3):
        m.row(f"sup{i}", {f"s{i}_d{j}": 1 for j in range(4)}, "<=", supply[i])
    for j in range(4):
        m.row(f"dem{j}", {f"s{i}_d{j}": 1 for i in range(3)}, ">=", demand[j])
    return m, 1330


def production():
    # max 3x + 5y, x <= 4, 2y <= 12, 3x + 2y <= 18: optimum 36 at (2, 6) (the textbook LP).
    m = Model("product", "max")
    m.var("x")
    m.var("y")
    m.objective = {"x": 3, "y": 5}
    m.row("plant1", {"x": 1}, "<=", 4)
    m.row("plant2", {"y": 2}, "<=", 12)
    m.row("plant3", {"x": 3, "y": 2}, "<=", 18)
    return m, 36


def diet():
    # min 2a + 3.5b + 8c s.t. a + 2b + 3c >= 11, 4a + b + 2c >= 8, a, b, c <= 10: the optimum is
    # the fractional vertex a = 5/7, b = 36/7, c = 0 (both rows tight), objective 136/7.
    m = Model("diet", "min")
    for v, hi in (("a", 10), ("b", 10), ("c", 10)):
        m.var(v, 0, hi)
    m.objective = {"a": 2, "b": 3.5, "c": 8}
    m.row("protein", {"a": 1, "b": 2, "c": 3}, ">=", 11)
    m.row("iron", {"a": 4, "b": 1, "c": 2}, ">=", 8)
    return m, 136 / 7


def infeasible_lp():
    m = Model("infeaslp", "min")
    m.var("x")
    m.var("y")
    m.objective = {"x": 1, "y": 1}
    m.row("atleast", {"x": 1, "y": 1}, ">=", 10)
    m.row("atmost", {"x": 1, "y": 1}, "<=", 5)
    return m, None


def infeasible_milp():
    # 2x + 2y = 3 has real solutions but no integer one: only branching finds that out.
    m = Model("infeasip", "min")
    m.var("x", 0, 5, integer=True)
    m.var("y", 0, 5, integer=True)
    m.objective = {"x": 1, "y": 1}
    m.row("odd", {"x": 2, "y": 2}, "=", 3)
    return m, None


def unbounded_lp():
    m = Model("unbndlp", "max")
    m.var("x")
    m.var("y")
    m.objective = {"x": 1, "y": 1}
    m.row("diff", {"x": 1, "y": -1}, "<=", 1)
    return m, None


def market_split(rows, seed, name):
    """Cornuéjols–Dawande: rows m, n = 10(m-1) binaries, a_ij uniform in 0..99, d_i = floor(sum/2).

    The slack formulation min sum(sp_i + sm_i), A x + sp - sm = d lets every x be feasible, so
    solvers find incumbents at once and then spend their time proving that no smaller total
    deviation exists: the LP bound stays at 0 far into the tree.
    """
    rng = random.Random(seed)
    n = 10 * (rows - 1)
    a = [[rng.randint(0, 99) for _ in range(n)] for _ in range(rows)]
    d = [sum(r) // 2 for r in a]
    m = Model(name, "min")
    for j in range(n):
        m.var(f"x{j}", 0, 1, integer=True)
    for i in range(rows):
        m.var(f"sp{i}")
        m.var(f"sm{i}")
        m.objective[f"sp{i}"] = 1
        m.objective[f"sm{i}"] = 1
    for i in range(rows):
        coefs = {f"x{j}": a[i][j] for j in range(n)}
        coefs[f"sp{i}"] = 1
        coefs[f"sm{i}"] = -1
        m.row(f"r{i}", coefs, "=", d[i])
    return m, a, d


def market_split_optimum(a, d):
    """Smallest total deviation, by enumerating every x (fine for n <= 20)."""
    n = len(a[0])
    best = None
    # Gray code: one coordinate flips per step, so each step costs one column update.
    s = [0] * len(a)
    x = [0] * n
    for k in range(1 << n):
        if k:
            j = (k & -k).bit_length() - 1
            x[j] ^= 1
            sign = 1 if x[j] else -1
            for i in range(len(a)):
                s[i] += sign * a[i][j]
        dev = sum(abs(s[i] - d[i]) for i in range(len(a)))
        if best is None or dev < best:
            best = dev
    return best


MALFORMED_LP = """\\ a CPLEX LP file that no reader accepts: the objective refers to nothing and
\\ the constraint section is broken off.
Minimize
 obj: 3 x + 2 y
Subject To
 c1: 3 x + + <= 12 y
 c2 x y z <=
Bounds
 x <= foo
End
"""

MALFORMED_MPS = """NAME          BROKEN
ROWS
 N  OBJ
 L  C1
COLUMNS
    X         OBJ                  1   C1            notanumber
    Y         NOSUCHROW            2
RHS
    RHS       C1                  oops
BOUNDS
 XX BND       X                    4
ENDATA
"""


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--market-split":
        m, _, _ = market_split(int(sys.argv[2]), int(sys.argv[3]), "msplit")
        write_lp(m, sys.argv[4])
        return

    entries = []

    def emit(name, model, kind, status, objective, solvers, role="check"):
        write_lp(model, os.path.join(HERE, f"{name}.lp"))
        write_mps(model, os.path.join(HERE, f"{name}.mps"))
        flip = -1 if model.sense == "max" else 1
        for fmt in ("lp", "mps"):
            e = {
                "name": name,
                "file": f"{name}.{fmt}",
                "format": fmt,
                "kind": kind,
                "sense": "max" if model.sense == "max" and fmt == "lp" else "min",
                "status": status,
                "objective": None if objective is None else (
                    objective if fmt == "lp" else flip * objective),
                "solvers": solvers,
                "role": role,
            }
            entries.append(e)

    lp_solvers = ["cbc", "clp", "glpk"]
    mip_solvers = ["cbc", "glpk"]

    m, opt = knapsack()
    emit("knapsack", m, "milp", "optimal", float(opt), mip_solvers)
    m, opt = assignment()
    emit("assignment", m, "milp", "optimal", float(opt), mip_solvers)
    m, opt = transportation()
    emit("transportation", m, "lp", "optimal", float(opt), lp_solvers)
    m, opt = production()
    emit("production", m, "lp", "optimal", float(opt), lp_solvers)
    m, opt = diet()
    emit("diet", m, "lp", "optimal", opt, lp_solvers)
    m, _ = infeasible_lp()
    emit("infeasible_lp", m, "lp", "infeasible", None, lp_solvers)
    m, _ = infeasible_milp()
    emit("infeasible_milp", m, "milp", "infeasible", None, mip_solvers)
    m, _ = unbounded_lp()
    emit("unbounded_lp", m, "lp", "unbounded", None, lp_solvers)
    m, a, d = market_split(2, 7, "msplit2")
    emit("market_split_small", m, "milp", "optimal", float(market_split_optimum(a, d)),
         mip_solvers)
    # About a second of branching for cbc and glpk: the smallest size whose optimum is proven
    # by search rather than found at the root.
    m, a, d = market_split(3, 7, "msplit3")
    emit("market_split_medium", m, "milp", "optimal", float(market_split_optimum(a, d)),
         mip_solvers)
    # The hard instance: incumbents within a second, proof of optimality takes cbc well over 10 s.
    m, _, _ = market_split(HARD_ROWS, HARD_SEED, "msplit4")
    emit("market_split_hard", m, "milp", "optimal", None, ["cbc", "glpk"], role="hard")

    with open(os.path.join(HERE, "malformed.lp"), "w") as f:
        f.write(MALFORMED_LP)
    with open(os.path.join(HERE, "malformed.mps"), "w") as f:
        f.write(MALFORMED_MPS)
    for fmt in ("lp", "mps"):
        entries.append({"name": "malformed", "file": f"malformed.{fmt}", "format": fmt,
                        "kind": "lp", "sense": "min", "status": "invalid_model", "objective": None,
                        "solvers": lp_solvers, "role": "malformed"})

    with open(os.path.join(HERE, "models.json"), "w") as f:
        json.dump({"comment": "written by generate.py; objective and sense are the file's own "
                              "(MPS files of maximization models minimize the negation); role: "
                              "check = solves quickly to the expected status/objective, hard = "
                              "incumbents within a second and a search of > 10 s (cbc), "
                              "malformed = every reader refuses it",
                   "models": entries}, f, indent=1)
        f.write("\n")


HARD_ROWS = 4
HARD_SEED = 1

if __name__ == "__main__":
    main()
