"""Statement order: a body is a set of equations, evaluated in dependency order.

Source order is kept wherever dependencies allow (so layer indices follow the text); a cycle is a
located error naming the names on it.
"""
from __future__ import annotations

import heapq

from ..errors import NameResolutionError
from ..syntax import ast


def free_names(expr) -> set[str]:
    """Names an expression reads (iteratively: expressions may be long)."""
    out: set[str] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if e is None:
            continue
        if isinstance(e, ast.Name):
            out.add(e.id)
        elif isinstance(e, ast.Kwarg):
            stack.append(e.value)
        elif isinstance(e, ast.Attr):
            stack.append(e.obj)
        elif isinstance(e, (ast.Number, ast.String, ast.Bool)):
            pass
        elif isinstance(e, ast.TypeExpr):
            stack.extend(e.dims)
        else:
            for f in getattr(e, "__dataclass_fields__", {}):
                if f == "span":
                    continue
                v = getattr(e, f)
                if isinstance(v, ast.Node):
                    stack.append(v)
                elif isinstance(v, tuple):
                    stack.extend(x for x in v if isinstance(x, ast.Node))
    return out


def provides(stmt) -> list[str]:
    if isinstance(stmt, ast.Assign):
        return list(stmt.targets)
    if isinstance(stmt, (ast.Input, ast.Param, ast.State)):
        names = [stmt.name]
        if isinstance(stmt, ast.Input):  # `input x: [batch, h, w, c]` introduces h, w, c
            names += [d.id for d in stmt.type.dims if isinstance(d, ast.Name)]
        return names
    if isinstance(stmt, (ast.Output,)) and stmt.value is not None:
        return [stmt.name]
    if isinstance(stmt, (ast.Instance, ast.Loss, ast.Metric, ast.Draw)):
        return [stmt.name]
    if isinstance(stmt, ast.Data):
        return ["data", "batch"]
    return []


def reads(stmt) -> set[str]:
    if isinstance(stmt, ast.Output) and stmt.value is None:
        return {stmt.name}
    if isinstance(stmt, ast.Input):
        return set()
    names = set()
    for f in stmt.__dataclass_fields__:
        v = getattr(stmt, f)
        if isinstance(v, ast.Node):
            names |= free_names(v)
    if isinstance(stmt, ast.Step):
        names |= set(stmt.models)
    return names


_ORDERED: dict = {}  # id(body) -> (body, order): a recursive model is ordered once, not per use


def order(body) -> list:
    """Statements sorted so each comes after what it reads; stable with respect to the source."""
    hit = _ORDERED.get(id(body))
    if hit is not None and hit[0] is body:
        return list(hit[1])
    out = _order(body)
    if len(_ORDERED) > 4096:
        _ORDERED.clear()
    _ORDERED[id(body)] = (body, out)  # holding `body` keeps its id from being reused
    return list(out)


def _order(body) -> list:
    producer: dict[str, int] = {}
    for i, s in enumerate(body):
        for n in provides(s):
            if isinstance(s, ast.Input) and n != s.name:
                producer.setdefault(n, i)  # a dimension name; a later definition of it wins
            elif n in producer and not isinstance(body[producer[n]], ast.Input):
                continue  # duplicates are reported by the builder, at the second definition
            else:
                producer[n] = i
    deps = [set() for _ in body]
    users = [set() for _ in body]
    for i, s in enumerate(body):
        for n in reads(s):
            j = producer.get(n)
            if j is not None and j != i:
                deps[i].add(j)
                users[j].add(i)
    ready = [i for i in range(len(body)) if not deps[i]]
    heapq.heapify(ready)
    out, remaining = [], [set(d) for d in deps]
    while ready:
        i = heapq.heappop(ready)
        out.append(body[i])
        for u in users[i]:
            remaining[u].discard(i)
            if not remaining[u]:
                heapq.heappush(ready, u)
    if len(out) < len(body):
        stuck = [i for i in range(len(body)) if remaining[i]]
        cyc = _cycle(stuck, remaining, body)
        s = body[cyc[0]]
        names = " -> ".join(provides(body[i])[0] if provides(body[i]) else "?" for i in cyc)
        raise NameResolutionError(f"cyclic definition: {names}", s.span, code="E205",
                                  help="a value cannot depend on itself; recurrence belongs in a "
                                       "`cell` with `state`")
    return out


def _cycle(stuck, remaining, body):
    start = stuck[0]
    path, seen = [start], {start}
    cur = start
    while True:
        nxt = min(remaining[cur])
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)
        cur = nxt
