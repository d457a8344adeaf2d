"""What a Pd or Max patch can send, worked out from the patch file alone.

Every [oscformat] (Pd) and every [udpsend] (Max) is traced back through the objects that feed
it to the shapes of the messages it can receive, and each shape can be compared with the
signature in docs/osc.md (`check`). Pd's text format and Max's JSON are read here; neither
program has to run. Used by tests/test_patches.py, which also holds this checker to patches
that are wrong on purpose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.osc_doc import documented_addresses


@dataclass(frozen=True)
class Atom:
    """One element of a message: `kind` f (float), i (int), s (symbol) or ? (unknown)."""

    kind: str
    value: str | None = None  # the literal text, where the patch fixes it
    many: bool = False  # stands for any number of such elements (an array, a list inlet)


Shape = tuple[Atom, ...]
UNKNOWN: Shape = (Atom("?", many=True),)
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Sent:
    """One message a patch can send: where from, the OSC address and its arguments' types."""

    where: str
    address: str
    args: Shape


def atom_of(token: str, integers: bool) -> Atom:
    """A literal token. Pd numbers are floats; Max tells ints (`3`) from floats (`3.`)."""
    if NUMBER.match(token):
        is_int = integers and re.match(r"^[-+]?\d+$", token) is not None
        return Atom("i" if is_int else "f", token)
    return Atom("s", token)


def fits(signature: str, args: Shape) -> str | None:
    """None if OSC arguments of these types fit the signature, else what is wrong."""
    params = [
        (name, kind[0], kind[1:]) for name, _, kind in (t.partition(":") for t in signature.split())
    ]

    def type_ok(kind: str, atom: Atom) -> bool:
        integral_literal = (
            atom.kind == "f" and atom.value is not None and float(atom.value).is_integer()
        )
        if kind == "i":
            return atom.kind == "i" or integral_literal
        if kind == "f":
            return atom.kind in ("f", "i")
        if kind == "s":
            return atom.kind == "s"
        return atom.kind in ("i", "s") or integral_literal  # n

    def name_of(atom: Atom) -> str:
        return {"i": "an int", "f": "a float", "s": "a string"}.get(atom.kind, "an unknown atom")

    index = 0
    for name, kind, repeat in params:
        if repeat == "*":
            for atom in args[index:]:
                if not type_ok(kind, atom):
                    return f"{name}: {name_of(atom)} where {kind} values go"
            index = len(args)
            break
        if index >= len(args):
            if repeat == "?":
                continue
            return f"missing argument {name}:{kind}"
        atom = args[index]
        if atom.many:
            return f"{name}: a list of any length where one {kind} goes"
        if not type_ok(kind, atom):
            return f"{name}: {name_of(atom)} where {kind} goes"
        index += 1
    if index < len(args):
        return f"too many arguments: {len(args) - index} more than `{signature}` takes"
    return None


def check(sent: list[Sent]) -> list[str]:
    """Every message that does not exist in docs/osc.md or does not fit its signature."""
    table = documented_addresses()
    problems = []
    for message in sent:
        signature = table.get(message.address)
        if signature is None:
            problems.append(f"{message.where}: {message.address} is not in docs/osc.md")
            continue
        wrong = fits(signature, message.args)
        if wrong:
            types = " ".join(a.kind + ("*" if a.many else "") for a in message.args)
            problems.append(
                f"{message.where}: {message.address} [{types}] against `{signature}`: {wrong}"
            )
    return problems


class Flow:
    """Shapes of the messages leaving each outlet of a patch, worked out from its sources.

    Subclasses say what one object does (`outlet_shapes`); this class follows the wires and
    guards against loops (a loop adds nothing new).
    """

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int, int], list[Shape]] = {}

    def sources(self, canvas: int, box: int, inlet: int) -> list[tuple[int, int, int]]:
        raise NotImplementedError

    def outlet_shapes(self, canvas: int, box: int, outlet: int) -> list[Shape]:
        raise NotImplementedError

    def inlet(self, canvas: int, box: int, inlet: int) -> list[Shape]:
        shapes: list[Shape] = []
        for source in self.sources(canvas, box, inlet):
            for shape in self.out(*source):
                if shape not in shapes:
                    shapes.append(shape)
        return shapes

    def out(self, canvas: int, box: int, outlet: int) -> list[Shape]:
        key = (canvas, box, outlet)
        if key not in self._memo:
            self._memo[key] = []  # a loop back to here contributes nothing
            self._memo[key] = self.outlet_shapes(canvas, box, outlet)
        return self._memo[key]


def substitute(tokens: list[str], shape: Shape, integers: bool) -> Shape:
    """A message box's tokens with $1.. taken from one incoming shape."""
    atoms: list[Atom] = []
    for token in tokens:
        dollar = re.fullmatch(r"\$(\d+)", token)
        if dollar:
            n = int(dollar.group(1)) - 1
            fixed = [a for a in shape if not a.many]
            atoms.append(fixed[n] if n < len(fixed) else Atom("?"))
        else:
            atoms.append(atom_of(token, integers))
    return tuple(atoms)


def split_shape(shape: Shape, n: int) -> tuple[Shape, Shape] | None:
    """The first n elements and the rest, or None if the shape may be shorter than n."""
    head: list[Atom] = []
    for index, atom in enumerate(shape):
        if len(head) == n:
            return tuple(head), shape[index:]
        if atom.many:
            return tuple(head) + (Atom(atom.kind),) * (n - len(head)), shape[index:]
        head.append(atom)
    return (tuple(head), ()) if len(head) == n else None


# ------------------------------------------------------------------ Pd
@dataclass
class PdBox:
    kind: str  # obj, msg, floatatom, symbolatom, text, subpatch, graph
    atoms: list[str]
    x: int = 0
    child: int | None = None  # the canvas of a subpatch


@dataclass
class PdCanvas:
    boxes: list[PdBox]
    wires: list[tuple[int, int, int, int]]
    parent: tuple[int, int] | None = None  # (canvas, box) of the subpatch holding this one


def pd_records(text: str) -> list[list[str]]:
    """Pd's file format: records end with an unescaped `;`; escapes \\$ \\, \\; are undone."""
    records = []
    for record in re.split(r"(?<!\\);", text):
        record = re.sub(r"(?<!\\),\s*f\s+\d+\s*$", "", record.strip())  # a box's width
        if not record:
            continue
        tokens = record.split()
        records.append(
            [t.replace("\\$", "$").replace("\\,", ",").replace("\\;", ";") for t in tokens]
        )
    return records


def parse_pd(text: str) -> list[PdCanvas]:
    canvases: list[PdCanvas] = []
    stack: list[int] = []
    for tokens in pd_records(text):
        head = tokens[:2]
        if head == ["#N", "canvas"]:
            parent = (stack[-1], len(canvases[stack[-1]].boxes)) if stack else None
            canvases.append(PdCanvas([], [], parent))
            stack.append(len(canvases) - 1)
            continue
        if not stack or tokens[0] != "#X":
            continue
        canvas = canvases[stack[-1]]
        kind = tokens[1]
        if kind == "restore":
            child = stack.pop()
            box = PdBox(
                "subpatch" if tokens[4:5] == ["pd"] else "graph", tokens[4:], int(tokens[2])
            )
            box.child = child
            canvases[stack[-1]].boxes.append(box)
        elif kind == "connect":
            a, ao, b, bi = (int(t) for t in tokens[2:6])
            canvas.wires.append((a, ao, b, bi))
        elif kind in ("obj", "msg", "floatatom", "symbolatom", "text", "listbox"):
            x = int(float(tokens[2])) if len(tokens) > 2 else 0
            canvas.boxes.append(PdBox(kind, tokens[4:], x))
    return canvases


PD_FLOAT_OBJECTS = {
    "f", "float", "i", "int", "+", "-", "*", "/", "==", "!=", ">", "<", ">=", "<=", "clip",
    "moses", "mod", "div", "%", "max", "min", "abs", "wrap", "random", "expr", "change", "v",
    "value", "tgl", "nbx", "hsl", "vsl", "hradio", "vradio", "array size", "mtof", "ftom",
}  # fmt: skip
PD_BANG_OBJECTS = {"loadbang", "bng", "metro", "delay", "del", "bang", "b", "timer"}
# Objects that send only when something reaches them: with no wire in, they never send.
PD_WAITING = {
    "bang", "b", "t", "trigger", "f", "float", "symbol", "makefilename", "pack", "unpack",
    "route", "sel", "select", "moses", "list", "spigot", "gate", "metro", "delay", "del",
}  # fmt: skip
PD_TYPES = {"f": "f", "float": "f", "s": "s", "symbol": "s"}
IEM_SEND = {"bng": 5, "tgl": 3, "nbx": 7, "hsl": 7, "vsl": 7, "hradio": 5, "vradio": 5}


class PdFlow(Flow):
    def __init__(self, canvases: list[PdCanvas]) -> None:
        super().__init__()
        self.canvases = canvases
        self.senders: dict[str, list[tuple[int, int, Shape | None]]] = {}
        for c, canvas in enumerate(canvases):
            for b, box in enumerate(canvas.boxes):
                for name, shape in self._sends(box):
                    self.senders.setdefault(name, []).append((c, b, shape))

    def _sends(self, box: PdBox) -> list[tuple[str, Shape | None]]:
        """(name, shape) for what this box sends by name; shape None: the box's inlet."""
        atoms = box.atoms
        if box.kind == "obj" and atoms[:1] in (["s"], ["send"]) and len(atoms) > 1:
            return [(atoms[1], None)]
        if box.kind == "obj" and atoms and atoms[0] in IEM_SEND and len(atoms) > IEM_SEND[atoms[0]]:
            name = atoms[IEM_SEND[atoms[0]]]
            return [(name, () if atoms[0] == "bng" else (Atom("f"),))]
        if box.kind in ("floatatom", "symbolatom") and len(atoms) > 6 and atoms[6] != "-":
            return [(atoms[6], (Atom("f") if box.kind == "floatatom" else Atom("s"),))]
        if box.kind == "msg" and ";" in atoms:
            out: list[tuple[str, Shape | None]] = []
            for part in " ".join(atoms).split(";")[1:]:
                words = part.split()
                if words:
                    out.append((words[0], substitute(words[1:], (), False)))
            return out
        return []

    def sources(self, canvas: int, box: int, inlet: int) -> list[tuple[int, int, int]]:
        wires = self.canvases[canvas].wires
        return [(canvas, a, ao) for a, ao, b, bi in wires if b == box and bi == inlet]

    def outlet_shapes(self, canvas: int, box_index: int, outlet: int) -> list[Shape]:
        box = self.canvases[canvas].boxes[box_index]
        inlet = lambda n=0: self.inlet(canvas, box_index, n)  # noqa: E731
        if box.kind == "floatatom":
            return [(Atom("f"),)]
        if box.kind == "symbolatom":
            return [(Atom("s"),)]
        if box.kind == "msg":
            return self._message(box, inlet())
        if box.kind == "subpatch":
            assert box.child is not None
            return self._subpatch_outlet(box.child, outlet)
        if box.kind != "obj" or not box.atoms:
            return [UNKNOWN]
        name, args = box.atoms[0], box.atoms[1:]
        two = " ".join(box.atoms[:2])
        if name in PD_WAITING and all(b != box_index for _, _, b, _ in self.canvases[canvas].wires):
            return []
        if name in ("inlet",):
            return self._inlet_of(canvas, box_index)
        if name in ("r", "receive") and args:
            return self._received(args[0])
        if two in PD_FLOAT_OBJECTS or name in PD_FLOAT_OBJECTS:
            return [(Atom("f"),)]
        if name in ("symbol", "makefilename"):
            return [(Atom("s"),)]
        if name in PD_BANG_OBJECTS:
            return [()]
        if two == "array get":
            return [(Atom("f", many=True),)]
        if name in ("t", "trigger"):
            kind = args[len(args) - 1 - outlet] if outlet < len(args) else "a"
            if kind in ("b", "bang"):
                return [()]
            if kind in ("f", "float"):
                return [(Atom("f"),)]
            if kind in ("s", "symbol"):
                return [(Atom("s"),)]
            return inlet()
        if name == "pack":
            return [tuple(Atom(PD_TYPES.get(a, "f" if NUMBER.match(a) else "?")) for a in args)]
        if name == "unpack":
            kind = args[outlet] if outlet < len(args) else "f"
            return [(Atom(PD_TYPES.get(kind, "f" if NUMBER.match(kind) else "?")),)]
        if name == "route":
            return self._route(args, inlet(), outlet)
        if name in ("sel", "select"):
            return [()] if outlet < max(1, len(args)) else inlet()
        if name == "list":
            return self._list(args, canvas, box_index, outlet)
        if name in ("spigot", "gate", "print"):
            return inlet()
        return [
            UNKNOWN
        ]  # an abstraction, a network object, or something this checker does not know

    def _message(self, box: PdBox, incoming: list[Shape]) -> list[Shape]:
        text = " ".join(box.atoms).split(";")[0]
        shapes = []
        clicked = [] if "$" in text else [()]  # a click sends the text as it stands
        for shape in incoming + clicked:
            for part in text.split(","):
                words = part.split()
                if not words or words[0] == "set":
                    continue
                if words[0] in ("list", "symbol", "float", "bang"):
                    words = words[1:]
                shapes.append(substitute(words, shape, False))
        return shapes

    def _route(self, args: list[str], incoming: list[Shape], outlet: int) -> list[Shape]:
        shapes: list[Shape] = []
        types = {"float": "f", "symbol": "s", "bang": "", "list": "l", "anything": "a"}
        if outlet >= len(args):  # the reject outlet
            return incoming
        selector = args[outlet]
        for shape in incoming:
            first = shape[0] if shape else None
            if selector in types and all(a in types for a in args):
                kind = types[selector]
                if kind == "" and (first is None or first.many):
                    shapes.append(())
                elif kind in ("f", "s") and first is not None:
                    if first.kind in (kind, "?"):
                        shapes.append((Atom(kind, None if first.many else first.value),))
                elif kind in ("l", "a") and shape:
                    shapes.append(shape)
            elif first is not None and first.value in (None, selector):
                shapes.append(shape[1:] if not first.many else shape)
        return shapes

    def _list(self, args: list[str], canvas: int, box: int, outlet: int) -> list[Shape]:
        op = args[0] if args and not NUMBER.match(args[0]) else "append"
        rest = args[1:] if args and not NUMBER.match(args[0]) else args
        left = self.inlet(canvas, box, 0)
        if op in ("prepend", "append"):
            right = self.inlet(canvas, box, 1) or [substitute(rest, (), False)]
            if op == "prepend":
                return [r + s for r in right for s in left]
            return [s + r for s in left for r in right]
        if op == "trim":
            return left
        if op == "split" and rest and NUMBER.match(rest[0]):
            n = int(float(rest[0]))
            shapes = []
            for shape in left:
                parts = split_shape(shape, n)
                if outlet == 2:
                    shapes.append(shape)
                elif parts is not None:
                    shapes.append(parts[outlet])
            return shapes
        if op == "length":
            return [(Atom("f"),)]
        return [UNKNOWN]

    def _received(self, name: str) -> list[Shape]:
        shapes: list[Shape] = []
        for c, b, shape in self.senders.get(name, []):
            found = self.inlet(c, b, 0) if shape is None else [shape]
            shapes += [s for s in found if s not in shapes]
        if not name.startswith("$0"):
            shapes.append(UNKNOWN)  # a global name: anything outside this file may send to it
        return shapes

    def _inlet_of(self, canvas: int, box: int) -> list[Shape]:
        """An [inlet]: in a subpatch, what its parent sends there; in an abstraction, anything."""
        parent = self.canvases[canvas].parent
        if parent is None:
            return [UNKNOWN]
        inlets = sorted(
            (b.x, i)
            for i, b in enumerate(self.canvases[canvas].boxes)
            if b.kind == "obj" and b.atoms[:1] == ["inlet"]
        )
        index = [i for _, i in inlets].index(box)
        return self.inlet(parent[0], parent[1], index)

    def _subpatch_outlet(self, child: int, outlet: int) -> list[Shape]:
        outlets = sorted(
            (b.x, i)
            for i, b in enumerate(self.canvases[child].boxes)
            if b.kind == "obj" and b.atoms[:1] == ["outlet"]
        )
        if outlet >= len(outlets):
            return []
        return self.inlet(child, outlets[outlet][1], 0)


def pd_sent(text: str, name: str) -> list[Sent]:
    """Every OSC message a Pd patch can send: the [oscformat] objects and what feeds them."""
    canvases = parse_pd(text)
    flow = PdFlow(canvases)
    sent = []
    for c, canvas in enumerate(canvases):
        for b, box in enumerate(canvas.boxes):
            if box.kind != "obj" or box.atoms[:1] != ["oscformat"]:
                continue
            args = box.atoms[1:]
            fmt = ""
            if args[:1] == ["-f"]:
                fmt, args = args[1], args[2:]
            address = "/" + "/".join(args)
            where = f"{name}: [oscformat {' '.join(box.atoms[1:])}]"
            shapes = flow.inlet(c, b, 0)
            if not shapes:
                sent.append(Sent(where + " (nothing feeds it)", address, (Atom("?"),)))
            for shape in shapes:
                typed = []
                for position, atom in enumerate(shape):
                    kind = fmt[position] if position < len(fmt) else atom.kind
                    if position < len(fmt) and kind == "i" and atom.kind == "s":
                        kind = "?"  # Pd would send 0 for a symbol formatted as an int
                    typed.append(Atom(kind, atom.value, atom.many))
                sent.append(Sent(where, address, tuple(typed)))
    return sent


# ------------------------------------------------------------------ Max
MAX_CONFIG = {"host", "port", "maxqueuesize", "maxpacketsize"}  # udpsend's own messages
# As PD_WAITING: objects that send only when something reaches them.
MAX_WAITING = {
    "prepend", "append", "pack", "pak", "unpack", "t", "trigger", "i", "int", "f", "float",
    "tosymbol", "sprintf", "route", "gate", "onebang", "speedlim", "defer", "deferlow",
    "change", "metro", "delay", "b", "bangbang", "+", "-", "*", "/", "%",
}  # fmt: skip


@dataclass
class MaxPatcher:
    boxes: list[dict]
    index: dict[str, int]
    wires: list[tuple[int, int, int, int]]


def parse_max(document: dict) -> list[MaxPatcher]:
    """The patcher and every patcher inside it (each is checked on its own)."""
    found: list[MaxPatcher] = []

    def walk(patcher: dict) -> None:
        boxes = [entry["box"] for entry in patcher.get("boxes", [])]
        index = {box["id"]: i for i, box in enumerate(boxes)}
        wires = []
        for entry in patcher.get("lines", []):
            line = entry["patchline"]
            (a, ao), (b, bi) = line["source"], line["destination"]
            wires.append((index[a], int(ao), index[b], int(bi)))
        found.append(MaxPatcher(boxes, index, wires))
        for box in boxes:
            if isinstance(box.get("patcher"), dict):
                walk(box["patcher"])

    walk(document["patcher"])
    return found


def max_atom(token: str) -> Atom:
    if token in ("i", "int"):
        return Atom("i")
    if token in ("f", "float"):
        return Atom("f")
    if NUMBER.match(token):
        return atom_of(token, integers=True)
    return Atom("s", None if token in ("s", "sym", "symbol") else token)


class MaxFlow(Flow):
    def __init__(self, patcher: MaxPatcher) -> None:
        super().__init__()
        self.patcher = patcher

    def sources(self, canvas: int, box: int, inlet: int) -> list[tuple[int, int, int]]:
        return [(0, a, ao) for a, ao, b, bi in self.patcher.wires if b == box and bi == inlet]

    def outlet_shapes(self, canvas: int, box_index: int, outlet: int) -> list[Shape]:
        box = self.patcher.boxes[box_index]
        kind = box["maxclass"]
        inlet = lambda n=0: self.inlet(0, box_index, n)  # noqa: E731
        if kind in ("number", "toggle", "live.numbox") and outlet == 0:
            return [(Atom("i"),)]
        if kind == "flonum" and outlet == 0:
            return [(Atom("f"),)]
        if kind in ("slider", "dial"):
            return [(Atom("f" if box.get("floatoutput") else "i"),)]
        if kind in ("live.dial", "live.slider"):
            return [(Atom("f"),)]
        if kind == "multislider":
            return [(Atom("f", many=True),)]
        if kind == "button":
            return [()]
        if kind == "umenu":
            return [(Atom("i"),)] if outlet == 0 else [(Atom("s"),)] if outlet == 1 else [UNKNOWN]
        if kind == "message":
            return self._message(box.get("text", ""), inlet())
        if kind != "newobj":
            return [UNKNOWN]
        words = box.get("text", "").split()
        name, args = (words[0], words[1:]) if words else ("", [])
        if name in MAX_WAITING and all(b != box_index for _, _, b, _ in self.patcher.wires):
            return []
        if name == "prepend":
            return [tuple(max_atom(a) for a in args) + s for s in inlet()]
        if name == "append":
            return [s + tuple(max_atom(a) for a in args) for s in inlet()]
        if name in ("pack", "pak"):
            return [tuple(max_atom(a) for a in args)]
        if name == "unpack":
            return [(max_atom(args[outlet]),)] if outlet < len(args) else [UNKNOWN]
        if name in ("t", "trigger"):
            arg = args[outlet] if outlet < len(args) else "a"
            if arg in ("b", "bang"):
                return [()]
            if arg in ("l", "a", "list", "anything"):
                return inlet()
            return [(max_atom(arg),)]
        if name in ("i", "int"):
            return [(Atom("i"),)]
        if name in ("f", "float"):
            return [(Atom("f"),)]
        if name in ("+", "-", "*", "/", "%"):
            floaty = any("." in a for a in args)
            return [(Atom("f" if floaty else "i"),)]
        if name in ("tosymbol", "sprintf"):
            return [(Atom("s"),)]
        if name in ("loadbang", "metro", "delay", "b", "bangbang"):
            return [()]
        if name == "loadmess":
            return [tuple(max_atom(a) for a in args)]
        if name == "route":
            if outlet >= len(args):
                return inlet()
            shapes = []
            for shape in inlet():
                first = shape[0] if shape else None
                if first is not None and first.value in (None, args[outlet]):
                    shapes.append(shape[1:] if not first.many else shape)
            return shapes
        if name in ("gate", "onebang", "speedlim", "defer", "deferlow", "change"):
            return inlet(1 if name == "gate" else 0)
        return [UNKNOWN]

    def _message(self, text: str, incoming: list[Shape]) -> list[Shape]:
        """A message box: its text (with $1..) for each message in; `set ...` replaces it."""
        text = text.split(";")[0]
        shapes: list[Shape] = []
        clicked = [] if "$" in text else [()]  # a click sends the text as it stands
        for shape in incoming + clicked:
            if shape and shape[0].value == "set":
                shapes.append(shape[1:])
                continue
            for part in text.split(","):
                words = part.split()
                if words and words[0] != "set":
                    shapes.append(substitute(words, shape, True))
        return shapes


def max_sent(document: dict, name: str) -> list[Sent]:
    """Every OSC message a Max patch can send: what reaches the left inlet of a [udpsend]."""
    sent = []
    for patcher in parse_max(document):
        flow = MaxFlow(patcher)
        for b, box in enumerate(patcher.boxes):
            if box["maxclass"] != "newobj" or not box.get("text", "").startswith("udpsend"):
                continue
            for source in flow.sources(0, b, 0):
                source_box = patcher.boxes[source[1]]
                where = f"{name}: [{source_box.get('text') or source_box['maxclass']}]"
                for shape in flow.out(*source):
                    head = shape[0] if shape else None
                    if head is not None and head.value in MAX_CONFIG:
                        continue
                    if head is None or head.kind != "s" or not (head.value or "").startswith("/"):
                        sent.append(Sent(where + " (no OSC address)", "?", shape))
                        continue
                    sent.append(Sent(where, head.value or "", shape[1:]))
    return sent


# ------------------------------------------------------- what reaches what (help patches)
PdCommand = tuple[int, str | None]  # an abstraction's inlet and a selector (None: any other)


def pd_reaches(canvas: PdCanvas, start: tuple[int, int]) -> set[int]:
    """The boxes a message from outlet `start` (box, outlet) can reach: along the wires, and
    from an [s NAME] to each [r NAME] of the canvas."""
    receivers: dict[str, list[int]] = {}
    for b, box in enumerate(canvas.boxes):
        if box.kind == "obj" and box.atoms[:1] in (["r"], ["receive"]) and len(box.atoms) > 1:
            receivers.setdefault(box.atoms[1], []).append(b)
    seen: set[int] = set()
    todo = [b for a, ao, b, _ in canvas.wires if (a, ao) == start]
    while todo:
        b = todo.pop()
        if b in seen:
            continue
        seen.add(b)
        todo += [d for a, _, d, _ in canvas.wires if a == b]
        atoms = canvas.boxes[b].atoms
        if canvas.boxes[b].kind == "obj" and atoms[:1] in (["s"], ["send"]) and len(atoms) > 1:
            todo += receivers.get(atoms[1], [])
    return seen


def pd_selector(words: list[str]) -> str:
    """The selector Pd gives a message: a leading number makes it a float or a list."""
    if NUMBER.match(words[0]):
        return "float" if len(words) == 1 else "list"
    return words[0]


def pd_commands(path: Path) -> dict[PdCommand, set[str]]:
    """What an abstraction takes, (inlet, selector) -> what that command reaches: the OSC
    addresses of the [oscformat]s, and "[netsend]" for the connection itself. Inlets are
    numbered left to right; the selectors are those of the [route] an inlet feeds, and None
    stands for anything else, where the [route]'s last outlet (or an inlet with no [route]
    after it) leads somewhere."""
    canvases = parse_pd(path.read_text())
    assert len(canvases) == 1, f"{path.name}: follow its subpatches too"
    canvas = canvases[0]
    inlets = sorted((box.x, b) for b, box in enumerate(canvas.boxes) if box.atoms == ["inlet"])
    commands: dict[PdCommand, set[str]] = {}
    for number, (_, inlet) in enumerate(inlets):
        routes = [
            b
            for a, _, b, _ in canvas.wires
            if a == inlet and canvas.boxes[b].atoms[:1] == ["route"]
        ]
        selectors = canvas.boxes[routes[0]].atoms[1:] if routes else []
        outlets = [(routes[0], n) for n in range(len(selectors) + 1)] if routes else [(inlet, 0)]
        for selector, outlet in zip([*selectors, None], outlets, strict=True):
            reached = set()
            for b in pd_reaches(canvas, outlet):
                atoms = canvas.boxes[b].atoms
                if atoms[:1] == ["oscformat"]:
                    words = atoms[3:] if atoms[1:2] == ["-f"] else atoms[1:]
                    reached.add("/" + "/".join(words))
                elif atoms[:1] == ["netsend"]:
                    reached.add("[netsend]")
            if selector is not None or reached:
                commands[number, selector] = reached
    return commands


def pd_help_shows(
    path: Path, abstraction: str, commands: set[PdCommand]
) -> dict[PdCommand, list[str]]:
    """The messages a help patch's message boxes send to [abstraction ...], by the command
    they are to it: (inlet, selector or None) -> the messages."""
    canvas = parse_pd(path.read_text())[0]
    shown: dict[PdCommand, list[str]] = {}
    for a, _, b, inlet in canvas.wires:
        source, target = canvas.boxes[a], canvas.boxes[b]
        if source.kind != "msg" or target.kind != "obj" or target.atoms[:1] != [abstraction]:
            continue
        for part in " ".join(source.atoms).split(";")[0].split(","):
            words = part.split()
            if not words:
                continue
            selector = pd_selector(words)
            key = (inlet, selector if (inlet, selector) in commands else None)
            shown.setdefault(key, []).append(part.strip())
    return shown


def max_replies(patcher: MaxPatcher) -> dict[str, tuple[int, int]]:
    """Each address a [route] right after a [udpreceive] picks out: its (box, outlet)."""
    routed: dict[str, tuple[int, int]] = {}
    for r, _, b, _ in patcher.wires:
        receiver, box = patcher.boxes[r], patcher.boxes[b]
        words = box.get("text", "").split()
        if receiver.get("text", "").startswith("udpreceive") and words[:1] == ["route"]:
            routed.update({address: (b, n) for n, address in enumerate(words[1:])})
    return routed


def max_reaches(patcher: MaxPatcher, start: tuple[int, int], name: str) -> bool:
    """Whether a wire path leads from outlet `start` (box, outlet) to an object `name`."""
    seen: set[int] = set()
    todo = [b for a, ao, b, _ in patcher.wires if (a, ao) == start]
    while todo:
        box = todo.pop()
        if patcher.boxes[box].get("text", "").split()[:1] == [name]:
            return True
        if box not in seen:
            seen.add(box)
            todo += [b for a, _, b, _ in patcher.wires if a == box]
    return False
